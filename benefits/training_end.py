"""A scholarship recipient's training that ended early, as a caseworker records it from the
institution's notice (or, later, from the course catalogue's enrollment status).

Not yet paid: the approval is revoked, so that no payment goes out. Paid: a recovery (환수)
opens for what the round's rule says. A payment on its way is neither: the caseworker
waits for the bank's result, or has finance hold it out of its batch.

Lock order, as everywhere: round, then application, then payments.
"""

from dataclasses import dataclass
from datetime import date, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from benefits.after_decision import application_revoke
from benefits.document_services import document_store
from benefits.documents import document_content_type
from benefits.models import Application, Document, Round
from benefits.transitions import application_locked, required_reason
from core.audit import audit_record
from core.exceptions import Conflict, InvalidTransition


class PaymentInProgress(Conflict):
    default_code = "payment_in_progress"


@dataclass(frozen=True)
class TrainingEnd:
    """What recording the end did: `revoked`, `recovery_opened` or `nothing_to_recover`."""

    application: Application
    outcome: str
    recovery: object | None = None


REVOKED = "revoked"
RECOVERY_OPENED = "recovery_opened"
NOTHING_TO_RECOVER = "nothing_to_recover"


def _ended_on_errors(application: Application, ended_on: date) -> dict:
    starts, ends = application.training_starts_on, application.training_ends_on
    if starts is None or ends is None:
        return {
            "ended_on": ValidationError(
                "The application names no training period to have ended.", "no_training"
            )
        }
    if ended_on > timezone.localdate():
        return {"ended_on": ValidationError("The last day attended is in the future.", "future")}
    if not starts <= ended_on < ends:
        return {
            "ended_on": ValidationError(
                f"The last day attended must fall within the training, before its last day: "
                f"from {starts.isoformat()} to {(ends - timedelta(days=1)).isoformat()}.",
                "outside_training",
            )
        }
    return {}


def application_training_end(
    *,
    application: Application,
    actor,
    ended_on: date,
    reason: str,
    evidence: UploadedFile | None = None,
) -> TrainingEnd:
    """Record that a scholarship recipient's training ended early on `ended_on` (the last
    day attended): revoke an unpaid approval, or open a recovery of a paid scholarship."""
    reason = required_reason(reason)
    if not actor.has_perm("benefits.review_application"):
        raise PermissionDenied
    # Parsed before the transaction: the check may take seconds, and holds no lock.
    mime = (
        document_content_type(uploaded=evidence, field="evidence") if evidence is not None else None
    )
    with transaction.atomic():
        return _training_end(
            application, actor, ended_on=ended_on, reason=reason, evidence=evidence, mime=mime
        )


def _training_end(application, actor, *, ended_on, reason, evidence, mime) -> TrainingEnd:
    from payments.models import Payment, Recovery
    from payments.recoveries import recovery_open

    Round.objects.select_for_update(no_key=True).filter(pk=application.round_id).first()
    application = application_locked(application)
    if not application.round.program.requires_training:
        raise Conflict(
            "A voucher's unused balance is handled by the voucher ledger (a course refunded "
            "to it): there is no scholarship to recover.",
            code="voucher_program",
            field="application",
        )
    if application.status not in Application.APPROVED_STATES:
        raise InvalidTransition(
            f"Application #{application.pk} is '{application.status}': a training end is "
            f"recorded for an approved, selected or paid recipient only."
        )
    if Recovery.objects.filter(application=application).exists():
        raise Conflict(
            f"The training end of application #{application.pk} is recorded already, with "
            f"its recovery.",
            code="recovery_exists",
        )
    errors = _ended_on_errors(application, ended_on)
    if errors:
        raise ValidationError(errors)
    payments = list(
        Payment.objects.select_for_update()
        .filter(application=application, status__in=Payment.LIVE_STATES)
        .select_related("batch")
        .order_by("id")
    )
    paid = next((p for p in payments if p.status == Payment.Status.PAID), None)
    on_its_way = next((p for p in payments if p.status != Payment.Status.PAID), None)
    if on_its_way is not None:
        raise PaymentInProgress(
            f"Payment {on_its_way.reference} is in batch #{on_its_way.batch_id} "
            f"({on_its_way.batch.status}): have finance hold it out of the batch before its "
            f"approval, or record the end once the bank's result is in.",
            field="application",
        )
    document = None
    if evidence is not None:
        document = document_store(
            application=application,
            actor=actor,
            kind=Document.Kind.OTHER,
            uploaded=evidence,
            mime=mime,
            states=Application.APPROVED_STATES,
        )
    recovery = None
    if paid is not None:
        recovery = recovery_open(
            application=application,
            payment=paid,
            actor=actor,
            ended_on=ended_on,
            reason=reason,
            evidence=document,
        )
        outcome = RECOVERY_OPENED if recovery is not None else NOTHING_TO_RECOVER
    else:
        application = application_revoke(
            application=application,
            actor=actor,
            reason=f"교육 중도 종료 / training ended early ({ended_on.isoformat()}): {reason}",
        )
        outcome = REVOKED
    audit_record(
        actor=actor,
        obj=application,
        action="application.training_ended",
        reason=reason,
        data={
            "ended_on": ended_on.isoformat(),
            "outcome": outcome,
            "evidence": document.pk if document else None,
            "recovery": recovery.pk if recovery else None,
        },
    )
    return TrainingEnd(application=application, outcome=outcome, recovery=recovery)
