"""Selection: fill a round's capacity from approved applications by priority and a lottery.

The order is public and reproducible: priority tier first (basic livelihood, near-poor,
others), then the lottery key SHA-256("<seed>:<application id>") as lowercase hex, then the
id. Anyone given the round's seed and the list of application ids can recompute it.
"""

import hashlib
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from benefits.models import Application, Notification, Round
from benefits.notifications import notification_enqueue, notification_enqueue_many
from core.audit import audit_record
from core.fsm import require_transition
from core.models import AuditEvent

PRIORITY_TIERS = {
    Application.IncomeCategory.BASIC_LIVELIHOOD: 1,
    Application.IncomeCategory.NEAR_POOR: 2,
    Application.IncomeCategory.NONE: 3,
}
SELECTION_ORDER = ("priority_tier", "lottery_key", "id")


def lottery_key(seed: str, application_id: int) -> str:
    """Return the published lottery key of one application under the round's seed."""
    return hashlib.sha256(f"{seed}:{application_id}".encode()).hexdigest()


@dataclass(frozen=True)
class SelectionResult:
    round: Round
    selected: int
    waitlisted: int
    seats_left: int


def _seats_taken(round_: Round) -> int:
    return Application.objects.filter(round=round_, status=Application.Status.SELECTED).count()


@transaction.atomic
def round_select(*, round_: Round, actor) -> SelectionResult:
    """Rank the approved applications and fill the remaining capacity; waitlist the rest.

    Running it again later places newly approved applications without displacing anyone
    already selected; waitlisted applications compete again in the same published order.
    """
    # Lock order everywhere: round, then applications, then payments.
    round_ = Round.objects.select_for_update().select_related("program").get(pk=round_.pk)
    require_transition(round_.select, actor, action="run the selection")
    from_state = round_.status
    if not round_.selection_seed:
        round_.selection_seed = secrets.token_hex(16)
    round_.select()
    round_.save()

    now = timezone.now()
    candidates = list(
        Application.objects.select_for_update()
        .filter(
            round=round_,
            status__in=[Application.Status.APPROVED, Application.Status.WAITLISTED],
        )
        .order_by("id")
    )
    for application in candidates:
        if not application.lottery_key:
            application.priority_tier = PRIORITY_TIERS[application.income_category]
            application.lottery_key = lottery_key(round_.selection_seed, application.pk)
    candidates.sort(key=lambda a: (a.priority_tier, a.lottery_key, a.pk))

    seats = max(round_.capacity - _seats_taken(round_), 0)
    # Money as well as seats: selection never commits more than what the budget has left
    # (what selected recipients, payments and top-ups hold already is counted there).
    from payments.selectors import round_budget_ledger

    seats = min(seats, max(round_budget_ledger(round_).available, 0) // round_.amount)

    changed: list[Application] = []
    events: list[AuditEvent] = []
    selected_ids: list[int] = []
    waitlisted_ids: list[int] = []
    for position, application in enumerate(candidates):
        from_app_state = application.status
        if position < seats:
            if from_app_state == Application.Status.APPROVED:
                application.select()
            else:
                application.promote()
            application.selected_at = now
            selected_ids.append(application.pk)
        elif from_app_state == Application.Status.APPROVED:
            application.waitlist()
            waitlisted_ids.append(application.pk)
        else:
            continue  # still waitlisted, in the same order as before
        application.updated_at = now
        changed.append(application)
        events.append(
            AuditEvent(
                actor=actor,
                action="application.selected" if position < seats else "application.waitlisted",
                object_type=Application._meta.label_lower,
                object_id=str(application.pk),
                from_state=from_app_state,
                to_state=application.status,
                data={"priority_tier": application.priority_tier, "position": position + 1},
            )
        )
    Application.objects.bulk_update(
        changed,
        ["status", "priority_tier", "lottery_key", "selected_at", "updated_at"],
        batch_size=1000,
    )
    AuditEvent.objects.bulk_create(events, batch_size=1000)
    run = audit_record(
        actor=actor,
        obj=round_,
        action="round.select",
        from_state=from_state,
        to_state=round_.status,
        data={
            "seed": round_.selection_seed,
            "selected": len(selected_ids),
            "waitlisted": len(waitlisted_ids),
        },
    )
    for kind, ids in (
        (Notification.Kind.SELECTED, selected_ids),
        (Notification.Kind.WAITLISTED, waitlisted_ids),
    ):
        for start in range(0, len(ids), 5000):
            notification_enqueue_many(
                rows=Application.objects.filter(pk__in=ids[start : start + 5000]),
                kind=kind,
                event_key=f"select{run.pk}",
            )
    return SelectionResult(
        round=round_,
        selected=len(selected_ids),
        waitlisted=len(waitlisted_ids),
        seats_left=seats - len(selected_ids),
    )


def waitlist_promote_next(*, round_: Round, reason: str) -> Application | None:
    """Promote the first waitlisted application into a freed seat (the caller locks the round)."""
    if round_.status not in (Round.Status.SELECTED, Round.Status.DISBURSING):
        return None
    if _seats_taken(round_) >= round_.capacity:
        return None
    application = (
        Application.objects.select_for_update()
        .filter(round=round_, status=Application.Status.WAITLISTED)
        .order_by(*SELECTION_ORDER)
        .first()
    )
    if application is None:
        return None
    application.promote()
    application.selected_at = timezone.now()
    application.save(update_fields=["status", "selected_at", "updated_at"])
    event = audit_record(
        actor=None,
        obj=application,
        action="application.promoted",
        from_state=Application.Status.WAITLISTED,
        to_state=application.status,
        reason=reason,
    )
    notification_enqueue(
        application=application, kind=Notification.Kind.SELECTED, event_key=str(event.pk)
    )
    return application
