"""Units of work rolled back whole, whose inner service transactions need no savepoints.

A service opens its own atomic block so that it is all-or-nothing wherever it is called;
inside a caller's transaction Django makes that block a savepoint (two more statements),
so that the caller may catch the service's error and carry on. A caller that never does
(the API's Idempotency-Key block: any error rolls back all of it, then propagates) says
so with all_or_nothing(), and the services it calls that are marked with
@service_atomic open their block without a savepoint.

Inside all_or_nothing(), an error out of such a service leaves the transaction unusable
until the all_or_nothing() block ends (Django refuses any further query): catching it
and carrying on fails loudly, never silently. Outside it, @service_atomic is
transaction.atomic.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps

from django.db import transaction

_ALL_OR_NOTHING: ContextVar[bool] = ContextVar("baeum_all_or_nothing", default=False)


@contextmanager
def all_or_nothing() -> Iterator[None]:
    """transaction.atomic() for a unit of work that no one inside it recovers from."""
    with transaction.atomic():
        token = _ALL_OR_NOTHING.set(True)
        try:
            yield
        finally:
            _ALL_OR_NOTHING.reset(token)


def service_atomic(func: Callable) -> Callable:
    """transaction.atomic, without its savepoint inside all_or_nothing()."""

    @wraps(func)
    def inner(*args, **kwargs):
        with transaction.atomic(savepoint=not _ALL_OR_NOTHING.get()):
            return func(*args, **kwargs)

    return inner
