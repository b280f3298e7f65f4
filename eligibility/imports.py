"""Registry CSV imports: store the upload, stream and validate it, load a snapshot, activate.

A file is loaded into a `loading` snapshot in chunks that commit on their own, then
becomes the registry's active snapshot in one transaction only if every row is good.
Raw RRNs are turned into their HMAC as each line is read; neither the rows, the job
errors nor the logs ever hold one, and the stored upload is deleted once the job ends.
"""

import hashlib
import logging
import re
from array import array
from collections.abc import Iterable, Iterator
from itertools import chain, islice, repeat
from operator import itemgetter

from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import CharField, Count, F, Min, Window
from django.utils import timezone

from core.audit import audit_record
from eligibility.models import RECORD_MODELS, RegistryImportJob, RegistryKind, RegistrySnapshot
from eligibility.registry_csv import (
    COLUMNS,
    LINE_PROBLEMS,
    FastLines,
    RowError,
    is_person_kind,
    parse_line,
    read_blocks,
    read_header,
)
from eligibility.screening import rescreen_after_snapshot

logger = logging.getLogger(__name__)

CHUNK_ROWS = 10_000
MAX_ERRORS = 100
KEY_HASH_ROWS = 5_000_000  # beyond, the database alone looks for duplicates (40 MB kept)
# What makes two rows the same entry. A person may hold several Naeil-baeum cards or
# courses, youth-allowance periods and yearly vouchers, so only repeats of the same
# entry are duplicates there; the social-security status is one per person.
DUPLICATE_KEYS = {
    RegistryKind.SOCIAL_SECURITY: ("rrn_hmac",),
    RegistryKind.NAEILBAEUM: ("rrn_hmac", "card_valid_from", "course_id", "training_from"),
    RegistryKind.YOUTH_ALLOWANCE: ("rrn_hmac", "paid_from"),
    RegistryKind.NATIONAL_VOUCHER: ("rrn_hmac", "year"),
    RegistryKind.TRAINING_COURSES: ("course_id",),
}
_FINISHED = (RegistryImportJob.Status.SUCCEEDED, RegistryImportJob.Status.FAILED)


# Loading.


def _db_columns(kind: str) -> list[str]:
    person = ["rrn_hmac"] if is_person_kind(kind) else []
    return ["snapshot", "line", *person, *COLUMNS[kind]]


# Model instances handed to bulk_create at a time within a chunk's transaction.
_BATCH = 500
_CSV_QUOTED = re.compile(r'[,"\r\n]')


def _csv_field(value: str | None) -> str:
    if value is None:
        return ""  # unquoted and empty: NULL
    if _CSV_QUOTED.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def _csv_lines(rows: list[tuple]) -> str:
    """Return rows as lines of COPY's CSV format, using the CSV a row comes with."""
    return "".join(
        [
            f"{snapshot_id},{line},{csv}\n"
            if csv is not None
            else f"{snapshot_id},{line}," + ",".join(map(_csv_field, values)) + "\n"
            for snapshot_id, line, values, csv in rows
        ]
    )


def _write_chunk(kind: str, rows: Iterable[list[tuple]]) -> None:
    """Write rows as they come, in lists of (snapshot, line, values, csv) from _Rows.chunk.

    The values are canonical text (None for NULL), in COLUMNS order after the person's
    HMAC; csv, when not None, is already their CSV (see registry_csv.FastLines).
    """
    model = RECORD_MODELS[kind]
    fields = [model._meta.get_field(name) for name in _db_columns(kind)]
    if connection.vendor == "postgresql":
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in fields)
        # An empty text field is '' rather than NULL, as bulk_create stores it.
        texts = ", ".join(quote(f.column) for f in fields if isinstance(f, CharField))
        connection.ensure_connection()
        sql = (
            f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN "
            f"(FORMAT csv, FORCE_NOT_NULL ({texts}))"
        )
        # Rows are sent while the file is still being read: PostgreSQL stores one list
        # while the next is parsed.
        with connection.connection.cursor() as cursor, cursor.copy(sql) as copy:
            for batch in rows:
                copy.write(_csv_lines(batch))
        return
    # The fields turn the canonical text into dates, booleans and numbers.
    attnames, rows = [f.attname for f in fields[2:]], chain.from_iterable(rows)
    while batch := [
        model(snapshot_id=snapshot_id, line=line, **dict(zip(attnames, values, strict=True)))
        for snapshot_id, line, values, _ in islice(rows, _BATCH)
    ]:
        model.objects.bulk_create(batch)


