"""Registry imports: streamed, validated, loaded in chunks and switched atomically."""

import io
import os
import tracemalloc
from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection

from core.crypto import rrn_hmac
from core.models import AuditEvent, TaskOutbox
from eligibility import import_chunks
from eligibility.imports import active_snapshot, registry_import_create, registry_import_run
from eligibility.models import (
    RECORD_MODELS,
    NationalVoucherRecord,
    RegistryImportJob,
    RegistryKind,
    RegistrySnapshot,
    SocialSecurityRecord,
    TrainingCourse,
    YouthAllowanceRecord,
)
from tests.factories import rrn_for

pytestmark = pytest.mark.django_db

RRN_A, RRN_B, RRN_C = rrn_for(1), rrn_for(2), rrn_for(3)
SS_HEADER = "rrn,status,district,valid_from,valid_to\n"
NB_HEADER = "rrn,card_valid_from,card_valid_to,course_id,training_from,training_to\n"
GOOD_FILES = {
    RegistryKind.SOCIAL_SECURITY: SS_HEADER
    + f"{RRN_A},basic_livelihood,11440,2025-01-01,\n"
    + f"{RRN_B},near_poor,11110,2024-03-01,2026-02-28\n",
    RegistryKind.NAEILBAEUM: NB_HEADER
    + f"{RRN_A},2025-01-01,2029-12-31,AIG1,2026-03-02,2026-06-30\n"
    + f"{RRN_B},2025-01-01,2029-12-31,,,\n",
    RegistryKind.YOUTH_ALLOWANCE: f"rrn,paid_from,paid_to\n{RRN_A},2026-01,2026-02\n",
    RegistryKind.NATIONAL_VOUCHER: "rrn_hmac,year\n"
    + f"{rrn_hmac(RRN_A)},2025\n{rrn_hmac(RRN_A)},2026\n",
    RegistryKind.TRAINING_COURSES: "course_id,name,institution,starts_on,ends_on,vocational\n"
    'AIG1,"빅데이터 분석, 실무",서울직업전문학교,2026-03-02,2026-06-30,Y\n'
    "AIG2,요가,구민회관,2026-03-02,2026-04-30,false\n",
}


def import_file(kind: str, content: str | bytes, *, run: bool = True) -> RegistryImportJob:
    data = content.encode() if isinstance(content, str) else content
    job = registry_import_create(
        kind=kind, uploaded_file=ContentFile(data, name="registry.csv"), actor=None
    )
    return registry_import_run(job_id=job.pk) if run else job


def rows_of(snapshot) -> int:
    return RECORD_MODELS[snapshot.kind].objects.filter(snapshot=snapshot).count()


@pytest.fixture
def previous():
    """An active social-security snapshot that bad files must leave alone."""
    job = import_file(RegistryKind.SOCIAL_SECURITY, GOOD_FILES[RegistryKind.SOCIAL_SECURITY])
    assert job.status == "succeeded", job.errors
    return job.snapshot


@pytest.mark.parametrize("kind", RegistryKind.values)
def test_each_registry_imports_and_activates(kind):
    job = import_file(kind, GOOD_FILES[kind])

    assert job.status == "succeeded", job.errors
    assert (job.rows_read, job.rows_rejected, job.errors) == (
        GOOD_FILES[kind].count("\n") - 1,
        0,
        [],
    )
    assert job.finished_at is not None
    assert active_snapshot(kind) == job.snapshot
    assert job.snapshot.row_count == rows_of(job.snapshot) == job.rows_read
    assert len(job.snapshot.sha256) == 64


def test_values_are_converted_on_the_way_in():
    for kind in RegistryKind.values:
        import_file(kind, GOOD_FILES[kind])

    social = SocialSecurityRecord.objects.get(line=2)
    assert (social.rrn_hmac, social.valid_from, social.valid_to) == (
        rrn_hmac(RRN_A),
        date(2025, 1, 1),
        None,
    )
    youth = YouthAllowanceRecord.objects.get()
    assert (youth.paid_from, youth.paid_to) == (date(2026, 1, 1), date(2026, 2, 28))
    assert sorted(NationalVoucherRecord.objects.values_list("year", flat=True)) == [2025, 2026]
    courses = {c.course_id: c for c in TrainingCourse.objects.all()}
    assert courses["AIG1"].name == "빅데이터 분석, 실무"
    assert (courses["AIG1"].vocational, courses["AIG2"].vocational) == (True, False)


