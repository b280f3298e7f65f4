"""Writes on recoveries (환수): open one for a paid recipient whose training ended early,
record repayments, and waive what is still owed (requested by one finance user, approved by
another).

Lock order, as everywhere: round, then application, then payments, then the recovery.
"""

from datetime import date, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from benefits.models import Application, Document, Notification, RecoveryRule
from benefits.notifications import notification_enqueue
from core.audit import audit_record
from core.exceptions import Conflict, DomainError, InvalidTransition
from core.fsm import require_transition
from payments.models import Payment, Recovery, Repayment
from payments.services import MakerChecker


def recovery_amount(
    *, rule: str, paid: int, starts_on: date, ends_on: date, ended_on: date
) -> tuple[int, int, int]:
    """Return (amount to recover, training days, days not attended) in whole KRW.

    `ended_on` is the last day attended. Pro rata: the paid amount times the share of the
    training's days (both ends counted) not attended, rounded down in the citizen's favour.
    """
    training_days = (ends_on - starts_on).days + 1
    not_attended = (ends_on - ended_on).days
    if rule == RecoveryRule.WHOLE:
        return paid, training_days, not_attended
    return paid * not_attended // training_days, training_days, not_attended


def _won(amount: int) -> str:
    return f"{amount:,}"


def recovery_open(
    *,
    application: Application,
    payment: Payment,
    actor,
    ended_on: date,
    reason: str,
    evidence: Document | None = None,
) -> Recovery | None:
    """Open the recovery of a paid recipient's scholarship and tell the citizen the amount
    and the deadline; None when the round's rule leaves nothing to recover.

    The caller (benefits.training_end) holds the transaction and the locks on the round,
    the application and the payment.
    """
    round_ = application.round
    amount, training_days, not_attended = recovery_amount(
        rule=round_.recovery_rule,
        paid=payment.amount,
        starts_on=application.training_starts_on,
        ends_on=application.training_ends_on,
        ended_on=ended_on,
    )
    if amount <= 0:
        return None
    recovery = Recovery.objects.create(
        application=application,
        round=round_,
        payment=payment,
        rule=round_.recovery_rule,
        paid_amount=payment.amount,
        training_days=training_days,
        days_not_attended=not_attended,
        amount=amount,
        ended_on=ended_on,
        reason=reason,
        evidence=evidence,
        due_on=timezone.localdate() + timedelta(days=round_.recovery_days),
        created_by=actor,
    )
    audit_record(
        actor=actor,
        obj=recovery,
        action="recovery.opened",
        to_state=recovery.status,
        reason=reason,
        data={
            "application": application.pk,
            "payment": payment.pk,
            "rule": recovery.rule,
            "amount": amount,
            "paid_amount": payment.amount,
            "training_days": training_days,
            "days_not_attended": not_attended,
            "due_on": recovery.due_on.isoformat(),
        },
    )
    notification_enqueue(
        application=application,
        kind=Notification.Kind.RECOVERY_OPENED,
        event_key=f"recovery{recovery.pk}",
        reason=reason,
        values={
            "amount": _won(amount),
            "due_on": recovery.due_on.isoformat(),
            "ended_on": ended_on.isoformat(),
        },
    )
    return recovery


def _lock(recovery: Recovery) -> Recovery:
    locked = (
        Recovery.objects.select_for_update(of=("self",))
        .select_related("application__applicant")
        .get(pk=recovery.pk)
    )
    if locked.status != Recovery.Status.OPEN:
        raise InvalidTransition(
            f"Recovery #{locked.pk} is {locked.status}: nothing more is owed on it.",
            code="recovery_closed",
        )
    return locked


def _require_manager(actor) -> None:
    if not actor.has_perm("payments.manage_recovery"):
        raise PermissionDenied


def _repayment_errors(amount: int, paid_on: date) -> dict:
    errors = {}
    if amount <= 0:
        errors["amount"] = ValidationError("A repayment is a positive amount in KRW.", "min_value")
    if paid_on > timezone.localdate():
        errors["paid_on"] = ValidationError("A repayment cannot be dated in the future.", "future")
    return errors


