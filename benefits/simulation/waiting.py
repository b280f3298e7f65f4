"""Waiting for the tasks a stage set off, by reading the state they leave in the database.

Eager tasks have finished by the time the service returns, so the first look finds the
work done; with a real worker the wait follows its progress and gives up when nothing
has moved for the run's timeout.
"""

import time
from collections.abc import Callable

from benefits.simulation import Simulation, SimulationError


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
    last, moved_at = -1, time.monotonic()
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
        elif time.monotonic() - moved_at > sim.timeout:
            raise SimulationError(
                f"{description}: no progress for {sim.timeout:.0f} s ({count} of {total}); "
                "is a Celery worker consuming this broker?"
            )
        time.sleep(sim.poll_interval)
