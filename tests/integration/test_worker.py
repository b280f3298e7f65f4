"""Tasks through a real Redis broker to a real Celery worker process (CI's third run)."""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from api.models import IdempotencyKey
from api.tasks import idempotency_keys_purge_task
from tests.factories import UserFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker():
    if settings.CELERY_TASK_ALWAYS_EAGER or connection.vendor != "postgresql":
        pytest.skip("needs CELERY_BROKER_URL and DATABASE_URL (PostgreSQL)")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_worker_purges_expired_idempotency_keys(worker):
    user = UserFactory()
    now = timezone.now()
    IdempotencyKey.objects.create(
        user=user, key="old", fingerprint="0" * 64, created_at=now - timedelta(hours=30)
    )
    IdempotencyKey.objects.create(user=user, key="new", fingerprint="0" * 64, created_at=now)

    idempotency_keys_purge_task.delay()

    assert wait_for(lambda: not IdempotencyKey.objects.filter(key="old").exists()), (
        "the worker did not run the task"
    )
    assert IdempotencyKey.objects.filter(key="new").exists()