def _duplicates(kind: str, snapshot_id: int) -> tuple[int, list[dict]]:
    """Count rows repeating an earlier one, and describe the first of them."""
    model = RECORD_MODELS[kind]
    key = DUPLICATE_KEYS[kind]
    # One hash aggregate answers the usual case (no repeats) without sorting the snapshot.
    groups = (
        model.objects.filter(snapshot_id=snapshot_id)
        .values(*key)
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .order_by()
    )
    if not groups.exists():
        return 0, []
    repeats = (
        model.objects.filter(snapshot_id=snapshot_id)
        .annotate(first_line=Window(Min("line"), partition_by=[F(name) for name in key]))
        .filter(line__gt=F("first_line"))
    )
    count = repeats.count()
    errors = [
        _error(line, key[0], "duplicate", f"Same {' and '.join(key)} as line {first_line}.")
        for line, first_line in repeats.order_by("line").values_list("line", "first_line")[
            :MAX_ERRORS
        ]
    ]
    return count, errors


def _error(line: int, field: str | None, code: str, message: str) -> dict:
    return {"line": line, "field": field, "code": code, "message": message}


def _discard(snapshot_id: int | None) -> None:
    if snapshot_id is None:
        return
    snapshot = RegistrySnapshot.objects.select_for_update().filter(pk=snapshot_id).first()
    if snapshot is None or snapshot.status != RegistrySnapshot.Status.LOADING:
        return
    RECORD_MODELS[snapshot.kind].objects.filter(snapshot_id=snapshot_id).delete()
    RegistrySnapshot.objects.filter(pk=snapshot_id).update(status=RegistrySnapshot.Status.DISCARDED)


class _Abandoned(Exception):
    """Another run of the same job took it over; this one stops without writing."""


# Services.


@transaction.atomic
def registry_import_create(
    *, kind: str, uploaded_file: File, actor, schedule: bool = True
) -> RegistryImportJob:
    """Store an uploaded registry CSV and queue its import."""
    if kind not in RegistryKind.values:
        raise ValidationError({"kind": ValidationError("Unknown registry.", code="unknown_kind")})
    original_name = (getattr(uploaded_file, "name", "") or "").rsplit("/", 1)[-1][:255]
    job = RegistryImportJob(kind=kind, original_name=original_name, created_by=actor)
    job.file.save(f"{kind}.csv", uploaded_file, save=False)
    job.save()
    audit_record(
        actor=actor,
        obj=job,
        action="registry_import.create",
        to_state=job.status,
        data={"kind": kind},
    )
    if schedule:
        from eligibility.tasks import registry_import_run_task

        transaction.on_commit(lambda: registry_import_run_task.delay(job.pk))
    return job


def _claim(job_id: int) -> tuple[RegistryImportJob, RegistrySnapshot | None]:
    """Mark the job running on a fresh loading snapshot, discarding a crashed run's."""
    with transaction.atomic():
        job = RegistryImportJob.objects.select_for_update().get(pk=job_id)
        if job.status in _FINISHED:
            return job, None
        # Found running: the worker died mid-load (acks_late redelivered the task).
        _discard(job.snapshot_id)
        snapshot = RegistrySnapshot.objects.create(kind=job.kind, source_name=job.original_name)
        job.status, job.snapshot, job.errors = RegistryImportJob.Status.RUNNING, snapshot, []
        job.rows_read = job.rows_rejected = 0
        job.started_at, job.finished_at = timezone.now(), None
        job.save(
            update_fields=[
                "status",
                "snapshot",
                "errors",
                "rows_read",
                "rows_rejected",
                "started_at",
                "finished_at",
            ]
        )
    return job, snapshot


