"""The citizen sees why: the reason of a decision, what is still missing, their messages."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from benefits.models import Application, Notification
from payments.models import DisbursementBatch, Payment
from tests.api.test_documents import PDF
from tests.factories import ApplicationFactory, UserFactory

pytestmark = pytest.mark.django_db


def under_review(citizen, **fields):
    fields.setdefault("status", Application.Status.UNDER_REVIEW)
    return ApplicationFactory(applicant=citizen.applicant, submitted_at=timezone.now(), **fields)


def upload(citizen, application, kind):
    return citizen.post(
        f"/api/v1/applications/{application.pk}/documents/",
        {"kind": kind, "file": SimpleUploadedFile("scan.pdf", PDF)},
        format="multipart",
    )


def test_the_citizen_reads_why_documents_were_requested_and_which_are_missing(citizen, caseworker):
    application = under_review(citizen)
    upload_before = application.documents.create(
        kind="bank_book",
        file="applications/x/old.pdf",
        original_name="old.pdf",
        content_type="application/pdf",
        size=1,
        sha256="0" * 64,
        uploaded_by=citizen.applicant.user,
    )
    response = caseworker.post(
        f"/api/v1/review/applications/{application.pk}/request-documents/",
        {
            "reason": "소득 증빙과 통장 사본을 올려 주세요.",
            "documents": ["income_proof", "bank_book"],
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    mine = citizen.get(f"/api/v1/applications/{application.pk}/").json()
    assert mine["status"] == "needs_documents"
    assert mine["decision_reason"] == "소득 증빙과 통장 사본을 올려 주세요."
    # The bank book uploaded before the request does not answer it; the certificate a
    # scholarship needs is missing too.
    assert upload_before.kind == "bank_book"
    assert mine["missing_documents"] == ["bank_book", "enrollment_certificate", "income_proof"]
    assert upload(citizen, application, "income_proof").status_code == 201
    assert upload(citizen, application, "enrollment_certificate").status_code == 201
    mine = citizen.get(f"/api/v1/applications/{application.pk}/").json()
    assert mine["missing_documents"] == ["bank_book"]
    assert upload(citizen, application, "bank_book").status_code == 201
    listed = citizen.get("/api/v1/applications/").json()["results"][0]
    assert listed["missing_documents"] == []


def test_a_request_for_an_unknown_kind_of_document_changes_nothing(citizen, caseworker):
    application = under_review(citizen)
    response = caseworker.post(
        f"/api/v1/review/applications/{application.pk}/request-documents/",
        {"reason": "서류", "documents": ["selfie"]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalid_choice"
    application.refresh_from_db()
    assert application.status == Application.Status.UNDER_REVIEW
    assert application.decision_reason == ""


def test_the_rejection_reason_reaches_the_citizen_on_the_application_and_as_a_message(
    citizen, caseworker
):
    application = under_review(citizen)
    caseworker.post(
        f"/api/v1/review/applications/{application.pk}/reject/",
        {"reason": "직업훈련 과정이 아닙니다."},
        format="json",
    )
    mine = citizen.get(f"/api/v1/applications/{application.pk}/").json()
    assert (mine["status"], mine["decision_reason"]) == ("rejected", "직업훈련 과정이 아닙니다.")
    messages = citizen.get("/api/v1/me/notifications/").json()
    assert messages["count"] == 1
    message = messages["results"][0]
    assert message["kind"] == "rejected"
    assert message["application"] == application.pk
    assert "직업훈련 과정이 아닙니다." in message["body"]


def test_messages_are_the_citizens_own_newest_first_and_paginated(citizen, other_citizen):
    own = [
        Notification.objects.create(
            user=citizen.applicant.user,
            kind=Notification.Kind.SUBMITTED,
            dedupe_key=f"k{i}",
            subject=f"#{i}",
            body="b",
        )
        for i in range(3)
    ]
    Notification.objects.create(
        user=other_citizen.applicant.user, kind="submitted", dedupe_key="x", subject="x", body="x"
    )
    page = citizen.get("/api/v1/me/notifications/?page_size=2").json()
    assert page["count"] == 3
    assert [m["id"] for m in page["results"]] == [own[2].pk, own[1].pk]
    assert page["next"]


@pytest.mark.parametrize("who", ["anonymous", "caseworker", "provider"])
def test_only_citizens_have_messages(anon, staff, who):
    client = anon if who == "anonymous" else staff(who)
    assert client.get("/api/v1/me/notifications/").status_code in (401, 403)


def test_every_timestamp_the_citizen_reads_is_in_seoul_time(citizen):
    application = under_review(citizen, status=Application.Status.SELECTED)
    Application.objects.filter(pk=application.pk).update(
        decided_at=timezone.now(), selected_at=timezone.now()
    )
    batch = DisbursementBatch.objects.create(round=application.round, prepared_by=UserFactory())
    Payment.objects.create(
        batch=batch,
        round=application.round,
        application=application,
        amount=application.round.amount,
        status=Payment.Status.PAID,
        paid_at=timezone.now(),
    )
    application.documents.create(
        kind="other",
        file="applications/x/a.pdf",
        original_name="a.pdf",
        content_type="application/pdf",
        size=1,
        sha256="0" * 64,
        uploaded_by=citizen.applicant.user,
    )
    Notification.objects.create(
        user=citizen.applicant.user, kind="paid", dedupe_key="p", subject="s", body="b"
    )
    bodies = [
        citizen.get(f"/api/v1/applications/{application.pk}/").content.decode(),
        citizen.get("/api/v1/applications/").content.decode(),
        citizen.get("/api/v1/me/notifications/").content.decode(),
    ]
    stamps = [s for body in bodies for s in re.findall(r'"\d{4}-\d\d-\d\dT[^"]+"', body)]
    assert len(stamps) >= 6, stamps
    assert all(stamp.endswith('+09:00"') for stamp in stamps), stamps
    paid = citizen.get(f"/api/v1/applications/{application.pk}/").json()["payments"]
    assert paid[0]["paid_at"].endswith("+09:00")
