"""How an application changes state: the FSM transition under the application's lock, with
its audit event and the citizen's message, in the caller's transaction.

Every service that moves an application (benefits.services, benefits.after_decision,
benefits.screening_record, eligibility.resolutions) goes through `application_transition`.
"""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.utils import timezone

from benefits.models import Application, Notification
from benefits.notifications import notification_enqueue
from core.audit import audit_record
from core.fsm import require_transition


def application_locked(application: Application) -> Application:
    """The application again, locked in the current transaction, with its round, program
    and applicant."""
    return (
        Application.objects.select_for_update(of=("self",))
        .select_related("round__program", "applicant")
        .get(pk=application.pk)
    )


def required_reason(reason: str) -> str:
    """The reason, stripped; refused (400, `required`) when empty."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": ValidationError("A reason is required.", "required")})
    return reason


# The message the citizen gets after each transition, if any.
TRANSITION_NOTIFICATIONS = {
    "request_documents": Notification.Kind.DOCUMENTS_REQUESTED,
    "approve": Notification.Kind.APPROVED,
    "reject": Notification.Kind.REJECTED,
    "select": Notification.Kind.SELECTED,
    "waitlist": Notification.Kind.WAITLISTED,
    "promote": Notification.Kind.SELECTED,
    "appeal": Notification.Kind.APPEAL_RECEIVED,
    "overturn": Notification.Kind.APPEAL_OVERTURNED,
    "uphold": Notification.Kind.APPEAL_UPHELD,
    "revoke": Notification.Kind.APPROVAL_REVOKED,
}
# Transitions that decide the application: they record who decided, when and why.
DECISIONS = ("approve", "reject", "overturn", "uphold", "revoke")
# Decisions the citizen may object to (행정기본법 제36조); an upheld appeal is final.
APPEALABLE = ("reject", "revoke")


def application_appeal_until(application: Application):
    """The last day the citizen may appeal the application's rejection, or None."""
    if (
        application.status != Application.Status.REJECTED
        or application.rejection_final
        or application.decided_at is None
    ):
        return None
    decided_on = timezone.localdate(application.decided_at)
    return decided_on + timedelta(days=application.round.appeal_days)


def application_transition(
    application: Application,
    actor,
    *,
    transition: str,
    action: str,
    reason: str = "",
    data: dict | None = None,
    changes: dict | None = None,
) -> Application:
    """Apply one FSM transition with its audit event and the citizen's message.

    `changes` are other fields the transition sets (saved with it).
    """
    application = application_locked(application)
    method = getattr(application, transition)
    require_transition(method, actor, action=transition.replace("_", " "))
    from_state = application.status
    method()
    changes = dict(changes or {})
    if transition in DECISIONS:
        changes.update(
            decision_reason=reason,
            decided_at=timezone.now(),
            decided_by=actor if actor is not None and actor.is_authenticated else None,
            rejection_final=transition == "uphold",
        )
    for name, value in changes.items():
        setattr(application, name, value)
    application.save(update_fields=["status", "updated_at", *changes])
    event = audit_record(
        actor=actor,
        obj=application,
        action=action,
        from_state=from_state,
        to_state=application.status,
        reason=reason,
        data=data,
    )
    if transition in TRANSITION_NOTIFICATIONS:
        appeal_until = application_appeal_until(application) if transition in APPEALABLE else None
        notification_enqueue(
            application=application,
            kind=TRANSITION_NOTIFICATIONS[transition],
            event_key=str(event.pk),
            reason=reason,
            appeal_until=appeal_until.isoformat() if appeal_until else "-",
        )
    return application
