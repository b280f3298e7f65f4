"""Writes on rounds: opening and closing them, and their money settings."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from benefits.models import Round
from benefits.transitions import required_reason
from core.audit import audit_record
from core.exceptions import Conflict, InvalidTransition
from core.fsm import require_transition


def round_accepts_applications(round_: Round, *, now=None) -> bool:
    now = now or timezone.now()
    return (
        round_.status == Round.Status.OPEN
        and round_.applications_open_at <= now < round_.applications_close_at
    )


def _round_transition(round_: Round, actor, *, transition: str, reason: str = "") -> Round:
    round_ = Round.objects.select_for_update().get(pk=round_.pk)
    method = getattr(round_, transition)
    require_transition(method, actor, action=f"{transition} the round")
    from_state = round_.status
    method()
    round_.save()
    audit_record(
        actor=actor,
        obj=round_,
        action=f"round.{transition}",
        from_state=from_state,
        to_state=round_.status,
        reason=reason,
    )
    return round_


@transaction.atomic
def round_open(*, round_: Round, actor) -> Round:
    """Open a draft round for applications."""
    return _round_transition(round_, actor, transition="open")


@transaction.atomic
def round_close(*, round_: Round, actor) -> Round:
    """Close a round to new applications."""
    return _round_transition(round_, actor, transition="close")


# The round's money settings. Amount and capacity are what every applicant was promised
# when the round opened; the budget may move, never below what is already committed.
ROUND_MONEY_FIELDS = ("budget", "amount", "capacity", "top_up_amount", "top_up_share")
FIXED_ONCE_OPEN = ("amount", "capacity")
FINISHED_ROUND_STATES = (Round.Status.COMPLETED, Round.Status.CANCELLED)


def _round_money_errors(round_: Round, changes: dict) -> dict:
    errors = {}
    if round_.status != Round.Status.DRAFT:
        for name in FIXED_ONCE_OPEN:
            if name in changes and changes[name] != getattr(round_, name):
                errors[name] = ValidationError(
                    f"The round is {round_.status}: its {name} was fixed when it opened.",
                    "fixed_after_open",
                )
    budget = changes.get("budget", round_.budget)
    amount = changes.get("amount", round_.amount)
    capacity = changes.get("capacity", round_.capacity)
    if not errors and budget < capacity * amount:
        errors["budget"] = ValidationError(
            f"The budget must hold the capacity times the amount: {capacity * amount:,} KRW.",
            "budget_below_capacity",
        )
    return errors


@transaction.atomic
def round_money_change(*, round_: Round, actor, reason: str, **changes) -> Round:
    """Change a round's money settings within the rules, and audit who, what and why."""
    from payments.selectors import round_budget_ledger

    unknown = set(changes) - set(ROUND_MONEY_FIELDS)
    if unknown:
        raise TypeError(f"not a money setting: {sorted(unknown)}")
    if not actor.has_perm("benefits.manage_round"):
        raise PermissionDenied
    reason = required_reason(reason)
    round_ = Round.objects.select_for_update().get(pk=round_.pk)
    if round_.status in FINISHED_ROUND_STATES:
        raise InvalidTransition(f"The round is {round_.status}: its money can no longer change.")
    errors = _round_money_errors(round_, changes)
    if errors:
        raise ValidationError(errors)
    if changes.get("budget", round_.budget) < round_.budget:
        ledger = round_budget_ledger(round_)
        floor = ledger.committed - ledger.returned
        if changes["budget"] < floor:
            raise Conflict(
                f"{floor:,} KRW of this round is already committed (selected recipients, "
                f"payments and top-ups): the budget cannot go below it.",
                code="budget_below_committed",
                field="budget",
            )
    changed = {
        name: [getattr(round_, name), value]
        for name, value in changes.items()
        if getattr(round_, name) != value
    }
    for name, (_, value) in changed.items():
        setattr(round_, name, value)
    if changed:
        round_.save(update_fields=[*changed, "updated_at"])
        audit_record(
            actor=actor, obj=round_, action="round.money_changed", reason=reason, data=changed
        )
    return round_