def test_bom_crlf_and_blank_lines_are_accepted():
    content = "\ufeff" + GOOD_FILES[RegistryKind.SOCIAL_SECURITY].replace("\n", "\r\n") + "\r\n"
    job = import_file(RegistryKind.SOCIAL_SECURITY, content)
    assert (job.status, job.rows_read) == ("succeeded", 2)


BAD_FILES = [
    ("wrong_header", "rrn,status,district,valid_from\n", 1, None, "invalid_header"),
    ("person_column", "name,status,district,valid_from,valid_to\n", 1, None, "invalid_header"),
    ("empty", "", 1, None, "empty_file"),
    ("header_only", SS_HEADER, 2, None, "no_rows"),
    (
        "not_utf8",
        SS_HEADER.encode()
        + f"{RRN_A},basic_livelihood,11440,2025-01-01,\n".encode()
        + f"{RRN_B},near_poor,11440,2025-01-01,\xff\n".encode("latin-1"),
        3,
        None,
        "invalid_encoding",
    ),
    (
        "bad_date",
        SS_HEADER + f"{RRN_A},near_poor,11440,2025-02-30,\n",
        2,
        "valid_from",
        "invalid_date",
    ),
    (
        "loose_date",
        SS_HEADER + f"{RRN_A},near_poor,11440,20250201,\n",
        2,
        "valid_from",
        "invalid_date",
    ),
    (
        "bad_birth_date",
        SS_HEADER + "991332-1234567,near_poor,11440,2025-01-01,\n",
        2,
        "rrn",
        "invalid_birth_date",
    ),
    ("bad_rrn", SS_HEADER + "12345,near_poor,11440,2025-01-01,\n", 2, "rrn", "invalid_format"),
    ("columns", SS_HEADER + f"{RRN_A},near_poor,11440\n", 2, None, "wrong_column_count"),
    (
        "district",
        SS_HEADER + f"{RRN_A},near_poor,41110,2025-01-01,\n",
        2,
        "district",
        "invalid_district",
    ),
    ("status", SS_HEADER + f"{RRN_A},poor,11440,2025-01-01,\n", 2, "status", "invalid_choice"),
    (
        "backwards",
        SS_HEADER + f"{RRN_A},near_poor,11440,2025-01-01,2024-12-31\n",
        2,
        "valid_to",
        "invalid_range",
    ),
    (
        "duplicate",
        SS_HEADER
        + f"{RRN_A},near_poor,11440,2025-01-01,\n{RRN_B},near_poor,11440,2025-01-01,\n"
        + f"{RRN_A},basic_livelihood,11110,2025-01-01,\n",
        4,
        "rrn_hmac",
        "duplicate",
    ),
    ("nul", SS_HEADER + f"{RRN_A},near_poor,11440,2025-01-01,\x00\n", 2, None, "invalid_character"),
    (
        "too_long",
        SS_HEADER + f"{RRN_A},near_poor,11440,2025-01-01," + "x" * 70_000 + "\n",
        2,
        None,
        "line_too_long",
    ),
]


@pytest.mark.parametrize(
    ("content", "line", "field", "code"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES]
)
def test_bad_file_fails_naming_the_line_and_keeps_the_previous_snapshot(
    previous, content, line, field, code
):
    job = import_file(RegistryKind.SOCIAL_SECURITY, content)

    assert job.status == "failed"
    assert job.rows_rejected >= 1
    assert {"line": line, "field": field, "code": code} in [
        {k: e[k] for k in ("line", "field", "code")} for e in job.errors
    ], job.errors
    assert all(e["message"] for e in job.errors)
    assert active_snapshot(RegistryKind.SOCIAL_SECURITY) == previous
    assert rows_of(previous) == 2
    job.snapshot.refresh_from_db()
    assert job.snapshot.status == "discarded"
    assert rows_of(job.snapshot) == 0


def test_duplicate_names_both_lines():
    job = import_file(
        RegistryKind.TRAINING_COURSES,
        GOOD_FILES[RegistryKind.TRAINING_COURSES] + "AIG1,다른 이름,기관,2026-01-01,2026-02-01,1\n",
    )
    assert job.errors == [
        {
            "line": 4,
            "field": "course_id",
            "code": "duplicate",
            "message": "Same course_id as line 2.",
        }
    ]


