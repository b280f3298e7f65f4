"""Celery wrappers around the screening services; each is safe to run twice."""

from celery import shared_task

from core.tasks import RETRY_ON_DATABASE_ERRORS
from eligibility.recheck import round_recheck
from eligibility.screening import application_screen, round_rescreen


@shared_task(**RETRY_ON_DATABASE_ERRORS)
def application_screen_task(application_id: int, trigger_key: str) -> int | None:
    """Screen one submitted application; a repeated trigger stores nothing new."""
    run = application_screen(application_id=application_id, trigger_key=trigger_key)
    return run.pk if run is not None else None


@shared_task(**RETRY_ON_DATABASE_ERRORS)
def round_rescreen_task(round_id: int, job_key: str) -> dict:
    """Re-screen a round; a retry resumes after the chunks already committed."""
    return round_rescreen(round_id=round_id, job_key=job_key)


@shared_task(**RETRY_ON_DATABASE_ERRORS)
def round_recheck_task(round_id: int, job_key: str) -> dict:
    """Re-check a round's approved applications after a new snapshot; safe to run twice."""
    return round_recheck(round_id=round_id, job_key=job_key)