@transaction.atomic
def recovery_repayment_record(
    *, recovery: Recovery, actor, amount: int, paid_on: date
) -> Repayment:
    """Record money the recipient gave back; the case is repaid once nothing is owed.

    Never more than is owed: the recovery's row is locked while the repayment is counted,
    so that two finance users recording at once cannot both take the last won.
    """
    _require_manager(actor)
    errors = _repayment_errors(amount, paid_on)
    if errors:
        raise ValidationError(errors)
    recovery = _lock(recovery)
    outstanding = recovery.amount - recovery.repaid
    if amount > outstanding:
        raise DomainError(
            f"Only {_won(outstanding)} KRW is still owed on recovery #{recovery.pk}: a "
            f"repayment of {_won(amount)} KRW would exceed it.",
            code="exceeds_outstanding",
            field="amount",
        )
    if paid_on < recovery.ended_on:
        raise ValidationError(
            {
                "paid_on": ValidationError(
                    f"The training ended on {recovery.ended_on.isoformat()}: a repayment "
                    f"cannot be dated before it.",
                    "before_training_end",
                )
            }
        )
    repayment = Repayment.objects.create(
        recovery=recovery, amount=amount, paid_on=paid_on, recorded_by=actor
    )
    recovery.repaid += amount
    fields = ["repaid"]
    audit_record(
        actor=actor,
        obj=recovery,
        action="recovery.repayment_recorded",
        data={
            "repayment": repayment.pk,
            "amount": amount,
            "paid_on": paid_on.isoformat(),
            "repaid": recovery.repaid,
            "outstanding": recovery.amount - recovery.repaid,
        },
    )
    if recovery.repaid == recovery.amount:
        require_transition(recovery.settle, None, action="settle")
        recovery.settle()
        recovery.closed_at = timezone.now()
        fields += ["status", "closed_at"]
        audit_record(
            actor=actor,
            obj=recovery,
            action="recovery.repaid",
            from_state=Recovery.Status.OPEN,
            to_state=recovery.status,
        )
        notification_enqueue(
            application=recovery.application,
            kind=Notification.Kind.RECOVERY_REPAID,
            event_key=f"recovery{recovery.pk}",
            values={"amount": _won(recovery.amount)},
        )
    recovery.save(update_fields=fields)
    return repayment


@transaction.atomic
def recovery_waiver_request(*, recovery: Recovery, actor, reason: str) -> Recovery:
    """Ask to waive what is still owed, with the reason; another finance user approves."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": ValidationError("A reason is required.", "required")})
    _require_manager(actor)
    recovery = _lock(recovery)
    if recovery.waiver_requested_by_id is not None:
        raise Conflict(
            f"A waiver of recovery #{recovery.pk} already waits for approval.",
            code="waiver_pending",
        )
    recovery.waiver_reason = reason
    recovery.waiver_requested_by = actor
    recovery.waiver_requested_at = timezone.now()
    recovery.save(update_fields=["waiver_reason", "waiver_requested_by", "waiver_requested_at"])
    audit_record(
        actor=actor,
        obj=recovery,
        action="recovery.waiver_requested",
        reason=reason,
        data={"outstanding": recovery.amount - recovery.repaid},
    )
    return recovery


@transaction.atomic
def recovery_waiver_approve(*, recovery: Recovery, actor) -> Recovery:
    """Approve a requested waiver: only a finance user other than its requester may.
    What is still owed is waived; the repayments made stay recovered."""
    recovery = _lock(recovery)
    if recovery.waiver_requested_by_id is None:
        raise InvalidTransition(
            f"Nobody asked to waive recovery #{recovery.pk}: request the waiver first.",
            code="no_waiver_requested",
        )
    if actor.pk == recovery.waiver_requested_by_id:
        raise MakerChecker(
            "You requested this waiver: another finance user must approve it.",
            field="approved_by",
        )
    require_transition(recovery.waive, actor, action="waive")
    waived = recovery.amount - recovery.repaid
    recovery.waive()
    now = timezone.now()
    recovery.waived_amount = waived
    recovery.waiver_approved_by = actor
    recovery.waiver_approved_at = now
    recovery.closed_at = now
    recovery.save(
        update_fields=[
            "status",
            "waived_amount",
            "waiver_approved_by",
            "waiver_approved_at",
            "closed_at",
        ]
    )
    audit_record(
        actor=actor,
        obj=recovery,
        action="recovery.waived",
        from_state=Recovery.Status.OPEN,
        to_state=recovery.status,
        reason=recovery.waiver_reason,
        data={"waived": waived, "requested_by": recovery.waiver_requested_by_id},
    )
    notification_enqueue(
        application=recovery.application,
        kind=Notification.Kind.RECOVERY_WAIVED,
        event_key=f"recovery{recovery.pk}",
        reason=recovery.waiver_reason,
        values={"amount": _won(waived)},
    )
    return recovery
