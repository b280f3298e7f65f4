"""Registry CSV imports: store the upload, stream and validate it, load a snapshot, activate.

A file is loaded into a `loading` snapshot in chunks that commit on their own, then
becomes the registry's active snapshot in one transaction only if every row is good.
Raw RRNs are turned into their HMAC as each line is read; neither the rows, the job
errors nor the logs ever hold one, and the stored upload is deleted once the job ends.
"""

import hashlib
import logging

from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Count, F, Min, Window
from django.utils import timezone

from core.audit import audit_record
from eligibility.models import RECORD_MODELS, RegistryImportJob, RegistryKind, RegistrySnapshot
from eligibility.registry_csv import (
    COLUMNS,
    LINE_PROBLEMS,
    PARSERS,
    RowError,
    is_person_kind,
    person_hash,
    read_header,
    read_lines,
    split_line,
)
from eligibility.screening import rescreen_after_snapshot

logger = logging.getLogger(__name__)

CHUNK_ROWS = 10_000
MAX_ERRORS = 100
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


def _write_chunk(kind: str, rows: list[tuple]) -> None:
    model = RECORD_MODELS[kind]
    fields = [model._meta.get_field(name) for name in _db_columns(kind)]
    if connection.vendor == "postgresql":
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in fields)
        connection.ensure_connection()
        sql = f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN"
        with connection.connection.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
        return
    attnames = [f.attname for f in fields]
    model.objects.bulk_create([model(**dict(zip(attnames, row, strict=True))) for row in rows])


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


def _progress(job: RegistryImportJob, snapshot: RegistrySnapshot, rows: list, read, rejected):
    with transaction.atomic():
        owned = RegistryImportJob.objects.filter(
            pk=job.pk, snapshot=snapshot, status=RegistryImportJob.Status.RUNNING
        ).update(rows_read=read, rows_rejected=rejected)
        if not owned:
            raise _Abandoned
        if rows:
            _write_chunk(job.kind, rows)


def _load(job: RegistryImportJob, snapshot: RegistrySnapshot) -> tuple[int, int, list, str]:
    """Stream the file into the snapshot; return rows read, rejected, errors and SHA-256."""
    parse, digest = PARSERS[job.kind], hashlib.sha256()
    width = len(COLUMNS[job.kind]) + (1 if is_person_kind(job.kind) else 0)
    read = rejected = 0
    errors: list[dict] = []
    rows: list[tuple] = []
    snapshot_id = snapshot.pk
    with job.file.open("rb") as stored:
        # Read the storage's own file object: the FieldFile proxy costs a lookup per line.
        lines = read_lines(getattr(stored, "file", stored), digest)
        try:
            person = read_header(job.kind, next(lines, None))
        except RowError as exc:
            return 0, 1, [_error(1, exc.field, exc.code, exc.message)], digest.hexdigest()
        for number, text, problem in lines:
            if not problem and not text.strip():
                continue
            read += 1
            try:
                if problem:
                    raise RowError(None, problem, LINE_PROBLEMS[problem])
                if "\x00" in text:
                    raise RowError(None, "invalid_character", "The line contains a NUL byte.")
                values = split_line(text)
                if len(values) != width:
                    message = f"Expected {width} columns, found {len(values)}."
                    raise RowError(None, "wrong_column_count", message)
                if person:
                    row = (snapshot_id, number, person_hash(person, values[0]), *parse(values[1:]))
                else:
                    row = (snapshot_id, number, *parse(values))
                rows.append(row)
            except RowError as exc:
                rejected += 1
                if len(errors) < MAX_ERRORS:
                    errors.append(_error(number, exc.field, exc.code, exc.message))
            if read % CHUNK_ROWS == 0:
                _progress(job, snapshot, rows, read, rejected)
                rows = []
        _progress(job, snapshot, rows, read, rejected)
    if read == 0 and not rejected:
        errors.append(_error(2, None, "no_rows", "The file has a header but no rows."))
        rejected = 1
    return read, rejected, errors, digest.hexdigest()


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
            active = RegistrySnapshot.objects.filter(kind=job.kind, status="active")
            previous = list(active.select_for_update().order_by("pk").values_list("pk", flat=True))
            RegistrySnapshot.objects.filter(pk__in=previous).update(status="superseded")
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
        read, rejected, errors, sha256 = _load(job, snapshot)
        if read:
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
