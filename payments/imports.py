"""Bank results in: reconcile a batch's payments to paid or failed from the bank's file.

The file is checked whole before anything changes: one unknown reference, one line that
contradicts what is already settled, or a file that does not parse, and nothing is applied.
Then its lines are applied in chunks of BAEUM_RESULTS_CHUNK that commit on their own: on the
`long` queue's workers (`bank_results_upload`), or one after another in this process
(`bank_results_import`, which is what the upload does when tasks run eagerly). A payment
moves only from `sent`, so a chunk applied twice changes nothing, and the import records
each chunk once, under its row lock; the chunk that completes it finishes it, once.
The file is read as a stream, never whole. The same file applied twice is one import.
"""

import hashlib
import io
import logging
import tempfile
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator
from itertools import islice

from celery import current_app
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from benefits.models import Notification
from benefits.notifications import notification_enqueue_many
from core.audit import audit_record
from core.crypto import encrypt_file
from core.exceptions import Conflict, DomainError, InvalidTransition
from core.files import SealedReader
from core.fsm import bulk_transition
from core.outbox import outbox_enqueue, outbox_heartbeat
from payments.bankfiles import BankFileError
from payments.bankfiles.results import iter_result_file
from payments.models import BankResultImport, DisbursementBatch, Payment, reference_to_pk
from payments.services import _lock_batch, _release_settled_entries, _transition

logger = logging.getLogger(__name__)

# Payments read or written per query.
CHUNK = 5000
MAX_REPORTED = 100
# Plaintext bytes per encrypted chunk of a stored result file (as registry uploads).
UPLOAD_CHUNK = 256 * 1024
_FINISHED = (BankResultImport.Status.SUCCEEDED, BankResultImport.Status.FAILED)


class ResultFileRejected(DomainError):
    default_code = "invalid_result_file"
    field = "file"


def _rejected(errors: list[dict]) -> ResultFileRejected:
    details = [
        (f"Line {e['line']}: {e['message']}" if e.get("line") else e["message"], e["code"])
        for e in errors[:MAX_REPORTED]
    ]
    return ResultFileRejected("The result file was rejected; nothing was applied.", details=details)


