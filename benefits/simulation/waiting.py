"""Waiting for the tasks a stage set off, by reading the state they leave in the database.

Eager tasks have finished by the time the service returns, so the first look finds the
work done; with a real worker the wait follows its progress and gives up when nothing
has moved for the run's timeout: neither what it waits for nor the run's outbox, which
the worker may still be sending ahead of the awaited task (the queue is first in, first
out).
"""

import time
from collections.abc import Callable

from benefits.models import Notification
from benefits.simulation import Simulation, SimulationError


def _outbox_sent(sim: Simulation) -> int:
    """Messages of the run's round the worker has dealt with so far."""
    if sim.round_ is None:
        return 0
    return (
        Notification.objects.filter(application__round=sim.round_)
        .exclude(status=Notification.Status.PENDING)
        .count()
    )


def wait_until(
    sim: Simulation,
    description: str,
    *,
    total: int,
    done: Callable[[], int],
    failed: Callable[[], str | None] | None = None,
) -> int:
    """Poll `done()` until it reaches `total`; raise if `failed()` says why, or on a stall."""
    tracker = sim.track(description, total)
    last, sent, moved_at = -1, -1, time.monotonic()
    while True:
        count = done()
        tracker.set(count)
        if count >= total:
            return count
        problem = failed() if failed is not None else None
        if problem:
            raise SimulationError(f"{description}: {problem}")
        if count != last:
            last, moved_at = count, time.monotonic()
        elif (activity := _outbox_sent(sim)) != sent:
            sent, moved_at = activity, time.monotonic()
        elif time.monotonic() - moved_at > sim.timeout:
            raise SimulationError(
                f"{description}: no progress for {sim.timeout:.0f} s ({count} of {total}); "
                "is a Celery worker consuming this broker?"
            )
        time.sleep(sim.poll_interval)
