"""GET /health/ for the load balancer: every dependency named, 200 or 503, no login."""

import pytest
from django.db import connection
from health_check.checks import Cache

import core.health
from config.celery import app

pytestmark = pytest.mark.django_db(transaction=True)

CHECKS = {"database", "cache", "broker", "storage", "migrations"}


@pytest.fixture(autouse=True)
def _migrations_asked_each_time(monkeypatch):
    monkeypatch.setattr(core.health, "_migrated", False)


def test_healthy_answers_200_naming_each_check(client):
    response = client.get("/health/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": dict.fromkeys(CHECKS, "ok")}
    assert "no-cache" in response["Cache-Control"]


def test_a_cache_that_does_not_answer_is_503_naming_it(client, settings, monkeypatch):
    settings.CACHES = {
        **settings.CACHES,
        "unreachable": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # the discard port: nothing listens
            "OPTIONS": {"socket_connect_timeout": 1},
        },
    }
    monkeypatch.setitem(core.health.CHECKS, "cache", Cache(alias="unreachable"))
    response = client.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert {name for name, state in body["checks"].items() if state != "ok"} == {"cache"}


def test_a_broker_that_does_not_answer_is_503_naming_it(client, monkeypatch):
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    monkeypatch.setitem(app.conf, "broker_url", "redis://127.0.0.1:9/0")
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "Unavailable: The broker does not answer."


def test_storage_that_cannot_be_written_is_503_naming_it(client, settings, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(blocked / "documents")},
        },
    }
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json()["checks"]["storage"] != "ok"


def test_a_migration_not_applied_is_503_naming_it(client):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, app, name, applied FROM django_migrations "
            "WHERE app = 'api' ORDER BY id DESC LIMIT 1"
        )
        row = cursor.fetchone()
        cursor.execute("DELETE FROM django_migrations WHERE id = %s", [row[0]])
    try:
        response = client.get("/health/")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO django_migrations (id, app, name, applied) VALUES (%s, %s, %s, %s)",
                row,
            )
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "Unavailable: Migrations are not all applied."


def test_health_needs_no_login_and_says_nothing_else(client):
    response = client.get("/health/", HTTP_AUTHORIZATION="Token not-a-token")
    assert response.status_code == 200
    assert set(response.json()) == {"status", "checks"}
    assert client.post("/health/").status_code == 405
