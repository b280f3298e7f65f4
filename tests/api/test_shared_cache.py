"""Throttles and lockouts live in the shared cache: what one process counts, another sees.

Against a real Redis (BAEUM_TEST_REDIS_URL, by default database 14 on the local server),
configured as production configures it (BAEUM_CACHE_URL), with keys of this run only;
skipped when no Redis answers. Everywhere else the suite runs on the embedded default,
the process's own memory.
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from axes.handlers.proxy import AxesProxyHandler
from rest_framework.throttling import ScopedRateThrottle

from core.roles import Role
from tests.factories import UserFactory

REDIS_URL = os.environ.get("BAEUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
ROOT = Path(__file__).resolve().parents[2]
CLIENT = "203.0.113.7"

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

# Another process of Baeum on the same cache: it prints its cache settings, then spends
# throttle allowance or reads the lockout counter for CLIENT.
OTHER_PROCESS = """
import json, sys
import django
django.setup()
from django.conf import settings
from django.test import RequestFactory
from rest_framework.throttling import ScopedRateThrottle

ScopedRateThrottle.THROTTLE_RATES = {"auth": sys.argv[2]}
from django.contrib.auth.models import AnonymousUser
request = RequestFactory().post("/api/v1/auth/token/", REMOTE_ADDR=sys.argv[3])
request.user = AnonymousUser()
view = type("View", (), {"throttle_scope": "auth"})()
allowed = [ScopedRateThrottle().allow_request(request, view) for _ in range(int(sys.argv[1]))]

from axes.handlers.cache import AxesCacheHandler
failures = AxesCacheHandler().get_failures(request, {"username": "hana"})
print(json.dumps({"caches": settings.CACHES, "allowed": allowed, "failures": failures}))
"""


def other_process(prefix: str, *, requests: int = 0, rate: str = "6/min") -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "BAEUM_CACHE_URL": REDIS_URL,
        "BAEUM_CACHE_KEY_PREFIX": prefix,
    }
    env.pop("DATABASE_URL", None)  # it touches no database
    done = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, str(requests), rate, CLIENT],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def shared_cache(settings):
    """The web process on the Redis cache, with the settings another process gets."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis answers at {REDIS_URL}")
    prefix = f"baeum-test-{uuid.uuid4().hex}"
    embedded = settings.CACHES
    settings.CACHES = other_process(prefix)["caches"]
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    # Axes keeps the cache it found first; a process starts with its settings, a test not.
    AxesProxyHandler.get_implementation(force=True)
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    # Back to the process's memory before the suite's fixtures clear "the" cache: never a
    # FLUSHDB on a Redis database another run may be using.
    settings.CACHES = embedded
    AxesProxyHandler.get_implementation(force=True)


def test_the_login_throttle_is_shared_between_processes(shared_cache, anon, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": "6/min"})
    assert other_process(shared_cache, requests=4)["allowed"] == [True] * 4
    tries = [
        anon.post(
            "/api/v1/auth/token/",
            {"username": f"u{i}", "password": "not-the-password"},
            REMOTE_ADDR=CLIENT,
        )
        for i in range(4)
    ]
    assert [r.status_code for r in tries] == [400, 400, 429, 429]
    assert tries[-1].json()["errors"][0]["code"] == "throttled"
    # And the other way round: this process's tries count there too.
    assert other_process(shared_cache, requests=1)["allowed"] == [False]


def test_a_lockout_counted_here_holds_in_every_process(shared_cache, anon, settings):
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(username="hana", role=Role.CITIZEN)
    body = {"username": "hana", "password": "not-the-password"}
    codes = [
        anon.post("/api/v1/auth/token/", body, REMOTE_ADDR=CLIENT).status_code for _ in range(3)
    ]
    assert codes == [400, 400, 429]
    assert other_process(shared_cache)["failures"] == 3
