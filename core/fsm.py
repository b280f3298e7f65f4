"""Set-based state changes that obey the same django-fsm transitions as single objects."""

from django.core.exceptions import PermissionDenied
from django.db import models
from django_fsm import ANY_OTHER_STATE, ANY_STATE, can_proceed, has_transition_perm

from core.exceptions import InvalidTransition


def require_transition(bound_method, actor, *, action: str) -> None:
    """Refuse with 403 without the FSM permission, with 409 from a wrong state."""
    if actor is not None and not has_transition_perm(bound_method, actor):
        if not can_proceed(bound_method, check_conditions=False):
            raise InvalidTransition(_state_message(bound_method.__self__, action))
        raise PermissionDenied
    if not can_proceed(bound_method):
        raise InvalidTransition(_state_message(bound_method.__self__, action))


def _state_message(obj, action: str) -> str:
    return f"Cannot {action} while the {obj._meta.verbose_name} is '{obj.status}'."


def transition_states(model: type[models.Model], name: str) -> tuple[list[str], str]:
    """Return the source states and the single target of a model's FSM transition."""
    meta = getattr(model, name)._django_fsm
    targets = {t.target for t in meta.transitions.values()}
    sources = [s for s in meta.transitions if s not in (ANY_STATE, ANY_OTHER_STATE)]
    if len(targets) != 1 or len(sources) != len(meta.transitions):
        raise ValueError(f"{model.__name__}.{name} has no single target for a bulk transition")
    return sources, targets.pop()


def bulk_transition(queryset: models.QuerySet, name: str, **fields) -> int:
    """Apply the transition `name` to every row of queryset in a source state; return the count.

    For batches of thousands of rows, where calling the method on each object would cost a
    query per row. Rows in any other state are left alone, exactly as the method would refuse.
    """
    sources, target = transition_states(queryset.model, name)
    return queryset.filter(status__in=sources).update(status=target, **fields)