class _Rows:
    """The data lines of an upload, checked as they are read, chunk by chunk.

    Rows read, rows rejected and the first MAX_ERRORS errors add up on the side.
    """

    def __init__(self, kind: str, person: str, blocks: Iterator, snapshot_id: int):
        self.kind, self.person, self.blocks, self.snapshot_id = kind, person, blocks, snapshot_id
        self.fast = FastLines(kind, person)
        self.pending: tuple | None = None  # the rest of a block, not read yet
        self.read = self.rejected = 0
        self.errors: list[dict] = []
        self.done = False
        # The hash of each written row's duplicate key, in buckets by its low byte: no
        # hash twice in a bucket proves the file repeats no key, which spares the
        # database grouping the whole snapshot. The values are canonical text, so equal
        # keys hash alike; 8 bytes a row, and none kept past KEY_HASH_ROWS.
        columns = _db_columns(kind)[2:]
        self.key = itemgetter(*(columns.index(name) for name in DUPLICATE_KEYS[kind]))
        self.key_hashes: list[array] | None = [array("q") for _ in range(256)]

    def chunk(self) -> Iterator[list[tuple]]:
        """Yield the good rows among the next CHUNK_ROWS rows read, in lists for _write_chunk."""
        if self.read - self.rejected > KEY_HASH_ROWS:
            self.key_hashes = None
        room = CHUNK_ROWS
        while room:
            block = self.pending or next(self.blocks, None)
            if block is None:
                self.done = True
                return
            start, lines, problems = block
            # Lines are checked a block at a time while they are all well formed.
            rows = None if problems else self._well_formed(start, lines[:room])
            if rows is None:
                rows, used, counted = self._line_by_line(start, lines, problems, room)
            else:
                used = counted = len(rows)
            self.read += counted
            room -= counted
            self.pending = (start + used, lines[used:], problems) if used < len(lines) else None
            if rows:
                if self.key_hashes is not None:
                    for digest in map(hash, map(self.key, map(itemgetter(2), rows))):
                        self.key_hashes[digest & 255].append(digest)
                yield rows

    def may_repeat(self) -> bool:
        """Tell whether two written rows may share a duplicate key; False is certain."""
        if self.key_hashes is None:
            return True
        return any(len(set(bucket)) < len(bucket) for bucket in self.key_hashes)

    def _well_formed(self, start: int, lines: list[str]) -> list[tuple] | None:
        values = self.fast.values(lines)
        if values is None:
            return None
        numbers = range(start, start + len(lines))
        return list(zip(repeat(self.snapshot_id), numbers, values, self.fast.csv(lines, values)))

    def _line_by_line(self, start: int, lines: list[str], problems: dict, room: int):
        """Check lines one by one up to room rows; return the good rows, lines used, rows read."""
        rows, read = [], 0
        for used, text in enumerate(lines, 1):
            number, problem = start + used - 1, problems.get(start + used - 1)
            if not problem and not text.strip():
                continue  # a blank line is no row
            read += 1
            checked = None if problem else self._well_formed(number, [text])
            if checked is None:
                checked = self._check(number, text, problem)
            rows += checked  # the line's row, or none if it was rejected
            if read == room:
                return rows, used, read
        return rows, len(lines), read

    def _check(self, number: int, text: str, problem: str | None) -> list[tuple]:
        """Check a line in detail: a list of its row, or an empty one and an error."""
        try:
            if problem:
                raise RowError(None, problem, LINE_PROBLEMS[problem])
            return [(self.snapshot_id, number, parse_line(self.kind, self.person, text), None)]
        except RowError as exc:
            self.rejected += 1
            if len(self.errors) < MAX_ERRORS:
                self.errors.append(_error(number, exc.field, exc.code, exc.message))
            return []


def _progress(job: RegistryImportJob, snapshot: RegistrySnapshot, rows: _Rows) -> None:
    """Load the next chunk of rows and record the counts so far, in one transaction."""
    # No waiting for the disk at each chunk: the activation's commit, which does wait,
    # makes the chunks durable with it, and a crash before then leaves the job running,
    # to be rerun from scratch. (A caller's own transaction keeps its usual commit.)
    asynchronous = connection.vendor == "postgresql" and not connection.in_atomic_block
    # The counts are known once the chunk is read, so they come after its rows; a run
    # that took the job over meanwhile makes this one roll the chunk back.
    with transaction.atomic():
        if asynchronous:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        _write_chunk(job.kind, rows.chunk())
        owned = RegistryImportJob.objects.filter(
            pk=job.pk, snapshot=snapshot, status=RegistryImportJob.Status.RUNNING
        ).update(rows_read=rows.read, rows_rejected=rows.rejected)
        if not owned:
            raise _Abandoned


def _load(job: RegistryImportJob, snapshot: RegistrySnapshot) -> tuple[int, int, list, str, bool]:
    """Stream the file into the snapshot.

    Return rows read, rejected, errors, SHA-256 and whether the rows may hold duplicates.
    """
    digest = hashlib.sha256()
    with job.file.open("rb") as stored:
        # Read the storage's own file object: the FieldFile proxy costs a lookup per read.
        blocks = read_blocks(getattr(stored, "file", stored), digest)
        # The first block starts with the header; the rest of it is data.
        start, lines, problems = next(blocks, (1, [], {}))
        try:
            person = read_header(
                job.kind, (start, lines[0], problems.get(start)) if lines else None
            )
        except RowError as exc:
            return 0, 1, [_error(1, exc.field, exc.code, exc.message)], digest.hexdigest(), False
        rows = _Rows(
            job.kind, person, chain([(start + 1, lines[1:], problems)], blocks), snapshot.pk
        )
        while not rows.done:
            _progress(job, snapshot, rows)
    read, rejected, errors = rows.read, rows.rejected, rows.errors
    if read == 0 and not rejected:
        errors.append(_error(2, None, "no_rows", "The file has a header but no rows."))
        rejected = 1
    return read, rejected, errors, digest.hexdigest(), rows.may_repeat()


