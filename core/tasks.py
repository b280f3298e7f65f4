"""Options shared by Baeum's Celery tasks."""

from django.db import OperationalError

# Redelivered if the worker dies; retried with backoff if the database is unreachable.
RETRY_ON_DATABASE_ERRORS = {
    "acks_late": True,
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "max_retries": 5,
}
