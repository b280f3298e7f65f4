"""Registry CSV imports: store the upload, stream and validate it, load a snapshot, activate.

A file is loaded into a `loading` snapshot in chunks that commit on their own, then
becomes the registry's active snapshot in one transaction only if every row is good.
Raw RRNs are turned into their HMAC as each line is read; neither the rows, the job
errors nor the logs ever hold one, and the stored upload is deleted once the job ends.
"""

import calendar
import csv
import functools
import hashlib
import logging
import re
from datetime import date

from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Min, Window
from django.utils import timezone

from core.audit import audit_record
from core.crypto import rrn_hmac
from core.districts import SEOUL_DISTRICTS
from core.rrn import validate_rrn
from eligibility.models import RECORD_MODELS, RegistryImportJob, RegistryKind, RegistrySnapshot
from eligibility.screening import rescreen_after_snapshot

logger = logging.getLogger(__name__)

CHUNK_ROWS = 10_000
MAX_ERRORS = 100
MAX_LINE_BYTES = 64 * 1024
PERSON_COLUMNS = ("rrn", "rrn_hmac")
COLUMNS = {
    kind: tuple(columns.split())
    for kind, columns in (
        (RegistryKind.SOCIAL_SECURITY, "status district valid_from valid_to"),
        (
            RegistryKind.NAEILBAEUM,
            "card_valid_from card_valid_to course_id training_from training_to",
        ),
        (RegistryKind.YOUTH_ALLOWANCE, "paid_from paid_to"),
        (RegistryKind.NATIONAL_VOUCHER, "year"),
        (RegistryKind.TRAINING_COURSES, "course_id name institution starts_on ends_on vocational"),
    )
}
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
LINE_PROBLEMS = {
    "invalid_encoding": "The line is not valid UTF-8.",
    "line_too_long": f"The line is longer than {MAX_LINE_BYTES} bytes.",
}
_HMAC_RE = re.compile(r"[0-9a-f]{64}")
_YEAR_RE = re.compile(r"[0-9]{4}")
_BOOLEANS = {"true": True, "1": True, "y": True, "false": False, "0": False, "n": False}
_SS_STATUSES = ("basic_livelihood", "near_poor")
_FINISHED = (RegistryImportJob.Status.SUCCEEDED, RegistryImportJob.Status.FAILED)


class RowError(Exception):
    """One rejected value; the message never repeats the value itself."""

    def __init__(self, field: str | None, code: str, message: str):
        super().__init__(message)
        self.field, self.code, self.message = field, code, message


def is_person_kind(kind: str) -> bool:
    """Tell whether the registry's rows are people matched by RRN hash."""
    return kind != RegistryKind.TRAINING_COURSES


# Values.


@functools.lru_cache(maxsize=65_536)
def _iso_date(text: str) -> date:
    # date.fromisoformat also takes 20240101 and 2024-W01-1; the files promise YYYY-MM-DD.
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValueError(text)
    return date.fromisoformat(text)


@functools.lru_cache(maxsize=4_096)
def _month(text: str) -> tuple[date, date]:
    if len(text) != 7 or text[4] != "-" or not (text[:4] + text[5:]).isdigit():
        raise ValueError(text)
    year, month = int(text[:4]), int(text[5:])
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def _date(value: str, field: str, *, required: bool = True) -> date | None:
    if not value:
        if required:
            raise RowError(field, "required", f"{field} is required.")
        return None
    try:
        return _iso_date(value)
    except ValueError:
        raise RowError(field, "invalid_date", f"{field} must be a date as YYYY-MM-DD.") from None


def _ordered(start, end, field: str) -> None:
    if start and end and end < start:
        raise RowError(field, "invalid_range", f"{field} is before the start of the period.")


def _text(value: str, field: str, max_length: int, *, required: bool = True) -> str:
    if required and not value:
        raise RowError(field, "required", f"{field} is required.")
    if len(value) > max_length:
        raise RowError(field, "too_long", f"{field} is longer than {max_length} characters.")
    return value


def _person(column: str, value: str) -> str:
    if column == "rrn_hmac":
        if not _HMAC_RE.fullmatch(value):
            raise RowError(column, "invalid_rrn_hmac", "rrn_hmac must be 64 lowercase hex digits.")
        return value
    try:
        return rrn_hmac(validate_rrn(value))
    except ValidationError as exc:
        raise RowError(column, exc.code or "invalid_rrn", exc.messages[0]) from None


