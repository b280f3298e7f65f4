"""Celery wrappers around screening and its recording; each is safe to run twice."""

from celery import shared_task

from benefits.models import Application
from benefits.rescreen import round_rescreen_chunk, round_rescreen_dispatch
from benefits.screening_record import application_screen
from core.outbox import outbox_enqueue
from core.tasks import RETRY_ON_DATABASE_ERRORS
from eligibility.recheck import recheck_after_snapshot, round_recheck


@shared_task(**RETRY_ON_DATABASE_ERRORS)
def application_screen_task(application_id: int, trigger_key: str) -> int | None:
    """Screen one submitted application; a repeated trigger stores nothing new."""
    run = application_screen(application_id=application_id, trigger_key=trigger_key)
    return run.pk if run is not None else None


@shared_task(**RETRY_ON_DATABASE_ERRORS)
def round_rescreen_task(round_id: int, job_key: str) -> dict:
    """Re-screen a round: record one chunk task per range of its applications, for the
    workers on the `long` queue to share; a rerun records the same chunks once."""
    return round_rescreen_dispatch(round_id=round_id, job_key=job_key)


@shared_task(**RETRY_ON_DATABASE_ERRORS)
def round_rescreen_chunk_task(
    round_id: int, job_key: str, first: int, last: int | None, snapshot_ids: dict
) -> dict:
    """Re-screen one chunk of a round; a rerun screens only what is left of it."""
    return round_rescreen_chunk(
        round_id=round_id, job_key=job_key, first=first, last=last, snapshot_ids=snapshot_ids
    )


@shared_task(**RETRY_ON_DATABASE_ERRORS)
def round_recheck_task(round_id: int, job_key: str) -> dict:
    """Re-check a round's approved applications after a new snapshot; safe to run twice."""
    return round_recheck(round_id=round_id, job_key=job_key)


def round_rescreen_request(*, round_id: int, job_key: str) -> None:
    """Record a re-screen of the round under `job_key` as work of the current transaction:
    sent after the commit, and by the sweeper if the broker is down then (once per key)."""
    outbox_enqueue(round_rescreen_task, round_id, job_key, key=f"rescreen:{round_id}:{job_key}")


def rescreen_after_snapshot(*, snapshot_id: int) -> list[int]:
    """Record a re-screening of every round with applications under review, and a re-check
    of the decided ones, in the transaction that activates the snapshot; return the ids of
    the rounds re-screened."""
    round_ids = list(
        Application.objects.filter(status=Application.Status.UNDER_REVIEW)
        .values_list("round_id", flat=True)
        .distinct()
        .order_by("round_id")
    )
    for round_id in round_ids:
        round_rescreen_request(round_id=round_id, job_key=f"snapshot-{snapshot_id}")
    recheck_after_snapshot(snapshot_id=snapshot_id)
    return round_ids
