"""The registry import API: program managers upload, managers and auditors poll."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from core.roles import Role
from eligibility.imports import active_snapshot
from eligibility.models import RegistryImportJob
from tests.factories import rrn_for

pytestmark = pytest.mark.django_db

CSV = (
    "rrn,status,district,valid_from,valid_to\n"
    f"{rrn_for(1)},basic_livelihood,11440,2025-01-01,\n"
    f"{rrn_for(2)},near_poor,11110,2025-01-01,2026-12-31\n"
).encode()
JOB_FIELDS = {
    "id",
    "kind",
    "status",
    "rows_read",
    "rows_rejected",
    "errors",
    "snapshot",
    "created_at",
    "finished_at",
}


def upload(client, content: bytes = CSV, kind: str = "social_security", **extra):
    return client.post(
        f"/api/v1/registries/{kind}/imports/",
        {"file": SimpleUploadedFile("ss.csv", content, content_type="text/csv")},
        format="multipart",
        **extra,
    )


def codes(response) -> list[tuple]:
    return [(e["attr"], e["code"]) for e in response.json()["errors"]]


def test_manager_uploads_and_polls_until_the_snapshot_is_active(
    manager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(manager)

    assert response.status_code == 202, response.json()
    body = response.json()
    assert set(body) == JOB_FIELDS
    assert (body["kind"], body["status"]) == ("social_security", "queued")

    polled = manager.get(f"/api/v1/registries/imports/{body['id']}/")
    assert polled.status_code == 200
    job = polled.json()
    assert (job["status"], job["rows_read"], job["rows_rejected"], job["errors"]) == (
        "succeeded",
        2,
        0,
        [],
    )
    assert job["snapshot"] == active_snapshot("social_security").pk
    assert job["finished_at"] is not None


def test_bad_file_job_names_the_line(manager, staff, django_capture_on_commit_callbacks):
    bad = CSV + b"900101-1234567,near_poor,11440,2025-13-01,\n"
    with django_capture_on_commit_callbacks(execute=True):
        job_id = upload(manager, bad).json()["id"]

    job = staff(Role.AUDITOR).get(f"/api/v1/registries/imports/{job_id}/").json()
    assert job["status"] == "failed"
    assert job["snapshot"] is not None
    assert job["errors"] == [
        {
            "line": 4,
            "field": "valid_from",
            "code": "invalid_date",
            "message": "valid_from must be a date as YYYY-MM-DD.",
        }
    ]
    assert "900101" not in str(job)


def test_empty_file_is_accepted_and_reported_by_the_job(
    manager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(manager, b"")
    assert response.status_code == 202
    job = RegistryImportJob.objects.get(pk=response.json()["id"])
    assert (job.status, job.errors[0]["code"]) == ("failed", "empty_file")


@pytest.mark.parametrize("role", [Role.CASEWORKER, Role.FINANCE, Role.AUDITOR])
def test_other_staff_cannot_upload(staff, role):
    response = upload(staff(role))
    assert response.status_code == 403
    assert not RegistryImportJob.objects.exists()


def test_citizen_cannot_upload_or_poll(citizen, manager):
    assert upload(citizen).status_code == 403
    job_id = upload(manager).json()["id"]
    assert citizen.get(f"/api/v1/registries/imports/{job_id}/").status_code == 403


def test_caseworker_cannot_poll(caseworker, manager):
    job_id = upload(manager).json()["id"]
    assert caseworker.get(f"/api/v1/registries/imports/{job_id}/").status_code == 403


def test_anonymous_gets_401(anon, manager):
    assert upload(anon).status_code == 401
    job_id = upload(manager).json()["id"]
    assert anon.get(f"/api/v1/registries/imports/{job_id}/").status_code == 401


def test_unknown_kind_is_404(manager):
    response = upload(manager, kind="tax_records")
    assert response.status_code == 404
    assert not RegistryImportJob.objects.exists()


@pytest.mark.parametrize("job_id", ["999999", "99999999999999999999999"])
def test_unknown_job_is_404(manager, job_id):
    assert manager.get(f"/api/v1/registries/imports/{job_id}/").status_code == 404


def test_missing_file_is_400(manager):
    response = manager.post("/api/v1/registries/social_security/imports/", {}, format="multipart")
    assert response.status_code == 400
    assert codes(response) == [("file", "required")]


def test_unknown_field_is_400(manager):
    response = manager.post(
        "/api/v1/registries/social_security/imports/",
        {"file": SimpleUploadedFile("a.csv", CSV), "activate": "now"},
        format="multipart",
    )
    assert response.status_code == 400
    assert ("activate", "unknown_field") in codes(response)


def test_idempotency_key_replays_the_first_job(manager):
    first = upload(manager, HTTP_IDEMPOTENCY_KEY="reg-1")
    again = upload(manager, HTTP_IDEMPOTENCY_KEY="reg-1")
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["id"] == first.json()["id"]
    assert RegistryImportJob.objects.count() == 1


def test_upload_is_in_the_schema(manager):
    response = manager.get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/registries/{kind}/imports/" in paths
    assert "/api/v1/registries/imports/{id}/" in paths
