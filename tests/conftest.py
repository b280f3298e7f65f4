import socket

import pytest
from django.core.cache import cache
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from config.celery import app as celery_app
from core.roles import Role
from tests.factories import ApplicantFactory, RoundFactory, UserFactory


@pytest.fixture(autouse=True)
def _isolated_files_and_throttles(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "documents"), "base_url": None},
        },
    }
    # Each API client loads the middleware; WhiteNoise's finders would walk every static
    # file each time (gunicorn does it once per worker). No test serves static files.
    settings.WHITENOISE_USE_FINDERS = False
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def on_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL")


def client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def anon():
    return APIClient()


@pytest.fixture
def applicant(db):
    return ApplicantFactory()


@pytest.fixture
def citizen(applicant):
    """An API client logged in as a citizen with a complete profile."""
    client = client_for(applicant.user)
    client.applicant = applicant
    return client


@pytest.fixture
def other_citizen(db):
    applicant = ApplicantFactory()
    client = client_for(applicant.user)
    client.applicant = applicant
    return client


@pytest.fixture
def open_round(db):
    return RoundFactory()


@pytest.fixture
def staff(db):
    """Make an API client for a staff role: staff("caseworker")."""

    def make(role: str):
        user = UserFactory(role=role, is_staff=True)
        client = client_for(user)
        client.user = user
        return client

    return make


@pytest.fixture
def manager(staff):
    return staff(Role.PROGRAM_MANAGER)


@pytest.fixture
def caseworker(staff):
    return staff(Role.CASEWORKER)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def broker_down(monkeypatch):
    """A real Redis URL on a port where nothing listens, and tasks no longer eager."""
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    monkeypatch.setitem(celery_app.conf, "broker_url", url)
    monkeypatch.setenv("CELERY_BROKER_URL", url)  # Celery reads it before its configuration
    saved = celery_app._pool, celery_app.amqp._producer_pool
    celery_app._pool = celery_app.amqp._producer_pool = None
    yield
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
    celery_app._pool, celery_app.amqp._producer_pool = saved
