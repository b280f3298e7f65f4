"""Options shared by Baeum's Celery tasks, and the task outbox's own tasks (core.outbox)."""

from celery import shared_task
from django.db import OperationalError

from core.outbox import outbox_run, outbox_sweep

# Redelivered if the worker dies; retried with backoff if the database is unreachable.
RETRY_ON_DATABASE_ERRORS = {
    "acks_late": True,
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "max_retries": 5,
}


@shared_task(**RETRY_ON_DATABASE_ERRORS)
def outbox_run_task(entry_id: int) -> bool:
    """Run one task-outbox entry under its lease; a copy of a finished or held one does nothing."""
    return outbox_run(entry_id=entry_id)


@shared_task
def outbox_sweep_task() -> dict:
    """Send again the outbox work still waiting (by beat, every BAEUM_OUTBOX_SWEEP_SECONDS)."""
    totals = outbox_sweep()
    if totals.get("more"):
        outbox_sweep_task.delay()
    return totals
