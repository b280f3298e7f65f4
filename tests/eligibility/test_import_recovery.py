"""Registry imports that stop, come back late or are given up: the newest upload stays
active, half-loaded snapshots go, and the upload is encrypted until the job ends."""

import io
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.files.base import ContentFile
from django.db import OperationalError, connections

from core.crypto import FILE_MAGIC, decrypt_file
from core.models import TaskOutbox
from eligibility import import_chunks, imports
from eligibility.imports import (
    active_snapshot,
    registry_import_abandon,
    registry_import_create,
    registry_import_run,
)
from eligibility.models import RegistryImportJob, RegistryKind, RegistrySnapshot
from tests.eligibility.test_imports import SS_HEADER, rows_of
from tests.factories import rrn_for

pytestmark = pytest.mark.django_db
SOCIAL = RegistryKind.SOCIAL_SECURITY


def upload(*numbers: int) -> RegistryImportJob:
    content = SS_HEADER + "".join(f"{rrn_for(n)},near_poor,11440,2025-01-01,\n" for n in numbers)
    return registry_import_create(
        kind=SOCIAL, uploaded_file=ContentFile(content.encode(), name="r.csv"), actor=None
    )


def test_an_older_upload_never_activates_over_a_newer_one():
    older, newer = upload(1, 2), upload(3)
    assert registry_import_run(job_id=newer.pk).status == "succeeded"

    older = registry_import_run(job_id=older.pk)

    assert older.status == "failed"
    assert [e["code"] for e in older.errors] == ["superseded"]
    assert active_snapshot(SOCIAL) == RegistryImportJob.objects.get(pk=newer.pk).snapshot
    assert not older.file  # its upload is deleted all the same


def test_a_stopped_import_taken_over_after_a_newer_one_discards_its_half_snapshot(
    monkeypatch, settings
):
    older = upload(*range(10, 17))
    settings.BAEUM_IMPORT_CHUNK_LINES = 3
    real_write, calls = import_chunks._write_chunk, []

    def write_then_die(kind, rows):
        calls.append(kind)
        if len(calls) == 2:
            raise OperationalError("server closed the connection")
        real_write(kind, rows)

    monkeypatch.setattr(import_chunks, "_write_chunk", write_then_die)
    with pytest.raises(OperationalError):
        registry_import_run(job_id=older.pk)
    half = RegistryImportJob.objects.get(pk=older.pk).snapshot
    assert (half.status, rows_of(half)) == ("loading", 3)
    monkeypatch.setattr(import_chunks, "_write_chunk", real_write)
    newer = registry_import_run(job_id=upload(20).pk)
    assert newer.status == "succeeded"

    older = registry_import_run(job_id=older.pk)  # the late redelivery

    half.refresh_from_db()
    assert (older.status, [e["code"] for e in older.errors]) == ("failed", ["superseded"])
    assert (half.status, rows_of(half)) == ("discarded", 0)
    assert active_snapshot(SOCIAL).pk == newer.snapshot_id
    assert not RegistrySnapshot.objects.filter(status="loading").exists()


def test_an_upload_older_than_the_active_one_is_refused_when_it_finishes(monkeypatch):
    # The newer import activates while the older one is loading, before its finish.
    older, newer = upload(1), upload(2)
    real_finish = imports.registry_import_finish

    def finish_after_newer(*, job_id, snapshot_id):
        if job_id == older.pk:
            assert registry_import_run(job_id=newer.pk).status == "succeeded"
        return real_finish(job_id=job_id, snapshot_id=snapshot_id)

    monkeypatch.setattr(imports, "registry_import_finish", finish_after_newer)
    older = registry_import_run(job_id=older.pk)

    assert (older.status, older.errors[0]["code"]) == ("failed", "superseded")
    assert RegistrySnapshot.objects.get(pk=older.snapshot_id).status == "discarded"
    assert active_snapshot(SOCIAL).pk == RegistryImportJob.objects.get(pk=newer.pk).snapshot_id


def test_the_upload_is_encrypted_at_rest_from_its_first_byte_until_the_job_ends():
    job = upload(1, 2)
    path = job.file.path
    with open(path, "rb") as stored:
        sealed = stored.read()
    assert sealed.startswith(FILE_MAGIC)
    for n in (1, 2):
        raw = rrn_for(n)
        assert raw.encode() not in sealed and raw.replace("-", "").encode() not in sealed
    plain = b"".join(
        decrypt_file(io.BytesIO(sealed), purpose=RegistryImportJob.FILE_PURPOSE)
    ).decode()
    assert rrn_for(1) in plain

    assert registry_import_run(job_id=job.pk).status == "succeeded"
    assert not os.path.exists(path)


def test_a_stored_upload_that_does_not_decrypt_fails_the_job_and_is_deleted():
    job = upload(1)
    with open(job.file.path, "r+b") as stored:
        stored.seek(-3, os.SEEK_END)
        stored.write(b"xyz")
    path = job.file.path

    job = registry_import_run(job_id=job.pk)

    assert (job.status, job.errors[0]["code"]) == ("failed", "file_unreadable")
    assert not active_snapshot(SOCIAL)
    assert not os.path.exists(path)


def test_an_upload_stored_in_plaintext_before_is_still_imported():
    job = upload(1)
    with open(job.file.path, "wb") as stored:
        stored.write((SS_HEADER + f"{rrn_for(1)},near_poor,11440,2025-01-01,\n").encode())
    assert registry_import_run(job_id=job.pk).status == "succeeded"


def test_a_given_up_import_ends_failed_without_its_half_snapshot_or_upload(monkeypatch, settings):
    job = upload(*range(10, 17))
    settings.BAEUM_IMPORT_CHUNK_LINES = 3
    monkeypatch.setattr(
        imports, "load_chunk", lambda *a, **k: (_ for _ in ()).throw(OperationalError("gone"))
    )
    with pytest.raises(OperationalError):
        registry_import_run(job_id=job.pk)
    path = job.file.path
    half = RegistryImportJob.objects.get(pk=job.pk).snapshot

    job = registry_import_abandon(job_id=job.pk)

    half.refresh_from_db()
    assert (job.status, job.errors[0]["code"]) == ("failed", "abandoned")
    assert half.status == "discarded"
    assert not os.path.exists(path)


def test_the_import_is_queued_through_the_task_outbox(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = upload(1)
    entry = TaskOutbox.objects.get(key=f"registry_import:{job.pk}")
    assert (entry.task, entry.args, entry.status) == (
        "eligibility.tasks.registry_import_run_task",
        [job.pk],
        "done",
    )


@pytest.mark.django_db(transaction=True)
def test_concurrent_imports_of_one_registry_leave_the_newest_active(on_postgres):
    jobs = [upload(n) for n in (50, 51, 52, 53)]

    def run(job_id):
        try:
            return registry_import_run(job_id=job_id).status
        finally:
            connections.close_all()

    # The newest first, so that the older ones finish after it.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(run, [job.pk for job in reversed(jobs)]))

    newest = RegistryImportJob.objects.get(pk=jobs[-1].pk)
    assert newest.status == "succeeded"
    assert active_snapshot(SOCIAL).pk == newest.snapshot_id
    assert RegistrySnapshot.objects.filter(kind=SOCIAL, status="active").count() == 1
    for job in RegistryImportJob.objects.exclude(pk=newest.pk):
        assert job.status in ("succeeded", "failed")
        if job.status == "failed":
            assert job.errors[0]["code"] == "superseded"
