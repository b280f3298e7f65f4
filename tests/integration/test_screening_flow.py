"""Submit → screening (Celery, after commit) → the caseworker sees why."""

import pytest

from benefits.models import Application, Notification
from eligibility.models import RegistrySnapshot, ScreeningRun, SocialSecurityRecord, TrainingCourse
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
    # No enrollment certificate was uploaded: a person has to look.
    assert detail["screening"]["outcome"] == "needs_review"
    assert Notification.objects.filter(application=application, kind="submitted").exists()