@pytest.mark.parametrize(
    ("kind", "row", "field", "code"),
    [
        (RegistryKind.YOUTH_ALLOWANCE, f"{RRN_A},2026-13,2026-12", "paid_from", "invalid_month"),
        (RegistryKind.NATIONAL_VOUCHER, f"{rrn_hmac(RRN_A).upper()},2025", "rrn_hmac", None),
        (RegistryKind.TRAINING_COURSES, "C1,n,i,2026-01-01,2026-02-01,maybe", "vocational", None),
    ],
)
def test_kind_specific_values_are_checked(kind, row, field, code):
    header = GOOD_FILES[kind].split("\n", 1)[0]
    job = import_file(kind, f"{header}\n{row}\n")
    assert job.status == "failed"
    assert job.errors[0]["line"] == 2
    assert job.errors[0]["field"] == field
    assert code is None or job.errors[0]["code"] == code


def test_new_snapshot_supersedes_the_old_one_atomically(previous):
    job = import_file(
        RegistryKind.SOCIAL_SECURITY, SS_HEADER + f"{RRN_C},near_poor,11440,2025-01-01,\n"
    )

    previous.refresh_from_db()
    assert previous.status == "superseded"
    assert active_snapshot(RegistryKind.SOCIAL_SECURITY) == job.snapshot
    assert RegistrySnapshot.objects.filter(kind="social_security", status="active").count() == 1
    assert rows_of(previous) == 2  # screening runs may still point at it


def test_rerunning_a_finished_job_changes_nothing(previous):
    job = RegistryImportJob.objects.get(snapshot=previous)
    events = AuditEvent.objects.count()

    again = registry_import_run(job_id=job.pk)

    assert (again.status, again.snapshot_id, again.finished_at) == (
        "succeeded",
        previous.pk,
        job.finished_at,
    )
    assert RegistrySnapshot.objects.count() == 1
    assert AuditEvent.objects.count() == events


def test_job_stopped_mid_load_goes_on_from_its_chunks_done(previous, monkeypatch, settings):
    content = SS_HEADER + "".join(
        f"{rrn_for(n)},near_poor,11440,2025-01-01,\n" for n in range(10, 17)
    )
    job = import_file(RegistryKind.SOCIAL_SECURITY, content, run=False)
    settings.BAEUM_IMPORT_CHUNK_LINES = 3
    real_write, calls = import_chunks._write_chunk, []

    def write_then_crash(kind, rows):
        calls.append(kind)
        if len(calls) == 2:
            raise OperationalError("server closed the connection")
        real_write(kind, rows)

    monkeypatch.setattr(import_chunks, "_write_chunk", write_then_crash)
    with pytest.raises(OperationalError):
        registry_import_run(job_id=job.pk)
    job.refresh_from_db()
    stopped = job.snapshot
    assert (job.status, job.rows_read, rows_of(stopped)) == ("running", 3, 3)

    job = registry_import_run(job_id=job.pk)

    # The first chunk is not loaded again: each line once, on the same snapshot.
    assert (job.status, job.rows_read, job.rows_rejected) == ("succeeded", 7, 0)
    assert job.snapshot_id == stopped.pk and len(calls) == 4
    lines = SocialSecurityRecord.objects.filter(snapshot=stopped).values_list("line", flat=True)
    assert sorted(lines) == list(range(2, 9))
    assert active_snapshot(RegistryKind.SOCIAL_SECURITY) == job.snapshot


def test_progress_counts_every_rejected_row_but_keeps_100_errors(settings):
    settings.BAEUM_IMPORT_CHUNK_LINES = 50
    good = [f"{rrn_for(n)},near_poor,11440,2025-01-01,\n" for n in range(100, 400)]
    bad = ["bad-rrn,near_poor,11440,2025-01-01,\n"] * 150
    job = import_file(RegistryKind.SOCIAL_SECURITY, SS_HEADER + "".join(good + bad))

    assert (job.status, job.rows_read, job.rows_rejected) == ("failed", 450, 150)
    assert len(job.errors) == 100
    assert [e["line"] for e in job.errors] == list(range(302, 402))


