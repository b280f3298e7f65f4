"""Submit → screening (Celery, after commit) → the caseworker sees why."""

import pytest

from benefits.models import Application, Notification
from eligibility.models import RegistrySnapshot, ScreeningRun, SocialSecurityRecord, TrainingCourse
from eligibility.rules import MESSAGES
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db


def test_submitted_application_is_screened_and_reaches_the_queue(
    citizen, caseworker, django_capture_on_commit_callbacks
):
    application = ApplicationFactory(applicant=citizen.applicant)
    social = RegistrySnapshot.objects.create(kind="social_security", status="active")
    SocialSecurityRecord.objects.create(
        snapshot=social,
        line=2,
        rrn_hmac=citizen.applicant.rrn_hmac,
        status="basic_livelihood",
        district="11440",
        valid_from="2020-01-01",
    )
    courses = RegistrySnapshot.objects.create(kind="training_courses", status="active")
    TrainingCourse.objects.create(
        snapshot=courses,
        line=2,
        course_id=application.course_id,
        name="빅데이터",
        institution="서울직업전문학교",
        starts_on=application.training_starts_on,
        ends_on=application.training_ends_on,
        vocational=True,
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = citizen.post(f"/api/v1/applications/{application.pk}/submit/")
    assert response.status_code == 200

    application.refresh_from_db()
    assert application.status == Application.Status.UNDER_REVIEW
    run = ScreeningRun.objects.get(application=application)
    assert run.is_current and run.snapshot_ids

    detail = caseworker.get(f"/api/v1/review/applications/{application.pk}/").json()
    assert detail["screening"]["outcome"] == run.outcome
    codes = {r["rule"]: r["outcome"] for r in detail["screening"]["rules"]}
    assert codes, detail["screening"]
    # Every result reads in both languages, in the words its code stands for.
    for result in detail["screening"]["rules"]:
        assert (result["message"], result["message_ko"]) == MESSAGES[result["code"]]
    # No enrollment certificate was uploaded: a person has to look.
    assert detail["screening"]["outcome"] == "needs_review"
    assert Notification.objects.filter(application=application, kind="submitted").exists()


def test_a_new_registry_snapshot_rescreens_applications_under_review(
    caseworker, manager, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from benefits.screening_record import application_screen
    from eligibility.imports import registry_import_create, registry_import_run

    application = ApplicationFactory()
    from benefits import services

    services.application_submit(application=application, actor=application.applicant.user)
    application_screen(application_id=application.pk, trigger_key="submit:first")
    before = ScreeningRun.objects.get(application=application)
    assert before.snapshot_ids.get("social_security") is None

    csv = (
        "rrn,status,district,valid_from,valid_to\n"
        f"{application.applicant.rrn},basic_livelihood,11440,2020-01-01,\n"
    )
    upload = SimpleUploadedFile("ss.csv", csv.encode())
    with django_capture_on_commit_callbacks(execute=True):
        job = registry_import_create(
            kind="social_security", uploaded_file=upload, actor=manager.user, schedule=False
        )
        job = registry_import_run(job_id=job.pk)
    assert job.status == "succeeded"

    current = ScreeningRun.objects.get(application=application, is_current=True)
    assert current.pk != before.pk
    assert current.trigger_key == f"rescreen:snapshot-{job.snapshot_id}"
    assert current.snapshot_ids["social_security"] == job.snapshot_id
    application.refresh_from_db()
    assert application.status == "under_review"
