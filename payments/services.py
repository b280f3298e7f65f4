"""Writes on disbursement batches: create, submit, approve, disburse, cancel, hold (the
build, in chunk tasks, is payments.build).

Lock order everywhere: round, then batch, then applications, then payments. Payments change
state in sets through core.fsm.bulk_transition, which obeys the Payment FSM's transitions.
"""

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import can_proceed

from benefits.models import Notification, Round
from benefits.notifications import notification_enqueue_many
from core.audit import audit_record
from core.exceptions import Conflict, DomainError, InvalidTransition
from core.fsm import bulk_transition, require_transition
from core.outbox import outbox_enqueue
from payments.audit import batch_audit_reading, batch_audit_unseen
from payments.build import _payable_count, batch_build_key, batch_total
from payments.build import batch_build as batch_build  # where callers have always found it
from payments.exports import bank_files_key
from payments.models import DisbursementBatch, Payment, VoucherEntry
from payments.selectors import round_budget_ledger
from payments.vouchers import voucher_accounts_issue

PAYABLE_ROUND_STATES = (Round.Status.SELECTED, Round.Status.DISBURSING)


class MakerChecker(DomainError):
    status_code = 403
    default_code = "maker_checker"


def _require(bound_method, actor, *, action: str) -> None:
    batch = bound_method.__self__
    # A draft still gathering its payments is the one case the FSM condition refuses.
    if can_proceed(bound_method, check_conditions=False) and not can_proceed(bound_method):
        raise InvalidTransition(
            f"Batch #{batch.pk} is still being built; wait for it to finish.",
            code="batch_building",
        )
    require_transition(bound_method, actor, action=action)


def _require_within_budget(round_: Round, *, refused: str) -> None:
    """Refuse when what the round has committed (payments, top-ups) exceeds its budget."""
    ledger = round_budget_ledger(round_)
    if ledger.available < 0:
        raise Conflict(
            f"{refused}: round #{round_.pk} has committed {ledger.committed:,} KRW against a "
            f"budget of {ledger.budget:,} KRW (returned {ledger.returned:,} KRW).",
            code="over_budget",
            field="round",
        )


@transaction.atomic
def batch_create(*, round_: Round, actor) -> DisbursementBatch:
    """Open a draft batch for every selected application without a live payment.

    The payments are gathered afterwards, in chunk tasks that workers share, each
    committed on its own (batch_build_dispatch).
    """
    if not actor.has_perm("payments.prepare_batch"):
        raise PermissionDenied
    round_ = Round.objects.select_for_update().select_related("program").get(pk=round_.pk)
    if round_.status not in PAYABLE_ROUND_STATES:
        raise DomainError(
            f"Round #{round_.pk} is {round_.status}: run the selection before paying it.",
            code="round_not_selected",
            field="round",
        )
    _require_within_budget(round_, refused="Nothing can be paid")
    bank = round_.program.code != "VOUCHER"
    expected = _payable_count(round_, bank=bank)
    if expected == 0:
        raise DomainError(
            "Nothing to pay: every selected application of this round already has a payment "
            "(or awaits a corrected bank account).",
            code="nothing_to_pay",
            field="round",
        )
    try:
        with transaction.atomic():
            batch = DisbursementBatch.objects.create(
                round=round_, prepared_by=actor, build_expected=expected
            )
    except IntegrityError:
        raise Conflict(
            "Another batch of this round is still being built; wait for it to finish.",
            code="batch_building",
            field="round",
        ) from None
    if round_.status == Round.Status.SELECTED:
        round_.start_disbursing()
        round_.save()
    audit_record(
        actor=actor,
        obj=batch,
        action="batch.created",
        to_state=batch.status,
        data={"round": round_.pk, "expected": expected},
    )
    from payments.tasks import batch_build_task

    # Recorded with the batch: a broker that is down now delays the build, never loses it.
    outbox_enqueue(batch_build_task, batch.pk, key=batch_build_key(batch.pk))
    return batch


def _release_settled_entries(payments) -> int:
    """Free the voucher entries of provider payments that will not be made (a later one will)."""
    return VoucherEntry.objects.filter(settlement__in=payments).update(settlement=None)


def _lock_batch(batch: DisbursementBatch) -> DisbursementBatch:
    Round.objects.select_for_update().filter(pk=batch.round_id).first()
    return (
        DisbursementBatch.objects.select_for_update(of=("self",))
        .select_related("round__program")
        .get(pk=batch.pk)
    )


def _transition(batch, actor, *, name: str, reason: str = "", **data):
    method = getattr(batch, name)
    _require(method, actor, action=name)
    from_state = batch.status
    method()
    now = timezone.now()
    stamp = {
        "submit": "submitted_at",
        "approve": "approved_at",
        "disburse": "sent_at",
        "reconcile": "reconciled_at",
        "close": "closed_at",
        "cancel": "cancelled_at",
    }[name]
    setattr(batch, stamp, now)
    fields = ["status", stamp]
    if name == "approve":
        batch.approved_by = actor
        fields.append("approved_by")
    batch.save(update_fields=fields)
    audit_record(
        actor=actor,
        obj=batch,
        action=f"batch.{name}",
        from_state=from_state,
        to_state=batch.status,
        reason=reason,
        data=data,
    )
    return batch


@transaction.atomic
def batch_submit(*, batch: DisbursementBatch, actor) -> DisbursementBatch:
    """Hand a built draft batch to a second finance user for approval."""
    batch = _lock_batch(batch)
    if batch.is_ready and not batch.payments.filter(status=Payment.Status.PENDING).exists():
        raise DomainError(
            "Every payment of this batch is held out: there is nothing to submit.",
            code="nothing_to_pay",
        )
    return _transition(batch, actor, name="submit")


