"""Citizens create, edit, submit and withdraw their applications through the API."""

from datetime import timedelta

import pytest
from django.utils import timezone

from benefits.models import Application, Program, Round
from core.models import AuditEvent
from tests.factories import ApplicationFactory, ProgramFactory, RoundFactory

pytestmark = pytest.mark.django_db

TRAINING = {
    "course_id": "AIG20260001",
    "course_name": "빅데이터 분석 실무",
    "institution": "서울직업전문학교",
    "starts_on": "2026-12-01",
    "ends_on": "2027-03-31",
    "weekly_hours": 15,
}


def create(client, round_, **overrides):
    body = {"round": round_.pk, "income_category": "basic_livelihood", "training": TRAINING}
    body.update(overrides)
    return client.post("/api/v1/applications/", body, format="json")


def errors(response) -> dict:
    return {e["attr"]: e["code"] for e in response.json()["errors"]}


def test_citizen_creates_a_draft(citizen, open_round):
    response = create(citizen, open_round)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "draft"
    assert body["round"] == open_round.pk
    assert body["training"]["course_name"] == "빅데이터 분석 실무"
    assert body["training"]["starts_on"] == "2026-12-01"
    assert body["documents"] == [] and body["payments"] == []
    event = AuditEvent.objects.get(action="application.created")
    assert event.actor == citizen.applicant.user and event.to_state == "draft"


def test_list_shows_only_own_applications_paginated(citizen, other_citizen, open_round):
    mine = ApplicationFactory(applicant=citizen.applicant, round=open_round)
    ApplicationFactory(applicant=other_citizen.applicant, round=open_round)
    response = citizen.get("/api/v1/applications/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 1
    assert [a["id"] for a in body["results"]] == [mine.pk]


def test_list_does_a_fixed_number_of_queries(citizen, django_assert_max_num_queries):
    for _ in range(5):
        ApplicationFactory(applicant=citizen.applicant)
    with django_assert_max_num_queries(8):
        response = citizen.get("/api/v1/applications/")
    assert response.json()["count"] == 5


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", ""),
        ("patch", ""),
        ("post", "submit/"),
        ("post", "withdraw/"),
        ("post", "documents/"),
    ],
)
def test_another_citizens_application_is_not_found(citizen, other_citizen, method, suffix):
    theirs = ApplicationFactory(applicant=other_citizen.applicant)
    response = getattr(citizen, method)(
        f"/api/v1/applications/{theirs.pk}/{suffix}", {}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"
    theirs.refresh_from_db()
    assert theirs.status == "draft"


def test_second_live_application_in_round_is_refused(citizen, open_round):
    assert create(citizen, open_round).status_code == 201
    response = create(citizen, open_round)
    assert response.status_code == 400
    assert errors(response) == {"round": "already_applied"}
    assert Application.objects.count() == 1


def test_citizen_may_apply_again_after_withdrawing(citizen, open_round):
    first = create(citizen, open_round).json()
    assert citizen.post(f"/api/v1/applications/{first['id']}/withdraw/").status_code == 200
    assert create(citizen, open_round).status_code == 201


@pytest.mark.parametrize(
    "make_round",
    [
        lambda: RoundFactory(status=Round.Status.DRAFT),
        lambda: RoundFactory(status=Round.Status.CLOSED),
        lambda: RoundFactory(
            applications_open_at=timezone.now() - timedelta(days=40),
            applications_close_at=timezone.now() - timedelta(days=1),
        ),
        lambda: RoundFactory(
            applications_open_at=timezone.now() + timedelta(days=1),
            applications_close_at=timezone.now() + timedelta(days=30),
        ),
    ],
    ids=["draft", "closed", "window-over", "window-not-started"],
)
def test_round_that_is_not_open_is_refused(citizen, make_round):
    response = create(citizen, make_round())
    assert response.status_code == 400
    assert errors(response) == {"round": "round_not_open"}
    assert not Application.objects.exists()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"round": 999999}, {"round": "does_not_exist"}),
        ({"round": "abc"}, {"round": "incorrect_type"}),
        ({"income_category": "rich"}, {"income_category": "invalid_choice"}),
        ({"training": "yes"}, {"training.non_field_errors": "invalid"}),
        ({"training": {**TRAINING, "weekly_hours": "many"}}, {"training.weekly_hours": "invalid"}),
        ({"training": {**TRAINING, "weekly_hours": 0}}, {"training.weekly_hours": "min_value"}),
        ({"training": {**TRAINING, "starts_on": "2026-13-01"}}, {"training.starts_on": "invalid"}),
        (
            {"training": {**TRAINING, "ends_on": "2026-11-01"}},
            {"training.ends_on": "ends_before_start"},
        ),
        ({"training": {**TRAINING, "fee": 10}}, {"training.fee": "unknown_field"}),
        ({"colour": "blue"}, {"colour": "unknown_field"}),
        ({"status": "approved"}, {"status": "unknown_field"}),
        ({"training": None}, {"training": "required"}),
        (
            {"training": {"course_name": "x"}},
            {
                "training.institution": "required",
                "training.starts_on": "required",
                "training.ends_on": "required",
                "training.weekly_hours": "required",
            },
        ),
    ],
)
def test_bad_application_input_is_refused_field_by_field(citizen, open_round, body, expected):
    response = create(citizen, open_round, **body)
    assert response.status_code == 400, response.json()
    assert errors(response) == expected
    assert not Application.objects.exists()


