"""The Celery application, configured from Django settings (``CELERY_`` namespace)."""

import os

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger

from core.logging import redact_celery_logger

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("baeum")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Workers and beat keep RRNs out of the handlers Celery sets up for itself.
after_setup_logger.connect(redact_celery_logger, weak=False)
after_setup_task_logger.connect(redact_celery_logger, weak=False)