def _require_audit_seen(batch: DisbursementBatch, reading_id: int) -> None:
    seen = batch_audit_reading(batch=batch, reading_id=reading_id)
    if seen is None:
        raise Conflict(
            "The audit reading you approved from is not this batch's: read the audit again.",
            code="audit_changed",
        )
    unseen = batch_audit_unseen(batch, seen=seen)
    if unseen:
        raise Conflict(
            f"{len(unseen)} payment(s) were flagged since the audit you read: "
            "read it again before approving.",
            code="audit_changed",
        )


@transaction.atomic
def batch_approve(
    *, batch: DisbursementBatch, actor, reason: str = "", audit_seen: int | None = None
) -> DisbursementBatch:
    """Approve a submitted batch: only a finance user other than its preparer may.

    `audit_seen` names the reading of the pre-release audit the checker approves from (the
    batch page's): the audit is read again, and the approval refused if a pending payment
    was flagged since, for a reason that reading did not show.
    """
    batch = _lock_batch(batch)
    if actor.pk == batch.prepared_by_id:
        raise MakerChecker(
            "You prepared this batch: another finance user must approve it.", field="approved_by"
        )
    if audit_seen is not None:
        _require_audit_seen(batch, audit_seen)
    _require_within_budget(batch.round, refused="This batch cannot be approved")
    batch = _transition(batch, actor, name="approve", reason=reason, total=batch_total(batch))
    if batch.pays_by_bank:
        from payments.tasks import bank_files_generate_task

        outbox_enqueue(bank_files_generate_task, batch.pk, key=bank_files_key(batch))
    return batch


@transaction.atomic
def batch_disburse(*, batch: DisbursementBatch, actor) -> DisbursementBatch:
    """Record that the bank file went to the bank, or credit a voucher round's recipients."""
    batch = _lock_batch(batch)
    approved = batch.status == DisbursementBatch.Status.APPROVED
    downloaded = batch.files.filter(downloaded_at__isnull=False).exists()
    if batch.pays_by_bank and approved and not downloaded:
        raise Conflict(
            "Download the bank file (export) before marking the batch as sent.",
            code="export_missing",
        )
    batch = _transition(batch, actor, name="disburse")
    now = timezone.now()
    pending = Payment.objects.filter(batch=batch, status=Payment.Status.PENDING)
    if batch.pays_by_bank:
        bulk_transition(pending, "send", sent_at=now)
        return batch
    # A voucher round needs no bank: the credit is the payment.
    bulk_transition(pending, "credit", sent_at=now, paid_at=now)
    voucher_accounts_issue(payments=Payment.objects.filter(batch=batch, status=Payment.Status.PAID))
    notification_enqueue_many(
        rows=Payment.objects.filter(batch=batch, status=Payment.Status.PAID),
        kind=Notification.Kind.PAID,
        event_key=f"batch{batch.pk}",
        application_field="application_id",
        user_field="application__applicant__user_id",
    )
    return _transition(batch, None, name="reconcile")


@transaction.atomic
def batch_cancel(*, batch: DisbursementBatch, actor, reason: str = "") -> DisbursementBatch:
    """Cancel a batch before it is sent; its payments are freed for a later batch."""
    batch = _lock_batch(batch)
    batch = _transition(batch, actor, name="cancel", reason=reason)
    freed = bulk_transition(Payment.objects.filter(batch=batch), "cancel")
    _release_settled_entries(Payment.objects.filter(batch=batch, status=Payment.Status.CANCELLED))
    batch.build_status = DisbursementBatch.BuildStatus.READY
    batch.save(update_fields=["build_status"])
    audit_record(actor=actor, obj=batch, action="batch.payments_freed", data={"payments": freed})
    return batch


@transaction.atomic
def batch_close(*, batch: DisbursementBatch, actor) -> DisbursementBatch:
    """Close a reconciled batch: nothing more is expected from the bank."""
    return _transition(_lock_batch(batch), actor, name="close")


@transaction.atomic
def payment_hold(*, batch: DisbursementBatch, payment_id: int, actor, reason: str) -> Payment:
    """Hold one payment out of a batch before approval (it can go in a later batch)."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("A reason is required.", code="required", field="reason")
    batch = _lock_batch(batch)
    if not actor.has_perm("payments.prepare_batch") and not actor.has_perm(
        "payments.approve_batch"
    ):
        raise PermissionDenied
    if batch.status not in (
        DisbursementBatch.Status.DRAFT,
        DisbursementBatch.Status.PENDING_APPROVAL,
    ):
        raise InvalidTransition(
            f"A payment can be held out only before approval; this batch is {batch.status}."
        )
    payment = Payment.objects.select_for_update().filter(batch=batch, pk=payment_id).first()
    if payment is None:
        from django.http import Http404

        raise Http404
    require_transition(payment.cancel, None, action="hold out")
    payment.cancel()
    payment.hold_reason = reason
    payment.save(update_fields=["status", "hold_reason"])
    _release_settled_entries(Payment.objects.filter(pk=payment.pk))
    audit_record(
        actor=actor,
        obj=batch,
        action="batch.payment_held",
        reason=reason,
        data={"payment": payment.pk, "application": payment.application_id},
    )
    return payment


def batch_open(*, round, actor, kind: str = "benefit", period_starts_on=None, period_ends_on=None):
    """Open a batch of the kind asked for: a round's entitlements, or a providers' settlement."""
    if kind == DisbursementBatch.Kind.SETTLEMENT:
        from payments.settlement import settlement_batch_create

        return settlement_batch_create(
            round_=round,
            actor=actor,
            period_starts_on=period_starts_on,
            period_ends_on=period_ends_on,
        )
    return batch_create(round_=round, actor=actor)