def _finish(job, snapshot, *, read: int, rejected: int, errors: list, sha256: str) -> None:
    # Lock order: the job, then snapshots by id (the previous active one before ours).
    with transaction.atomic():
        locked = RegistryImportJob.objects.select_for_update().get(pk=job.pk)
        if locked.snapshot_id != snapshot.pk or locked.status != RegistryImportJob.Status.RUNNING:
            raise _Abandoned
        now = timezone.now()
        if rejected:
            _discard(snapshot.pk)
            status = RegistryImportJob.Status.FAILED
        else:
            active = RegistrySnapshot.objects.filter(
                kind=job.kind, status=RegistrySnapshot.Status.ACTIVE
            )
            previous = list(active.select_for_update().order_by("pk").values_list("pk", flat=True))
            RegistrySnapshot.objects.filter(pk__in=previous).update(
                status=RegistrySnapshot.Status.SUPERSEDED
            )
            RegistrySnapshot.objects.filter(pk=snapshot.pk).update(
                status=RegistrySnapshot.Status.ACTIVE,
                activated_at=now,
                row_count=read,
                sha256=sha256,
            )
            status = RegistryImportJob.Status.SUCCEEDED
            transaction.on_commit(lambda: rescreen_after_snapshot(snapshot_id=snapshot.pk))
        RegistryImportJob.objects.filter(pk=job.pk).update(
            status=status,
            rows_read=read,
            rows_rejected=rejected,
            errors=sorted(errors, key=lambda e: e["line"])[:MAX_ERRORS],
            finished_at=now,
        )
        audit_record(
            actor=None,
            obj=locked,
            action=f"registry_import.{status}",
            from_state=RegistryImportJob.Status.RUNNING,
            to_state=status,
            data={"snapshot": snapshot.pk, "rows_read": read, "rows_rejected": rejected},
        )


def _activate_or_fail(job, snapshot, **result) -> None:
    # Two imports of one kind finishing together: the loser's activation hits the
    # one-active constraint after the winner commits; it retries and supersedes it.
    for attempt in range(3):
        try:
            _finish(job, snapshot, **result)
            return
        except IntegrityError:
            if attempt == 2:
                raise


def _delete_upload(job: RegistryImportJob) -> None:
    # The upload holds raw RRNs; only the snapshot's hashes outlive the job.
    if job.file:
        try:
            job.file.delete(save=False)
        except OSError:
            logger.warning("registry import %s: could not delete the uploaded file", job.pk)
        RegistryImportJob.objects.filter(pk=job.pk).update(file="")


def registry_import_run(*, job_id: int) -> RegistryImportJob:
    """Load, check and activate the job's file; a finished job is left as it is."""
    job, snapshot = _claim(job_id)
    if snapshot is None:
        return job
    try:
        read, rejected, errors, sha256, may_repeat = _load(job, snapshot)
        if read and may_repeat:
            duplicates, duplicate_errors = _duplicates(job.kind, snapshot.pk)
            rejected += duplicates
            errors = sorted(errors + duplicate_errors, key=lambda e: e["line"])[:MAX_ERRORS]
        _activate_or_fail(job, snapshot, read=read, rejected=rejected, errors=errors, sha256=sha256)
    except _Abandoned:
        logger.info("registry import %s: taken over by another run", job.pk)
        return RegistryImportJob.objects.get(pk=job.pk)
    except (OperationalError, InterfaceError):
        raise  # left running: the task retries and the rerun starts from scratch
    except Exception as exc:  # noqa: BLE001 - the job must end, and say so
        # Only the class name: a message could quote file content.
        logger.error("registry import %s failed: %s", job.pk, type(exc).__name__)
        code, message = "internal_error", "The import stopped on an unexpected error."
        if isinstance(exc, FileNotFoundError):
            code, message = "file_missing", "The uploaded file is gone."
        _activate_or_fail(
            job, snapshot, read=0, rejected=1, errors=[_error(0, None, code, message)], sha256=""
        )
    job.refresh_from_db()
    logger.info(
        "registry import %s %s: %s rows, %s rejected",
        job.pk,
        job.status,
        job.rows_read,
        job.rows_rejected,
    )
    _delete_upload(job)
    return job


# Selectors.


def active_snapshot(kind: str) -> RegistrySnapshot | None:
    """Return the registry's active snapshot, if one was ever imported."""
    return RegistrySnapshot.objects.filter(kind=kind, status=RegistrySnapshot.Status.ACTIVE).first()


def registry_import_get(*, pk: int) -> RegistryImportJob:
    """Return one import job or raise RegistryImportJob.DoesNotExist."""
    return RegistryImportJob.objects.get(pk=pk)
