"""Celery wrappers of the eligibility services."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from core.outbox import on_abandon
from eligibility.imports import registry_import_abandon, registry_import_run


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=6,
)
def registry_import_run_task(job_id: int) -> str:
    """Import one registry file; rerunning a finished job changes nothing."""
    return registry_import_run(job_id=job_id).status


@on_abandon(registry_import_run_task)
def registry_import_given_up(job_id: int) -> None:
    """The outbox gave the import up: end the job, so that its upload is deleted."""
    registry_import_abandon(job_id=job_id)