def test_missing_required_field(citizen, open_round):
    response = citizen.post("/api/v1/applications/", {"round": open_round.pk}, format="json")
    assert response.status_code == 400
    assert errors(response) == {"income_category": "required"}


def test_malformed_json_is_a_parse_error(citizen):
    response = citizen.post(
        "/api/v1/applications/", data='{"round": 1,', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "parse_error"


def test_body_that_is_not_an_object(citizen):
    response = citizen.post("/api/v1/applications/", data="[1, 2]", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"


def test_voucher_application_needs_no_training(citizen):
    voucher_round = RoundFactory(program=ProgramFactory(code=Program.Code.VOUCHER), amount=350_000)
    response = create(citizen, voucher_round, training=None, income_category="none")
    assert response.status_code == 201
    assert response.json()["training"] is None


def test_edit_while_draft(citizen, open_round):
    created = create(citizen, open_round).json()
    response = citizen.patch(
        f"/api/v1/applications/{created['id']}/", {"income_category": "near_poor"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["income_category"] == "near_poor"


def test_round_cannot_be_changed_by_edit(citizen, open_round):
    created = create(citizen, open_round).json()
    response = citizen.patch(
        f"/api/v1/applications/{created['id']}/", {"round": open_round.pk + 1}, format="json"
    )
    assert response.status_code == 400
    assert errors(response) == {"round": "read_only"}


def test_submit_then_edit_and_submit_again_are_refused(citizen, open_round):
    created = create(citizen, open_round).json()
    url = f"/api/v1/applications/{created['id']}/"
    submitted = citizen.post(url + "submit/")
    assert submitted.status_code == 200
    assert submitted.json()["status"] == "submitted"
    assert submitted.json()["submitted_at"]

    again = citizen.post(url + "submit/")
    assert again.status_code == 409
    assert errors(again) == {"status": "invalid_transition"}

    edit = citizen.patch(url, {"income_category": "none"}, format="json")
    assert edit.status_code == 409
    assert errors(edit) == {"status": "not_editable"}
    application = Application.objects.get()
    assert application.income_category == "basic_livelihood"
    assert application.status == "submitted"


def test_submit_needs_consent_and_a_complete_profile(citizen, open_round):
    applicant = citizen.applicant
    applicant.consent_data_checks = False
    applicant.phone = ""
    applicant.save()
    created = create(citizen, open_round).json()
    response = citizen.post(f"/api/v1/applications/{created['id']}/submit/")
    assert response.status_code == 400
    assert errors(response) == {
        "profile.consent_data_checks": "consent_required",
        "profile.phone": "profile_incomplete",
    }
    assert Application.objects.get().status == "draft"


def test_submit_in_a_round_that_closed_meanwhile(citizen, open_round):
    created = create(citizen, open_round).json()
    Round.objects.filter(pk=open_round.pk).update(status=Round.Status.CLOSED)
    response = citizen.post(f"/api/v1/applications/{created['id']}/submit/")
    assert response.status_code == 400
    assert errors(response) == {"round": "round_not_open"}


def test_submit_refuses_a_body(citizen, open_round):
    created = create(citizen, open_round).json()
    response = citizen.post(
        f"/api/v1/applications/{created['id']}/submit/", {"force": True}, format="json"
    )
    assert response.status_code == 400
    assert errors(response) == {"force": "unknown_field"}


def test_withdraw_records_the_reason(citizen, open_round):
    created = create(citizen, open_round).json()
    url = f"/api/v1/applications/{created['id']}/withdraw/"
    response = citizen.post(url, {"reason": "found a job"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "withdrawn"
    assert AuditEvent.objects.get(action="application.withdrawn").reason == "found a job"
    again = citizen.post(url)
    assert again.status_code == 409
    assert errors(again) == {"status": "invalid_transition"}


def test_staff_cannot_use_citizen_endpoints(caseworker, open_round):
    response = caseworker.post(
        "/api/v1/applications/",
        {"round": open_round.pk, "income_category": "none", "training": TRAINING},
        format="json",
    )
    assert response.status_code == 403
    assert caseworker.get("/api/v1/applications/").status_code == 403


def test_anonymous_gets_401(anon):
    response = anon.get("/api/v1/applications/")
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "not_authenticated"
