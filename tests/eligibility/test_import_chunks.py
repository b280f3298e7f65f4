"""A registry import cut into chunks of lines: the same snapshot, counts and errors as one
pass, whatever the cuts; a chunk run twice writes nothing twice.

(Real workers sharing the chunks, and one killed mid-import: tests/integration/test_faults.py.)
"""

import io

import pytest
from django.core.files.base import ContentFile
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.crypto import DecryptionError, encrypt_file, rrn_hmac
from core.files import SealedReader
from eligibility import import_chunks, imports
from eligibility.imports import registry_import_create, registry_import_run
from eligibility.models import RegistryImportChunk, RegistryImportJob, SocialSecurityRecord
from eligibility.registry_csv import read_blocks
from eligibility.registry_load import LineRange, line_ranges
from tests.eligibility.test_imports import SS_HEADER, rows_of
from tests.factories import rrn_for

pytestmark = pytest.mark.django_db


def good(n: int) -> str:
    return f"{rrn_for(n)},near_poor,11440,2025-01-01,\n"


def upload(content: str) -> RegistryImportJob:
    return registry_import_create(
        kind="social_security",
        uploaded_file=ContentFile(content.encode(), name="r.csv"),
        actor=None,
    )


def imported(content: str, settings, chunk_lines: int) -> RegistryImportJob:
    settings.BAEUM_IMPORT_CHUNK_LINES = chunk_lines
    job = registry_import_run(job_id=upload(content).pk)
    assert RegistryImportChunk.objects.filter(snapshot_id=job.snapshot_id).count() == (
        -(-(len(content.removesuffix("\n").split("\n")) - 1) // chunk_lines)
    )
    return job


def outcome(job: RegistryImportJob) -> tuple:
    return job.status, job.rows_read, job.rows_rejected, job.errors


# Lines 2..: good rows, a blank line, CRLF, and a bad line and a repeat on either side
# of the cuts at every 3 lines (between lines 4|5, 7|8, 10|11 and 13|14).
BAD_FILE = SS_HEADER + "".join(
    [
        good(1),  # 2
        good(2),  # 3
        "bad-rrn,near_poor,11440,2025-01-01,\n",  # 4: last line of the first chunk
        f"{rrn_for(3)},near_poor,11440,2025-99-01,\n",  # 5: first line of the second
        good(2),  # 6: repeats line 3, in another chunk
        "\n",  # 7: a blank line is no row
        good(7),  # 8
        good(7),  # 9: repeats line 8, in the same chunk
        good(10),  # 10
        good(1).replace("\n", "\r\n"),  # 11: repeats line 2, past a cut
        f'"{rrn_for(12)}",near_poor,11440,2025-01-01,"a\n',  # 12: a quoted line break...
        '"\n',  # 13: ...makes two bad lines
        good(14),  # 14
    ]
)


@pytest.mark.parametrize("chunk_lines", [1, 2, 3, 5])
def test_a_chunked_import_finds_the_same_errors_and_duplicates_as_one_pass(settings, chunk_lines):
    one_pass = imported(BAD_FILE, settings, 10_000)
    chunked = imported(BAD_FILE, settings, chunk_lines)

    assert outcome(chunked) == outcome(one_pass)
    assert one_pass.status == "failed" and one_pass.rows_read == 12
    assert [(e["line"], e["code"]) for e in chunked.errors] == [
        (4, "invalid_format"),
        (5, "invalid_date"),
        (6, "duplicate"),
        (9, "duplicate"),
        (11, "duplicate"),
        (12, "invalid_date"),
        (13, "wrong_column_count"),
    ]
    assert chunked.errors[2]["message"] == "Same rrn_hmac as line 3."
    assert rows_of(chunked.snapshot) == 0  # discarded, as one pass does


def test_a_chunked_import_loads_the_same_rows_as_one_pass(settings):
    content = "\ufeff" + SS_HEADER + "".join(good(n) for n in range(20, 31))
    content = content.replace(good(25), good(25).replace("\n", "\r\n")) + "\n" + good(40)[:-1]
    rows = {}
    for chunk_lines in (10_000, 4, 1):
        job = imported(content, settings, chunk_lines)
        assert (job.status, job.rows_read, job.rows_rejected) == ("succeeded", 12, 0), job.errors
        records = SocialSecurityRecord.objects.filter(snapshot=job.snapshot).order_by("line")
        rows[chunk_lines] = list(records.values_list("line", "rrn_hmac", "status", "valid_from"))
        assert job.snapshot.sha256 == RegistryImportJob.objects.get(pk=job.pk).snapshot.sha256
    assert rows[4] == rows[1] == rows[10_000]
    assert [line for line, *_ in rows[1]] == [*range(2, 13), 14]
    assert rows[1][-1][1] == rrn_hmac(rrn_for(40))


def test_a_chunk_run_again_writes_nothing_twice(settings):
    settings.BAEUM_IMPORT_CHUNK_LINES = 3
    job = upload(SS_HEADER + "".join(good(n) for n in range(50, 57)))
    job, indexes = imports._start(job.pk, spread=False)
    snapshot = job.snapshot
    assert indexes == [0, 1, 2]
    imports.registry_import_chunk(job_id=job.pk, snapshot_id=snapshot.pk, index=0, spread=False)
    stale = RegistryImportChunk.objects.get(snapshot=snapshot, index=0)
    stale.done = False  # as a second delivery read it before the first one committed
    for _ in range(2):
        imports.registry_import_chunk(job_id=job.pk, snapshot_id=snapshot.pk, index=0)
        import_chunks.load_chunk(job, stale, spread=False)

    job.refresh_from_db()
    assert (job.rows_read, rows_of(snapshot)) == (3, 3)
    for index in (1, 2, 1):
        imports.registry_import_chunk(job_id=job.pk, snapshot_id=snapshot.pk, index=index)
    job = imports.registry_import_finish(job_id=job.pk, snapshot_id=snapshot.pk)
    assert (job.status, job.rows_read, rows_of(snapshot), job.errors) == ("succeeded", 7, 7, [])
    # After the end, a late chunk or finish changes nothing either.
    imports.registry_import_chunk(job_id=job.pk, snapshot_id=snapshot.pk, index=2)
    again = imports.registry_import_finish(job_id=job.pk, snapshot_id=snapshot.pk)
    assert (again.status, again.rows_read, again.finished_at) == ("succeeded", 7, job.finished_at)
    assert rows_of(snapshot) == 7


def test_a_header_alone_or_a_bad_header_ends_the_job_as_one_pass_did(settings):
    settings.BAEUM_IMPORT_CHUNK_LINES = 2
    header_only = registry_import_run(job_id=upload(SS_HEADER).pk)
    assert (header_only.status, header_only.errors[0]["code"]) == ("failed", "no_rows")
    bad = registry_import_run(job_id=upload("rrn,colour\n" + good(1)).pk)
    assert (bad.status, bad.rows_rejected, bad.errors[0]["code"]) == ("failed", 1, "invalid_header")
    assert not RegistryImportJob.objects.exclude(file="").exists()


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    data=st.lists(st.sampled_from([b"a,b", b"\n", b"\r\n", b"", b"x" * 5]), max_size=40).map(
        b"".join
    ),
    lines=st.integers(1, 5),
)
def test_ranges_read_from_their_first_line_give_the_lines_of_the_whole_file(data, lines):
    whole = [
        (number, text)
        for start, texts, _ in read_blocks(io.BytesIO(data))
        for number, text in enumerate(texts, start)
    ]
    stream = io.BytesIO(data)
    _, ranges = line_ranges(stream, lines)
    pieces = [
        (number, text)
        for first, start, end in ranges
        for block_start, texts, _ in read_blocks(LineRange(stream, start, end), first_line=first)
        for number, text in enumerate(texts, block_start)
    ]
    assert pieces == whole[1:]


def test_a_sealed_upload_is_read_from_any_byte_decrypting_only_from_its_chunk():
    data = bytes(range(256)) * 3
    sealed = io.BytesIO()
    encrypt_file(io.BytesIO(data), sealed, purpose="registry_upload", chunk_bytes=100)
    for offset in (0, 1, 99, 100, 101, 555, 767):
        sealed.seek(0)
        reader = SealedReader(sealed, purpose="registry_upload")
        reader.seek(offset)
        assert reader.read() == data[offset:], offset
    # A chunk after the offset that was tampered with still fails, before its bytes.
    tampered = bytearray(sealed.getvalue())
    tampered[-5] ^= 1
    reader = SealedReader(io.BytesIO(bytes(tampered)), purpose="registry_upload")
    reader.seek(650)
    with pytest.raises(DecryptionError):
        reader.read()
