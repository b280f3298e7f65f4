"""GET /health/ for the load balancer: the database, the cache, the broker, the file
storage and the migrations, checked by django-health-check; 200 when all answer, else 503
naming the failing ones. No authentication, and nothing in it about anyone."""

import asyncio
import dataclasses
import datetime

from django.core.management import call_command
from django.db import connections
from django.http import JsonResponse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET
from health_check.base import HealthCheck
from health_check.checks import Cache, Database, Storage
from health_check.exceptions import ServiceUnavailable


@dataclasses.dataclass
class Broker(HealthCheck):
    """The Celery broker accepts a connection (nothing to check when tasks run eagerly)."""

    timeout: datetime.timedelta = dataclasses.field(
        default=datetime.timedelta(seconds=3), repr=False
    )

    def run(self):
        from config.celery import app

        if app.conf.task_always_eager:
            return
        try:
            with app.connection_for_write(connect_timeout=self.timeout.total_seconds()) as conn:
                conn.ensure_connection(max_retries=1)
        except Exception as exc:
            raise ServiceUnavailable("The broker does not answer.") from exc


_migrated = False


@dataclasses.dataclass
class Migrations(HealthCheck):
    """Every migration of the code running is applied (`migrate --check`).

    Once they are, they stay so for the life of the process: it is not asked again.
    """

    def run(self):
        global _migrated
        if _migrated:
            return
        try:
            call_command("migrate", check_unapplied=True, verbosity=0)
        except SystemExit as exc:
            raise ServiceUnavailable("Migrations are not all applied.") from exc
        finally:
            # This runs in a worker thread of its own: its connection would outlive it.
            connections.close_all()
        _migrated = True


CHECKS = {
    "database": Database(),
    "cache": Cache(),
    "broker": Broker(),
    "storage": Storage(),
    "migrations": Migrations(),
}


@require_GET
async def health(request):
    results = await asyncio.gather(*(check.get_result() for check in CHECKS.values()))
    checks = {
        name: "ok" if result.error is None else str(result.error)
        for name, result in zip(CHECKS, results, strict=True)
    }
    healthy = all(result.error is None for result in results)
    response = JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )
    add_never_cache_headers(response)
    return response
