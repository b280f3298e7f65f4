"""Celery wrappers of the eligibility services."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from core.outbox import on_abandon
from eligibility.imports import (
    registry_import_abandon,
    registry_import_chunk,
    registry_import_dispatch,
    registry_import_finish,
)

_RETRIED = {
    "acks_late": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 5,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 6,
}


@shared_task(**_RETRIED)
def registry_import_run_task(job_id: int) -> str:
    """Cut one registry file into chunk tasks; rerunning a job under way or finished
    changes nothing."""
    return registry_import_dispatch(job_id=job_id).status


@shared_task(**_RETRIED)
def registry_import_chunk_task(job_id: int, snapshot_id: int, index: int) -> None:
    """Check and load one chunk of a registry file; a chunk done already changes nothing."""
    registry_import_chunk(job_id=job_id, snapshot_id=snapshot_id, index=index)


@shared_task(**_RETRIED)
def registry_import_finish_task(job_id: int, snapshot_id: int) -> str:
    """Check a loaded file for duplicates and activate it; safe to run twice."""
    return registry_import_finish(job_id=job_id, snapshot_id=snapshot_id).status


@on_abandon(registry_import_run_task)
@on_abandon(registry_import_chunk_task)
@on_abandon(registry_import_finish_task)
def registry_import_given_up(job_id: int, *_) -> None:
    """The outbox gave the import up: end the job, so that its upload is deleted."""
    registry_import_abandon(job_id=job_id)
