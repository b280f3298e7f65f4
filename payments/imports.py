"""Bank results in: reconcile a batch's payments to paid or failed from the bank's file.

The file is checked whole before anything changes: one unknown reference, one line that
contradicts what is already settled, or a file that does not parse, and nothing is applied.
The same file applied twice (even at the same moment) is one import.
"""

import hashlib
from collections import defaultdict

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from benefits.models import Notification
from benefits.notifications import notification_enqueue_many
from core.audit import audit_record
from core.exceptions import DomainError, InvalidTransition
from core.fsm import bulk_transition
from payments.bankfiles import BankFileError, parse_result_file
from payments.models import BankResultImport, DisbursementBatch, Payment, reference_to_pk
from payments.services import _lock_batch, _release_settled_entries, _transition

CHUNK = 5000
MAX_REPORTED = 100


class ResultFileRejected(DomainError):
    default_code = "invalid_result_file"
    field = "file"


def _rejected(errors: list[dict]) -> ResultFileRejected:
    details = [
        (f"Line {e['line']}: {e['message']}" if e.get("line") else e["message"], e["code"])
        for e in errors[:MAX_REPORTED]
    ]
    return ResultFileRejected("The result file was rejected; nothing was applied.", details=details)


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


@transaction.atomic
def bank_results_import(*, batch: DisbursementBatch, actor, data: bytes) -> BankResultImport:
    """Apply a bank result file (CSV or pain.002) to a sent batch; return the import record."""
    if not actor.has_perm("payments.prepare_batch"):
        raise PermissionDenied
    try:
        lines = parse_result_file(data)
    except BankFileError as exc:
        errors = exc.errors or [{"line": None, "code": "invalid", "message": str(exc)}]
        raise _rejected(errors) from None
    digest = hashlib.sha256(data).hexdigest()
    fmt = "pain002" if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<") else "csv"

    batch = _lock_batch(batch)  # a second upload of the same file waits here, then replays
    previous = BankResultImport.objects.filter(batch=batch, sha256=digest).first()
    if previous is not None:
        return previous
    if batch.status != DisbursementBatch.Status.SENT:
        raise InvalidTransition(
            f"Results are applied to a sent batch; this batch is {batch.status}."
        )

    errors: list[dict] = []
    wanted: dict[int, object] = {}
    for line in lines:
        pk = reference_to_pk(line.reference)
        if pk is None:
            errors.append(
                {
                    "line": line.line,
                    "code": "unknown_reference",
                    # Not ours, so not echoed: the column may hold anything, an account too.
                    "message": "The reference on this line is not a Baeum payment reference.",
                }
            )
        else:
            wanted[pk] = line
    current: dict[int, str] = {}
    for ids in _chunks(list(wanted)):
        current.update(Payment.objects.filter(batch=batch, pk__in=ids).values_list("pk", "status"))
    to_pay: list[int] = []
    to_fail: dict[str, list[int]] = defaultdict(list)
    unchanged = pending = 0
    for pk, line in wanted.items():
        state = current.get(pk)
        if state is None:
            errors.append(
                {
                    "line": line.line,
                    "code": "unknown_reference",
                    "message": f"{line.reference} is not a payment of batch #{batch.pk}.",
                }
            )
        elif line.result == "pending":
            pending += 1
        elif state == Payment.Status.SENT:
            (to_pay.append(pk) if line.result == "paid" else to_fail[line.reason].append(pk))
        elif state == line.result or (state == Payment.Status.REISSUED and line.result == "failed"):
            unchanged += 1
        else:
            errors.append(
                {
                    "line": line.line,
                    "code": "result_conflict",
                    "message": f"{line.reference} is already {state}; the file says {line.result}.",
                }
            )
    if errors:
        errors.sort(key=lambda e: e["line"] or 0)
        raise _rejected(errors)

    record = BankResultImport.objects.create(
        batch=batch, sha256=digest, format=fmt, imported_by=actor
    )
    now = timezone.now()
    paid = failed = 0
    for ids in _chunks(to_pay):
        paid += bulk_transition(
            Payment.objects.filter(batch=batch, pk__in=ids),
            "mark_paid",
            paid_at=now,
            result_import=record,
        )
    for reason, pks in to_fail.items():
        for ids in _chunks(pks):
            failed += bulk_transition(
                Payment.objects.filter(batch=batch, pk__in=ids),
                "mark_failed",
                failed_at=now,
                failure_reason=reason[:300],
                result_import=record,
            )
    # A provider's failed settlement frees its redemptions for the next settlement.
    _release_settled_entries(
        Payment.objects.filter(result_import=record, status=Payment.Status.FAILED)
    )
    record.summary = {
        "lines": len(lines),
        "paid": paid,
        "failed": failed,
        "pending": pending,
        "unchanged": unchanged,
    }
    record.save(update_fields=["summary"])

    settled = Payment.objects.filter(result_import=record)
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
    audit_record(actor=actor, obj=batch, action="batch.results_imported", data=record.summary)
    if not Payment.objects.filter(batch=batch, status=Payment.Status.SENT).exists():
        _transition(batch, None, name="reconcile")
    return record
