import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from benefits import document_services, services
from benefits.models import Application
from core.roles import Role
from eligibility.models import ScreeningRun
from tests.documents import pdf
from tests.factories import ApplicationFactory, UserFactory, screened_by_task


def png(width: int = 240, height: int = 120) -> bytes:
    """A real PNG of a bank book's colour: enough for the type check and for a browser."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + b"\x2a\x6f\x97" * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


PNG = png()
PDF = pdf()

CATALOGUE = (
    Path(__file__).resolve().parents[2] / "config" / "locale" / "ko" / "LC_MESSAGES" / "django.po"
)


def _compile_catalogue() -> None:
    """Compile the Korean catalogue when it is missing or stale (`make` does it too), before
    any test loads a translation: the .mo is not committed."""
    compiled = CATALOGUE.with_suffix(".mo")
    if not compiled.exists() or compiled.stat().st_mtime < CATALOGUE.stat().st_mtime:
        subprocess.run(["msgfmt", "--check", "-o", str(compiled), str(CATALOGUE)], check=True)


_compile_catalogue()

STAFF_ROLES = (Role.CASEWORKER, Role.PROGRAM_MANAGER, Role.FINANCE, Role.AUDITOR)


@pytest.fixture
def web(db):
    """A browser-like client signed in with a session: web("caseworker"), web(user=...)."""

    def make(role: str | None = None, *, user=None) -> Client:
        client = Client()
        client.user = user or UserFactory(role=role, is_staff=role in STAFF_ROLES)
        client.force_login(client.user)
        return client

    return make


def query_count(client, url: str, params: dict | None = None) -> int:
    """How many queries one page costs (the page is fetched once before, to warm caches)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url, params or {})
    with CaptureQueriesContext(connection) as context:
        response = client.get(url, params or {})
    assert response.status_code == 200, response.status_code
    return len(context)


def under_review(**kwargs) -> Application:
    application = ApplicationFactory(**kwargs)
    services.application_submit(application=application, actor=application.applicant.user)
    application.refresh_from_db()
    if application.status == Application.Status.SUBMITTED:
        # Within a test's transaction the screening task (run after the commit) never ran.
        screened_by_task(application)
    return application


def screened(application: Application, *, outcome="needs_review", duplicate=False, rules=None):
    ScreeningRun.objects.filter(application=application).update(is_current=False)
    return ScreeningRun.objects.create(
        application=application,
        trigger_key=f"t{ScreeningRun.objects.count()}",
        ruleset_version="scholarship-test",
        outcome=outcome,
        duplicate_found=duplicate,
        rules=rules or [],
        duplicates=(
            [
                {
                    "registry": "naeilbaeum",
                    "action": "review",
                    "evidence": {
                        "matches": [
                            {
                                "course_id": "AIG2026X0001",
                                "training_from": "2026-03-01",
                                "training_to": "2026-06-30",
                                "same_course": False,
                                "same_period": True,
                            }
                        ],
                        "policy": "review",
                    },
                }
            ]
            if duplicate
            else []
        ),
    )


def with_document(application: Application, *, content=PNG, name="bankbook.png", kind="bank_book"):
    """Attach a document as the citizen would have before submitting."""
    status = Application.objects.values_list("status", flat=True).get(pk=application.pk)
    Application.objects.filter(pk=application.pk).update(status="draft")
    document = document_services.document_add(
        application=Application.objects.get(pk=application.pk),
        actor=application.applicant.user,
        kind=kind,
        uploaded=SimpleUploadedFile(name, content),
    )
    Application.objects.filter(pk=application.pk).update(status=status)
    return document