def _batched(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _format(head: bytes) -> str:
    return "pain002" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<") else "csv"


def _chunk_size() -> int:
    return settings.BAEUM_RESULTS_CHUNK


# Checking the whole file.


class _Check:
    """What a pass over the whole file found: its lines, those still pending, its errors."""

    def __init__(self) -> None:
        self.lines = self.pending = 0
        self.errors: list[dict] = []

    def error(self, line: int | None, code: str, message: str) -> None:
        if len(self.errors) < MAX_REPORTED:
            self.errors.append({"line": line, "code": code, "message": message})


def _check(batch: DisbursementBatch, lines: Iterable, *, states: bool) -> _Check:
    """Read every line: each must name a payment of the batch, once; with `states`, each
    must agree with what is settled already. Raise ResultFileRejected if the file does not
    parse."""
    found = _Check()
    bounds = Payment.objects.filter(batch=batch).order_by("pk").values_list("pk", flat=True)
    low = bounds.first() or 0
    high = bounds.last() or -1
    # The first line of each payment of the batch, by id: a repeat is found without
    # holding the references read so far.
    first_line = array("L", [0]) * max(high - low + 1, 0)
    try:
        for chunk in _batched(lines, CHUNK):
            ours = {}
            for line in chunk:
                found.lines += 1
                pk = reference_to_pk(line.reference)
                if pk is None:
                    # Not ours, so not echoed: the column may hold anything, an account too.
                    message = "The reference on this line is not a Baeum payment reference."
                    found.error(line.line, "unknown_reference", message)
                elif not low <= pk <= high:
                    message = f"{line.reference} is not a payment of batch #{batch.pk}."
                    found.error(line.line, "unknown_reference", message)
                elif first_line[pk - low]:
                    found.error(
                        line.line,
                        "duplicate_reference",
                        f"reference {line.reference!r} is on lines "
                        f"{first_line[pk - low]} and {line.line}",
                    )
                else:
                    first_line[pk - low] = line.line
                    ours[pk] = line
            if states:
                _check_states(batch, ours, found)
    except BankFileError as exc:
        raise _rejected(exc.errors or [_parse_error(str(exc))]) from None
    return found


def _parse_error(message: str) -> dict:
    return {"line": None, "code": "invalid", "message": message}


def _check_states(batch: DisbursementBatch, lines: dict, found: _Check) -> None:
    current = dict(
        Payment.objects.filter(batch=batch, pk__in=list(lines)).values_list("pk", "status")
    )
    for pk, line in lines.items():
        state = current.get(pk)
        if state is None:
            message = f"{line.reference} is not a payment of batch #{batch.pk}."
            found.error(line.line, "unknown_reference", message)
        elif line.result == "pending":
            found.pending += 1
        elif state not in (Payment.Status.SENT, line.result) and not (
            state == Payment.Status.REISSUED and line.result == "failed"
        ):
            found.error(
                line.line,
                "result_conflict",
                f"{line.reference} is already {state}; the file says {line.result}.",
            )


# Applying one chunk.


def _apply(record: BankResultImport, lines: list) -> dict:
    """Move the chunk's payments still `sent` to what the file says; return the counts.

    `mark_paid` and `mark_failed` move a payment only from `sent`: a line applied before
    moves nothing, and is counted unchanged.
    """
    counts = {"paid": 0, "failed": 0, "pending": 0, "unchanged": 0}
    now = timezone.now()
    batch_payments = Payment.objects.filter(batch_id=record.batch_id)
    for chunk in _batched(lines, CHUNK):
        wanted = {reference_to_pk(line.reference): line for line in chunk}
        to_pay: list[int] = []
        to_fail: dict[str, list[int]] = defaultdict(list)
        for pk, line in wanted.items():
            if line.result == "pending":
                counts["pending"] += 1
            elif line.result == "paid":
                to_pay.append(pk)
            else:
                to_fail[line.reason].append(pk)
        counts["paid"] += bulk_transition(
            batch_payments.filter(pk__in=to_pay), "mark_paid", paid_at=now, result_import=record
        )
        for reason, pks in to_fail.items():
            counts["failed"] += bulk_transition(
                batch_payments.filter(pk__in=pks),
                "mark_failed",
                failed_at=now,
                failure_reason=reason[:300],
                result_import=record,
            )
        settled = batch_payments.filter(pk__in=list(wanted), result_import=record)
        # A provider's failed settlement frees its redemptions for the next settlement.
        _release_settled_entries(settled.filter(status=Payment.Status.FAILED))
        for state, kind in (
            (Payment.Status.PAID, Notification.Kind.PAID),
            (Payment.Status.FAILED, Notification.Kind.PAYMENT_FAILED),
        ):
            notification_enqueue_many(
                rows=settled.filter(status=state, application__isnull=False),
                kind=kind,
                event_key=f"result{record.pk}",
                application_field="application_id",
                user_field="application__applicant__user_id",
                reason_field="failure_reason",
            )
    applied = counts["paid"] + counts["failed"] + counts["pending"]
    counts["unchanged"] = len(lines) - applied
    return counts


def _apply_chunk(record_id: int, index: int, lines: list) -> bool:
    """Apply one chunk and record it, in one transaction; the chunk that completes the
    import finishes it. False if the chunk was recorded before (nothing changes)."""
    with transaction.atomic():
        outbox_heartbeat()
        record = BankResultImport.objects.get(pk=record_id)
        counts = _apply(record, lines)
        # Locked after the payments, so chunks apply side by side and queue only here; a
        # chunk delivered twice waits for the first delivery, then rolls back.
        record = BankResultImport.objects.select_for_update().get(pk=record_id)
        if record.status != BankResultImport.Status.RUNNING or index in record.chunks_done:
            transaction.set_rollback(True)
            return False
        summary = record.summary or {}
        for key, n in counts.items():
            summary[key] = summary.get(key, 0) + n
        record.summary = summary
        record.lines_done += len(lines)
        record.chunks_done = [*record.chunks_done, index]
        fields = ["summary", "lines_done", "chunks_done"]
        if len(record.chunks_done) >= (record.chunks_total or 0):
            fields += _finish(record)
        record.save(update_fields=fields)
    return True


def _finish(record: BankResultImport) -> list[str]:
    """Close a fully applied import (inside the last chunk's transaction); return the
    fields it set."""
    record.summary = {**record.summary, "lines": record.lines_total}
    record.status = BankResultImport.Status.SUCCEEDED
    record.finished_at = timezone.now()
    batch = _lock_batch(record.batch)
    audit_record(
        actor=record.imported_by, obj=batch, action="batch.results_imported", data=record.summary
    )
    if batch.status == DisbursementBatch.Status.SENT and not (
        Payment.objects.filter(batch=batch, status=Payment.Status.SENT).exists()
    ):
        _transition(batch, None, name="reconcile")
    if record.file:
        transaction.on_commit(lambda: _delete_upload(record.pk))
    return ["summary", "status", "finished_at"]


# In this process.


@transaction.atomic
def bank_results_import(*, batch: DisbursementBatch, actor, data) -> BankResultImport:
    """Apply a bank result file (CSV or pain.002, bytes or a binary file) to a sent batch
    in this process, chunk after chunk; return the import record."""
    if not actor.has_perm("payments.prepare_batch"):
        raise PermissionDenied
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    stream.seek(0)
    head = stream.read(64)
    stream.seek(0)
    digest = hashlib.sha256()
    for block in iter(lambda: stream.read(UPLOAD_CHUNK), b""):
        digest.update(block)
    stream.seek(0)
    # A file that does not parse is refused first, whatever the batch's state.
    _refuse_if_malformed(batch, stream)
    batch = _lock_batch(batch)  # a second upload of the same file waits here, then replays
    previous = _previous(batch, digest.hexdigest())
    if previous is not None:
        return previous
    stream.seek(0)
    found = _check(batch, iter_result_file(stream), states=True)
    if found.errors:
        raise _rejected(sorted(found.errors, key=lambda e: e["line"] or 0))
    size = _chunk_size()
    record = BankResultImport.objects.create(
        batch=batch,
        sha256=digest.hexdigest(),
        format=_format(head),
        imported_by=actor,
        status=BankResultImport.Status.RUNNING,
        lines_total=found.lines,
        chunks_total=-(-found.lines // size),
        summary=_empty_summary(found.lines),
    )
    stream.seek(0)
    for index, lines in enumerate(_batched(iter_result_file(stream), size)):
        _apply_chunk(record.pk, index, lines)
    record.refresh_from_db()
    return record


def _refuse_if_malformed(batch: DisbursementBatch, stream) -> int:
    """Raise ResultFileRejected unless the file parses and names each payment of the batch
    at most once; return its number of lines."""
    found = _check(batch, iter_result_file(stream), states=False)
    if found.errors:
        raise _rejected(sorted(found.errors, key=lambda e: e["line"] or 0))
    return found.lines


def _empty_summary(lines: int) -> dict:
    return {"lines": lines, "paid": 0, "failed": 0, "pending": 0, "unchanged": 0}


def _previous(batch: DisbursementBatch, sha256: str) -> BankResultImport | None:
    """The import of this file into this batch that did not fail, if any; refuse a new
    file while another import of the batch runs, and a batch not sent."""
    previous = (
        BankResultImport.objects.filter(batch=batch, sha256=sha256)
        .exclude(status=BankResultImport.Status.FAILED)
        .first()
    )
    if previous is not None:
        return previous
    if batch.status != DisbursementBatch.Status.SENT:
        raise InvalidTransition(
            f"Results are applied to a sent batch; this batch is {batch.status}."
        )
    running = BankResultImport.objects.filter(
        batch=batch, status__in=[BankResultImport.Status.QUEUED, BankResultImport.Status.RUNNING]
    )
    if running.exists():
        raise Conflict("Another result file of this batch is being applied; wait for it to end.")
    return None


# On the workers.


def bank_results_submit(*, batch: DisbursementBatch, actor, upload) -> BankResultImport:
    """Apply an uploaded result file: at once when tasks run eagerly (make run, the
    embedded server), else stored and applied by the workers (bank_results_upload)."""
    if current_app.conf.task_always_eager:
        return bank_results_import(batch=batch, actor=actor, data=upload)
    return bank_results_upload(batch=batch, actor=actor, upload=upload)


def bank_results_upload(*, batch: DisbursementBatch, actor, upload) -> BankResultImport:
    """Check an uploaded result file parses and names the batch's payments, store it
    encrypted, and queue its import on the `long` queue; return the import record."""
    if not actor.has_perm("payments.prepare_batch"):
        raise PermissionDenied
    upload.seek(0)
    head = upload.read(64)
    upload.seek(0)
    lines = _refuse_if_malformed(batch, upload)
    upload.seek(0)
    with tempfile.TemporaryFile() as sealed:
        sha256 = encrypt_file(
            upload, sealed, purpose=BankResultImport.FILE_PURPOSE, chunk_bytes=UPLOAD_CHUNK
        )
        with transaction.atomic():
            batch = _lock_batch(batch)
            previous = _previous(batch, sha256)
            if previous is not None:
                return previous
            record = BankResultImport(
                batch=batch,
                sha256=sha256,
                format=_format(head),
                imported_by=actor,
                lines_total=lines,
                summary=_empty_summary(lines),
            )
            sealed.seek(0)
            record.file.save(f"{batch.pk}.sealed", File(sealed), save=False)
            try:
                record.save()
            except Exception:
                record.file.delete(save=False)
                raise
            audit_record(
                actor=actor, obj=batch, action="batch.results_uploaded", data={"import": record.pk}
            )
            from payments.tasks import bank_results_run_task

            outbox_enqueue(bank_results_run_task, record.pk, key=f"bank_results:{record.pk}")
    return record


def _stored_lines(record: BankResultImport) -> Iterator:
    with record.file.open("rb") as stored:
        source = getattr(stored, "file", stored)
        yield from iter_result_file(SealedReader(source, purpose=BankResultImport.FILE_PURPOSE))


def _delete_upload(record_id: int) -> None:
    # The file may quote accounts; only the payments' states outlive the import.
    record = BankResultImport.objects.get(pk=record_id)
    if record.file:
        try:
            record.file.delete(save=False)
        except OSError:
            logger.warning("bank result import %s: could not delete the stored file", record.pk)
        BankResultImport.objects.filter(pk=record.pk).update(file="")


def bank_results_run(*, import_id: int) -> BankResultImport:
    """Check a stored result file whole, then record one chunk task per chunk of its
    lines (or fail the import, applying nothing). Safe to run twice."""
    with transaction.atomic():
        outbox_heartbeat()
        record = BankResultImport.objects.select_for_update().get(pk=import_id)
        if record.status in _FINISHED or record.chunks_total is not None:
            return record
        if record.status == BankResultImport.Status.QUEUED:
            record.status = BankResultImport.Status.RUNNING
            record.save(update_fields=["status"])
    try:
        found = _check(record.batch, _stored_lines(record), states=True)
        errors = sorted(found.errors, key=lambda e: e["line"] or 0)
    except ResultFileRejected as exc:
        found, errors = _Check(), [_parse_error(str(exc))]
    size = _chunk_size()
    with transaction.atomic():
        outbox_heartbeat()
        record = BankResultImport.objects.select_for_update().get(pk=import_id)
        if record.status in _FINISHED or record.chunks_total is not None:
            return record
        if errors:
            record.status, record.errors = BankResultImport.Status.FAILED, errors
            record.finished_at = timezone.now()
            record.save(update_fields=["status", "errors", "finished_at"])
            audit_record(
                actor=None,
                obj=record.batch,
                action="batch.results_rejected",
                data={"import": record.pk, "codes": sorted({e["code"] for e in errors})},
            )
            transaction.on_commit(lambda: _delete_upload(import_id))
            return record
        from payments.tasks import bank_results_chunk_task

        record.lines_total, record.chunks_total = found.lines, -(-found.lines // size)
        record.save(update_fields=["lines_total", "chunks_total"])
        for index in range(record.chunks_total):
            outbox_enqueue(
                bank_results_chunk_task, import_id, index, key=f"bank_results:{import_id}:{index}"
            )
    logger.info("bank result import %s: %s chunks", import_id, record.chunks_total)
    return record


def bank_results_chunk(*, import_id: int, index: int) -> bool:
    """Apply chunk `index` of a checked import; a chunk applied before changes nothing."""
    record = BankResultImport.objects.get(pk=import_id)
    if record.status != BankResultImport.Status.RUNNING or index in record.chunks_done:
        return False
    size = _chunk_size()
    lines = list(islice(_stored_lines(record), index * size, (index + 1) * size))
    applied = _apply_chunk(import_id, index, lines)
    logger.info("bank result import %s: chunk %s, %s lines", import_id, index, len(lines))
    return applied
