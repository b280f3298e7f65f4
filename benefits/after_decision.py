"""After the decision: the citizen's appeal and its decision, revoking an approval, and the
flags that hold a decided application's payment until a caseworker has looked.

Lock order, as everywhere: round, then application, then payments.
"""

from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from benefits.models import Appeal, Applicant, Application, ApplicationFlag, Round
from benefits.transitions import (
    application_appeal_until,
    application_locked,
    application_transition,
    required_reason,
)
from core.audit import audit_record
from core.exceptions import DomainError, InvalidTransition
from core.models import AuditEvent


class SameReviewer(DomainError):
    status_code = 403
    default_code = "same_reviewer"


@transaction.atomic
def application_appeal_file(*, applicant: Applicant, pk: int, actor, reason: str) -> Application:
    """Object to the rejection of the applicant's own application, within the round's window."""
    application = (
        Application.objects.select_for_update(of=("self",))
        .select_related("round__program", "applicant")
        .filter(pk=pk, applicant=applicant)
        .first()
    )
    if application is None:
        raise Http404
    reason = required_reason(reason)
    if application.status == Application.Status.REJECTED and application.rejection_final:
        raise InvalidTransition(
            "This rejection was confirmed on appeal and is final: it cannot be appealed again.",
            code="rejection_final",
        )
    appeal_until = application_appeal_until(application)
    if appeal_until is not None and timezone.localdate() > appeal_until:
        raise ValidationError(
            {
                "reason": ValidationError(
                    f"The time to appeal ended on {appeal_until.isoformat()}.",
                    "appeal_window_closed",
                )
            }
        )
    rejected_by = application.decided_by_id
    application = application_transition(
        application, actor, transition="appeal", action="application.appealed", reason=reason
    )
    now = timezone.now()
    Appeal.objects.create(
        application=application,
        reason=reason,
        filed_at=now,
        filed_by=actor,
        rejected_by_id=rejected_by,
        deadline=timezone.localdate(now) + timedelta(days=application.round.appeal_decision_days),
    )
    return application


@transaction.atomic
def application_appeal_decide(
    *, application: Application, actor, outcome: str, reason: str
) -> Application:
    """Decide an appeal: overturned → approved, upheld → rejected for good. Another caseworker
    than the one who rejected decides (the database holds that too)."""
    reason = required_reason(reason)
    if outcome not in Appeal.Outcome.values:
        raise ValidationError({"outcome": ValidationError("Not an outcome.", "invalid_choice")})
    application = application_locked(application)
    appeal = Appeal.objects.select_for_update().filter(application=application, outcome="").first()
    if appeal is None or application.status != Application.Status.APPEALED:
        raise InvalidTransition(
            f"Application #{application.pk} has no appeal waiting for a decision."
        )
    if not actor.has_perm("benefits.review_application"):
        raise PermissionDenied
    if appeal.rejected_by_id is not None and appeal.rejected_by_id == actor.pk:
        raise SameReviewer(
            "You made the decision under appeal: another caseworker must decide the appeal.",
            field="outcome",
        )
    overturned = outcome == Appeal.Outcome.OVERTURNED
    application = application_transition(
        application,
        actor,
        transition="overturn" if overturned else "uphold",
        action="application.appeal_overturned" if overturned else "application.appeal_upheld",
        reason=reason,
        data={"appeal": appeal.pk},
    )
    appeal.outcome = outcome
    appeal.decision_reason = reason
    appeal.decided_at = application.decided_at
    appeal.decided_by = actor
    appeal.save(update_fields=["outcome", "decision_reason", "decided_at", "decided_by"])
    return application


@transaction.atomic
def application_revoke(*, application: Application, actor, reason: str) -> Application:
    """Revoke an approval before any payment for it exists; a freed seat goes to the waitlist.

    The citizen may appeal the revocation like any rejection.
    """
    from benefits.selection import waitlist_promote_next
    from payments.models import Payment

    reason = required_reason(reason)
    round_ = Round.objects.select_for_update(no_key=True).get(pk=application.round_id)
    application = application_locked(application)
    if Payment.objects.filter(
        application_id=application.pk, status__in=Payment.LIVE_STATES
    ).exists():
        raise InvalidTransition(
            "A payment for this application exists: cancel or hold it out of its batch first, "
            "or open a recovery once it is paid."
        )
    was_selected = application.status == Application.Status.SELECTED
    application = application_transition(
        application, actor, transition="revoke", action="application.revoked", reason=reason
    )
    _flags_clear(application, actor, reason=f"revoked: {reason}")
    if was_selected:
        waitlist_promote_next(round_=round_, reason=f"Seat freed by application #{application.pk}")
    return application


def _flags_clear(application: Application, actor, *, reason: str, kind: str | None = None) -> int:
    flags = ApplicationFlag.objects.filter(application=application, cleared_at__isnull=True)
    if kind is not None:
        flags = flags.filter(kind=kind)
    return flags.update(cleared_at=timezone.now(), cleared_by=actor, clear_reason=reason)


@transaction.atomic
def application_flag_clear(*, application: Application, actor, flag: str, reason: str):
    """Clear an open flag after looking: the payment it held may go in the next batch."""
    reason = required_reason(reason)
    if flag not in ApplicationFlag.Kind.values:
        raise ValidationError({"flag": ValidationError("Not a flag.", "invalid_choice")})
    if not actor.has_perm("benefits.review_application"):
        raise PermissionDenied
    application = application_locked(application)
    open_flag = (
        ApplicationFlag.objects.select_for_update()
        .filter(application=application, kind=flag, cleared_at__isnull=True)
        .first()
    )
    if open_flag is None:
        raise InvalidTransition(
            f"Application #{application.pk} has no open {flag} flag.", code="no_open_flag"
        )
    _flags_clear(application, actor, reason=reason, kind=flag)
    audit_record(
        actor=actor,
        obj=application,
        action="application.flag_cleared",
        reason=reason,
        data={"flag": flag, "causes": open_flag.summary},
    )
    return application


def application_flags_raise(*, round_: Round, kind: str, causes: dict, trigger_key: str) -> int:
    """Open a flag of `kind` on each application of `causes` ({application id: [rule
    results]}) that has none open; audit each; return how many were raised.

    For a set-based re-check: one statement per step, whatever the number of applications.
    The caller holds the transaction.
    """
    if not causes:
        return 0
    already = set(
        ApplicationFlag.objects.filter(
            application_id__in=list(causes), kind=kind, cleared_at__isnull=True
        ).values_list("application_id", flat=True)
    )
    now = timezone.now()
    flags = [
        ApplicationFlag(
            application_id=application_id,
            kind=kind,
            causes=results,
            summary="; ".join(r["code"] for r in results)[:300],
            trigger_key=trigger_key,
            raised_at=now,
        )
        for application_id, results in causes.items()
        if application_id not in already
    ]
    # A concurrent run of the same re-check may have raised some meanwhile: the partial
    # unique index keeps one open flag each.
    ApplicationFlag.objects.bulk_create(flags, ignore_conflicts=True, batch_size=1000)
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                actor=None,
                action="application.flag_raised",
                object_type=Application._meta.label_lower,
                object_id=str(flag.application_id),
                data={"flag": kind, "causes": flag.summary, "trigger_key": trigger_key},
            )
            for flag in flags
        ],
        batch_size=1000,
    )
    audit_record(
        actor=None,
        obj=round_,
        action="round.flags_raised",
        data={"flag": kind, "raised": len(flags), "trigger_key": trigger_key},
    )
    return len(flags)