def test_raw_rrn_is_stored_nowhere(previous):
    invalid = "991332-1234567"
    job = import_file(
        RegistryKind.SOCIAL_SECURITY,
        SS_HEADER + f"{RRN_C},near_poor,11440,2025-01-01,\n{invalid},near_poor,11440,2025-01-01,\n",
    )
    assert job.status == "failed"
    import_file(RegistryKind.NAEILBAEUM, GOOD_FILES[RegistryKind.NAEILBAEUM])
    import_file(RegistryKind.YOUTH_ALLOWANCE, GOOD_FILES[RegistryKind.YOUTH_ALLOWANCE])

    needles = [r.replace("-", "") for r in (RRN_A, RRN_B, RRN_C, invalid)]
    needles += [f"{n[:6]}-{n[6:]}" for n in needles]
    tables = [m._meta.db_table for m in (*RECORD_MODELS.values(), RegistryImportJob, AuditEvent)]
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            dump = repr(cursor.fetchall())
            assert not [n for n in needles if n in dump], table
    assert not RegistryImportJob.objects.exclude(file="").exists()


def test_upload_is_deleted_when_the_job_ends():
    job = import_file(RegistryKind.SOCIAL_SECURITY, GOOD_FILES["social_security"], run=False)
    path = job.file.path
    registry_import_run(job_id=job.pk)
    job.refresh_from_db()
    assert not job.file
    assert not os.path.exists(path)


def test_create_refuses_an_unknown_kind():
    with pytest.raises(ValidationError):
        import_file("tax_records", "a,b\n", run=False)
    assert not RegistryImportJob.objects.exists()


def test_create_queues_the_task_after_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = import_file(RegistryKind.TRAINING_COURSES, GOOD_FILES["training_courses"], run=False)
    job.refresh_from_db()
    assert job.status == "succeeded"
    # The import's entry, its one chunk's and the finish's; no round has applications
    # under review to re-screen.
    keys = [
        f"registry_import:{job.pk}",
        *(f"registry_import:{job.pk}:{job.snapshot_id}:{s}" for s in ("0", "finish")),
    ]
    assert list(TaskOutbox.objects.order_by("pk").values_list("key", "status", "runs")) == [
        (key, "done", 1) for key in keys
    ]
    assert AuditEvent.objects.filter(action="registry_import.create", object_id=job.pk).exists()


def test_management_command_imports_and_fails_loudly(tmp_path):
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(GOOD_FILES[RegistryKind.SOCIAL_SECURITY])
    bad.write_text(SS_HEADER + f"{RRN_A},near_poor,11440,2025-99-01,\n")
    out = io.StringIO()

    call_command("import_registry", "social_security", str(good), stdout=out)
    assert "succeeded, 2 rows read, 0 rejected" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("import_registry", "social_security", str(bad), stdout=out)
    assert "line 2 valid_from: invalid_date" in out.getvalue()
    assert RRN_A not in out.getvalue()
    assert active_snapshot("social_security").row_count == 2


def _write_big_file(path, rows: int) -> None:
    with path.open("w") as out:
        out.write("rrn_hmac,status,district,valid_from,valid_to\n")
        for n in range(rows):
            out.write(f"{n:064x},near_poor,11440,2025-01-01,\n")


def test_large_file_is_streamed_in_bounded_memory(tmp_path, monkeypatch, settings):
    # bulk_create under tracemalloc is slow on SQLite; PostgreSQL (COPY) takes the full size.
    rows = 200_000 if connection.vendor == "postgresql" else 50_000
    source = tmp_path / "big.csv"
    _write_big_file(source, rows)
    with source.open("rb") as stream:
        job = registry_import_create(
            kind="social_security",
            uploaded_file=File(stream, name="big.csv"),
            actor=None,
        )
    # Small chunks so that one chunk is well under the file, whatever the database.
    monkeypatch.setattr(import_chunks, "CHUNK_ROWS", 2_000)
    settings.BAEUM_IMPORT_CHUNK_LINES = 20_000
    tracemalloc.start()
    try:
        job = registry_import_run(job_id=job.pk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (job.status, job.rows_read, job.rows_rejected) == ("succeeded", rows, 0), job.errors
    assert rows_of(job.snapshot) == rows
    assert peak < source.stat().st_size / 2, peak


def test_admin_shows_jobs_snapshots_and_rows_read_only(admin_client, previous):
    for name in ("registryimportjob", "registrysnapshot", "socialsecurityrecord"):
        response = admin_client.get(f"/admin/eligibility/{name}/")
        assert response.status_code == 200, name
        assert b"to view |" in response.content  # "Select ... to view": no change form
