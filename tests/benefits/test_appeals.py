"""Appeals (이의신청): a rejected citizen objects within the window; another caseworker decides."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from benefits.models import Appeal, Application, Notification, Round
from core.roles import Role
from tests.api.test_documents import PDF
from tests.factories import ApplicationFactory, RoundFactory, UserFactory, approved_applications

pytestmark = pytest.mark.django_db


@pytest.fixture
def second_caseworker(staff):
    return staff(Role.CASEWORKER)


def rejected_by(caseworker, citizen, **fields):
    application = ApplicationFactory(
        applicant=citizen.applicant,
        status=Application.Status.UNDER_REVIEW,
        submitted_at=timezone.now(),
        **fields,
    )
    response = caseworker.post(
        f"/api/v1/review/applications/{application.pk}/reject/",
        {"reason": "훈련 과정 확인 불가"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    return application


def appeal(citizen, application, reason="수료 예정 확인서를 첨부합니다."):
    return citizen.post(
        f"/api/v1/applications/{application.pk}/appeal/", {"reason": reason}, format="json"
    )


def decide(client, application, outcome, reason="검토 결과"):
    return client.post(
        f"/api/v1/review/applications/{application.pk}/appeal-decision/",
        {"outcome": outcome, "reason": reason},
        format="json",
    )


def error(response) -> tuple:
    first = response.json()["errors"][0]
    return first["attr"], first["code"]


def test_the_rejection_notice_states_the_right_to_appeal_and_its_deadline(caseworker, citizen):
    application = rejected_by(caseworker, citizen)
    until = (timezone.localdate() + timedelta(days=30)).isoformat()
    mine = citizen.get(f"/api/v1/applications/{application.pk}/").json()
    assert (mine["status"], mine["appeal_until"], mine["appeal"]) == ("rejected", until, None)
    notice = Notification.objects.get(application=application, kind=Notification.Kind.REJECTED)
    assert until in notice.body
    assert "이의신청" in notice.body and "appeal" in notice.body


def test_an_appeal_within_the_window_is_filed_and_the_citizen_told(caseworker, citizen):
    application = rejected_by(caseworker, citizen)
    response = appeal(citizen, application)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "appealed"
    assert body["appeal"]["reason"] == "수료 예정 확인서를 첨부합니다."
    assert body["appeal"]["outcome"] == ""
    assert body["appeal"]["deadline"] == (timezone.localdate() + timedelta(days=30)).isoformat()
    assert Notification.objects.filter(
        application=application, kind=Notification.Kind.APPEAL_RECEIVED
    ).exists()
    # Documents supporting the appeal go through the usual upload.
    upload = citizen.post(
        f"/api/v1/applications/{application.pk}/documents/",
        {"kind": "other", "file": SimpleUploadedFile("proof.pdf", PDF)},
        format="multipart",
    )
    assert upload.status_code == 201, upload.json()


def test_an_appeal_after_the_window_is_refused(caseworker, citizen):
    application = rejected_by(caseworker, citizen)
    Application.objects.filter(pk=application.pk).update(
        decided_at=timezone.now() - timedelta(days=31)
    )
    response = appeal(citizen, application)
    assert response.status_code == 400
    assert error(response) == ("reason", "appeal_window_closed")
    assert Application.objects.get(pk=application.pk).status == Application.Status.REJECTED
    assert not Appeal.objects.exists()


def test_the_window_is_a_round_setting(caseworker, citizen):
    application = rejected_by(caseworker, citizen, round=RoundFactory(appeal_days=60))
    Application.objects.filter(pk=application.pk).update(
        decided_at=timezone.now() - timedelta(days=45)
    )
    assert appeal(citizen, application).status_code == 200


def test_the_caseworker_who_rejected_cannot_decide_the_appeal(caseworker, citizen):
    application = rejected_by(caseworker, citizen)
    appeal(citizen, application)
    response = decide(caseworker, application, "overturned")
    assert response.status_code == 403
    assert error(response)[1] == "same_reviewer"
    assert Application.objects.get(pk=application.pk).status == Application.Status.APPEALED


def test_an_upheld_appeal_is_final(caseworker, second_caseworker, citizen):
    application = rejected_by(caseworker, citizen)
    appeal(citizen, application)
    response = decide(second_caseworker, application, "upheld", "기준 미충족")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "rejected"
    mine = citizen.get(f"/api/v1/applications/{application.pk}/").json()
    assert mine["appeal"]["outcome"] == "upheld"
    assert mine["appeal_until"] is None
    told = Notification.objects.get(application=application, kind="appeal_upheld")
    assert "기준 미충족" in told.body
    again = appeal(citizen, application)
    assert again.status_code == 409
    assert error(again)[1] == "rejection_final"


def test_an_overturned_appeal_joins_selection_without_displacing_anyone(
    caseworker, second_caseworker, citizen, manager
):
    round_ = RoundFactory(status=Round.Status.CLOSED, capacity=2)
    approved_applications(round_, 2)
    assert manager.post(f"/api/v1/rounds/{round_.pk}/select/").status_code == 200
    application = rejected_by(caseworker, citizen, round=round_)
    appeal(citizen, application)
    response = decide(second_caseworker, application, "overturned", "서류 확인됨")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "approved"
    assert Notification.objects.filter(application=application, kind="appeal_overturned").exists()
    body = manager.post(f"/api/v1/rounds/{round_.pk}/select/").json()
    assert (body["selection"]["selected"], body["selection"]["waitlisted"]) == (0, 1)
    assert Application.objects.get(pk=application.pk).status == Application.Status.WAITLISTED
    assert Application.objects.filter(round=round_, status="selected").count() == 2


def test_an_automatic_rejection_may_be_decided_by_any_caseworker(caseworker, citizen):
    application = ApplicationFactory(
        applicant=citizen.applicant,
        status=Application.Status.REJECTED,
        decided_at=timezone.now(),
    )
    appeal(citizen, application)
    assert decide(caseworker, application, "overturned").status_code == 200


def test_the_database_refuses_an_appeal_decided_by_the_rejecting_caseworker(citizen):
    worker = UserFactory(role=Role.CASEWORKER)
    application = ApplicationFactory(applicant=citizen.applicant, status="appealed")
    with pytest.raises(IntegrityError), transaction.atomic():
        Appeal.objects.create(
            application=application,
            reason="x",
            filed_at=timezone.now(),
            filed_by=citizen.applicant.user,
            rejected_by=worker,
            deadline=timezone.localdate(),
            outcome="upheld",
            decided_by=worker,
            decided_at=timezone.now(),
        )


@pytest.mark.parametrize(
    ("body", "attr", "code"),
    [
        ({}, "reason", "required"),
        ({"reason": ""}, "reason", "blank"),
        ({"reason": "x", "documents": 1}, "documents", "unknown_field"),
    ],
)
def test_bad_appeals_are_field_errors(caseworker, citizen, body, attr, code):
    application = rejected_by(caseworker, citizen)
    response = citizen.post(f"/api/v1/applications/{application.pk}/appeal/", body, format="json")
    assert response.status_code == 400
    assert error(response) == (attr, code)


def test_bad_appeal_decisions_change_nothing(caseworker, second_caseworker, citizen):
    application = rejected_by(caseworker, citizen)
    appeal(citizen, application)
    url = f"/api/v1/review/applications/{application.pk}/appeal-decision/"
    for body, expected in (
        ({"outcome": "maybe", "reason": "x"}, ("outcome", "invalid_choice")),
        ({"outcome": "upheld"}, ("reason", "required")),
    ):
        response = second_caseworker.post(url, body, format="json")
        assert response.status_code == 400
        assert error(response) == expected
    assert Application.objects.get(pk=application.pk).status == Application.Status.APPEALED


def test_only_a_rejected_application_is_appealed_and_only_an_appealed_one_decided(
    caseworker, citizen
):
    application = ApplicationFactory(applicant=citizen.applicant, status="under_review")
    assert appeal(citizen, application).status_code == 409
    assert decide(caseworker, application, "overturned").status_code == 409


def test_another_citizens_application_cannot_be_appealed(caseworker, citizen, other_citizen):
    application = rejected_by(caseworker, citizen)
    assert appeal(other_citizen, application).status_code == 404
    assert (
        caseworker.post(
            f"/api/v1/applications/{application.pk}/appeal/", {"reason": "x"}, format="json"
        ).status_code
        == 403
    )
    assert decide(citizen, application, "overturned").status_code == 403


def test_the_queue_lists_appeals_oldest_first_with_the_days_left(
    caseworker, second_caseworker, citizen, other_citizen
):
    first = rejected_by(caseworker, citizen)
    later = rejected_by(caseworker, other_citizen)
    appeal(other_citizen, later)
    appeal(citizen, first)
    Appeal.objects.filter(application=later).update(
        filed_at=timezone.now() - timedelta(days=10),
        deadline=timezone.localdate() + timedelta(days=20),
    )
    queue = second_caseworker.get("/api/v1/review/applications/?flag=appeal").json()
    assert [row["id"] for row in queue["results"]] == [later.pk, first.pk]
    assert [row["appeal_days_left"] for row in queue["results"]] == [20, 30]
    assert all("appeal" in row["flags"] for row in queue["results"])
    detail = second_caseworker.get(f"/api/v1/review/applications/{later.pk}/").json()
    assert detail["appeal"]["reason"] == "수료 예정 확인서를 첨부합니다."


def _appealed(n: int) -> None:
    for _ in range(n):
        application = ApplicationFactory(status=Application.Status.APPEALED)
        Appeal.objects.create(
            application=application,
            reason="x",
            filed_at=timezone.now(),
            filed_by=application.applicant.user,
            deadline=timezone.localdate() + timedelta(days=30),
        )


def test_the_appeals_queue_costs_the_same_queries_for_one_appeal_or_many(second_caseworker):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = second_caseworker.get("/api/v1/review/applications/?flag=appeal")
            assert response.status_code == 200
        return len(queries)

    _appealed(1)
    one = count()
    _appealed(4)
    assert count() == one