def _social_security(v: list[str]) -> tuple:
    if v[0] not in _SS_STATUSES:
        raise RowError("status", "invalid_choice", "status must be basic_livelihood or near_poor.")
    if v[1] not in SEOUL_DISTRICTS:
        raise RowError("district", "invalid_district", "district must be a Seoul 자치구 code.")
    valid_from = _date(v[2], "valid_from")
    valid_to = _date(v[3], "valid_to", required=False)
    _ordered(valid_from, valid_to, "valid_to")
    return v[0], v[1], valid_from, valid_to


def _naeilbaeum(v: list[str]) -> tuple:
    card_from, card_to = _date(v[0], "card_valid_from"), _date(v[1], "card_valid_to")
    _ordered(card_from, card_to, "card_valid_to")
    course_id = _text(v[2], "course_id", 40, required=False)
    training_from = _date(v[3], "training_from", required=False)
    training_to = _date(v[4], "training_to", required=False)
    _ordered(training_from, training_to, "training_to")
    return card_from, card_to, course_id, training_from, training_to


def _youth_allowance(v: list[str]) -> tuple:
    months = []
    for field, value in (("paid_from", v[0]), ("paid_to", v[1])):
        try:
            months.append(_month(value))
        except ValueError:
            raise RowError(field, "invalid_month", f"{field} must be a month as YYYY-MM.") from None
    _ordered(months[0][0], months[1][0], "paid_to")
    return months[0][0], months[1][1]


def _national_voucher(v: list[str]) -> tuple:
    if not _YEAR_RE.fullmatch(v[0]) or not 1900 <= int(v[0]) <= 2100:
        raise RowError("year", "invalid_year", "year must be a year such as 2025.")
    return (int(v[0]),)


def _training_course(v: list[str]) -> tuple:
    starts_on, ends_on = _date(v[3], "starts_on"), _date(v[4], "ends_on")
    _ordered(starts_on, ends_on, "ends_on")
    vocational = _BOOLEANS.get(v[5].lower())
    if vocational is None:
        raise RowError("vocational", "invalid_boolean", "vocational must be true or false.")
    course_id, name = _text(v[0], "course_id", 40), _text(v[1], "name", 200)
    return course_id, name, _text(v[2], "institution", 200), starts_on, ends_on, vocational


PARSERS = {
    RegistryKind.SOCIAL_SECURITY: _social_security,
    RegistryKind.NAEILBAEUM: _naeilbaeum,
    RegistryKind.YOUTH_ALLOWANCE: _youth_allowance,
    RegistryKind.NATIONAL_VOUCHER: _national_voucher,
    RegistryKind.TRAINING_COURSES: _training_course,
}


# Reading.


def _lines(stream, digest):
    """Yield (line number, text, problem code) without holding more than one line."""
    number = 0
    while raw := stream.readline(MAX_LINE_BYTES):
        number += 1
        digest.update(raw)
        if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(MAX_LINE_BYTES)
                digest.update(raw)
            yield number, "", "line_too_long"
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, "", "invalid_encoding"
            continue
        yield number, text.rstrip("\r\n"), None


def _split(text: str) -> list[str]:
    if '"' not in text:
        return [value.strip() for value in text.split(",")]
    try:
        return [value.strip() for value in next(csv.reader((text,)))]
    except csv.Error:
        raise RowError(None, "invalid_row", "The line is not valid CSV.") from None


def _expected_header(kind: str) -> str:
    person = "rrn|rrn_hmac," if is_person_kind(kind) else ""
    return person + ",".join(COLUMNS[kind])


def _read_header(kind: str, first: tuple[int, str, str | None] | None) -> str:
    """Return the person column of a good header ('' for courses), or raise RowError."""
    if first is None:
        raise RowError(None, "empty_file", "The file is empty.")
    _, text, problem = first
    if problem:
        raise RowError(None, problem, LINE_PROBLEMS[problem])
    header = _split(text.removeprefix("\ufeff"))
    person = header.pop(0) if is_person_kind(kind) and header else ""
    if tuple(header) != COLUMNS[kind] or (is_person_kind(kind) and person not in PERSON_COLUMNS):
        raise RowError(
            None, "invalid_header", f"The header must be exactly: {_expected_header(kind)}"
        )
    return person


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
    with job.file.open("rb") as stream:
        lines = _lines(stream, digest)
        try:
            person = _read_header(job.kind, next(lines, None))
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
                values = _split(text)
                if len(values) != width:
                    message = f"Expected {width} columns, found {len(values)}."
                    raise RowError(None, "wrong_column_count", message)
                if person:
                    row = (snapshot.pk, number, _person(person, values[0]), *parse(values[1:]))
                else:
                    row = (snapshot.pk, number, *parse(values))
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
