"""Celery wrappers of the eligibility services."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from eligibility.imports import registry_import_run


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
