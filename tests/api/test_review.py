"""The caseworker's queue, detail and decisions."""

import pytest

from benefits import services
from benefits.models import Application, Notification
from core.models import AuditEvent
from eligibility.models import ScreeningRun
from tests.factories import ApplicantFactory, ApplicationFactory, screened_by_task

pytestmark = pytest.mark.django_db


def under_review(**kwargs) -> Application:
    application = ApplicationFactory(**kwargs)
    services.application_submit(application=application, actor=application.applicant.user)
    return screened_by_task(application)


def errors(response) -> dict:
    return {e["attr"]: e["code"] for e in response.json()["errors"]}


def test_queue_lists_submitted_work_oldest_first(caseworker):
    first = under_review()
    second = under_review()
    ApplicationFactory()  # a draft is nobody's work yet
    response = caseworker.get("/api/v1/review/applications/")
    assert response.status_code == 200
    assert [a["id"] for a in response.json()["results"]] == [first.pk, second.pk]


def test_queue_filters(caseworker):
    mapo = under_review(applicant=ApplicantFactory(district="11440"))
    gangnam = under_review(applicant=ApplicantFactory(district="11680"))
    ScreeningRun.objects.filter(application=gangnam).update(is_current=False)
    ScreeningRun.objects.create(
        application=gangnam,
        trigger_key="t",
        ruleset_version="v",
        outcome="needs_review",
        duplicate_found=True,
    )

    def ids(query):
        response = caseworker.get(f"/api/v1/review/applications/{query}")
        assert response.status_code == 200, response.json()
        return [a["id"] for a in response.json()["results"]]

    assert ids("?district=11440") == [mapo.pk]
    assert ids("?flag=duplicate") == [gangnam.pk]
    assert ids("?flag=needs_review") == [gangnam.pk]
    assert ids(f"?round={mapo.round_id}") == [mapo.pk]
    assert ids("?status=under_review") == [mapo.pk, gangnam.pk]
    assert caseworker.get("/api/v1/review/applications/?flag=bogus").status_code == 400
    assert caseworker.get("/api/v1/review/applications/?district=99999").status_code == 400


def test_queue_query_count_does_not_grow(caseworker, django_assert_max_num_queries):
    for _ in range(6):
        under_review()
    with django_assert_max_num_queries(6):
        response = caseworker.get("/api/v1/review/applications/")
    assert response.json()["count"] == 6


def test_detail_shows_screening_documents_and_history_masked(caseworker):
    application = under_review()
    ScreeningRun.objects.filter(application=application).update(is_current=False)
    ScreeningRun.objects.create(
        application=application,
        trigger_key="t",
        ruleset_version="scholarship-2026.1",
        outcome="ineligible",
        rules=[
            {
                "rule": "resident",
                "outcome": "fail",
                "code": "not_seoul_resident",
                "message": "Not a Seoul resident",
                "message_ko": "서울 거주자가 아닙니다",
            }
        ],
        duplicates=[{"registry": "naeilbaeum", "action": "review", "detail": "card overlaps"}],
    )
    body = caseworker.get(f"/api/v1/review/applications/{application.pk}/").json()
    assert body["screening"]["outcome"] == "ineligible"
    assert body["screening"]["rules"][0]["code"] == "not_seoul_resident"
    # A run stored with its own words (as runs were before messages were rendered on read)
    # shows those words.
    assert body["screening"]["rules"][0]["message"] == "Not a Seoul resident"
    assert body["screening"]["rules"][0]["message_ko"] == "서울 거주자가 아닙니다"
    assert body["screening"]["duplicates"][0]["registry"] == "naeilbaeum"
    assert body["screening"]["duplicates"][0]["detail"] == "card overlaps"
    assert body["flags"] == ["ineligible"]
    moves = [h["to_state"] for h in body["history"] if h["to_state"]]
    assert moves == ["submitted", "screening", "under_review"]
    assert body["applicant"]["rrn"].endswith("******")
    assert application.applicant.rrn not in str(body)


def test_detail_renders_the_messages_of_a_stored_run_from_its_codes(caseworker):
    application = under_review()
    ScreeningRun.objects.filter(application=application).update(is_current=False)
    ScreeningRun.objects.create(
        application=application,
        trigger_key="t",
        ruleset_version="scholarship-2026.1",
        outcome="needs_review",
        rules=[
            {"rule": "seoul_resident", "outcome": "pass", "code": "seoul_resident", "evidence": {}},
            {
                "rule": "shared_account",
                "outcome": "review",
                "code": "shared_account",
                "evidence": {"applicants": [7]},
            },
        ],
        duplicates=[
            {"registry": "shared_account", "action": "review", "evidence": {"applicants": [7]}},
            {"registry": "naeilbaeum", "action": "allow", "evidence": {"policy": "allow"}},
        ],
        duplicate_found=True,
    )
    screening = caseworker.get(f"/api/v1/review/applications/{application.pk}/").json()["screening"]
    assert [(r["code"], r["message"], r["message_ko"]) for r in screening["rules"]] == [
        ("seoul_resident", "Seoul resident.", "서울시 거주자입니다."),
        (
            "shared_account",
            "The bank account is shared with other applicants.",
            "다른 신청인과 같은 계좌를 사용합니다.",
        ),
    ]
    assert screening["rules"][1]["evidence"] == {"applicants": [7]}
    shown = [{k: d[k] for k in ("registry", "action", "detail")} for d in screening["duplicates"]]
    # Each record a match found has an id to resolve it by.
    assert [r["record"] for r in screening["duplicates"][0]["records"]] == [{"applicant": 7}]
    assert screening["duplicates"][0]["records"][0]["id"].startswith("shared_account.")
    assert shown == [
        {
            "registry": "shared_account",
            "action": "review",
            "detail": "The bank account is shared with other applicants.",
        },
        {
            "registry": "naeilbaeum",
            "action": "allow",
            "detail": "Holds a Naeil-baeum card for an overlapping training.",
        },
    ]


def test_approve(caseworker):
    application = under_review()
    response = caseworker.post(f"/api/v1/review/applications/{application.pk}/approve/")
    assert response.status_code == 200
    assert response.json()["status"] == "approved"
    event = AuditEvent.objects.get(action="application.approved")
    assert event.actor == caseworker.user
    assert Notification.objects.filter(application=application, kind="approved").count() == 1


def test_reject_needs_a_reason_and_changes_nothing_without(caseworker):
    application = under_review()
    url = f"/api/v1/review/applications/{application.pk}/reject/"
    refused = caseworker.post(url, {}, format="json")
    assert refused.status_code == 400
    assert errors(refused) == {"reason": "required"}
    application.refresh_from_db()
    assert application.status == "under_review"
    done = caseworker.post(url, {"reason": "과정이 직업훈련이 아닙니다"}, format="json")
    assert (
        done.status_code == 200 and done.json()["decision_reason"] == "과정이 직업훈련이 아닙니다"
    )


def test_request_documents_then_citizen_resubmits(caseworker, citizen):
    application = under_review(applicant=citizen.applicant)
    response = caseworker.post(
        f"/api/v1/review/applications/{application.pk}/request-documents/",
        {"reason": "재학 증명서를 올려 주세요"},
        format="json",
    )
    assert response.json()["status"] == "needs_documents"
    edit = citizen.patch(
        f"/api/v1/applications/{application.pk}/", {"income_category": "near_poor"}, format="json"
    )
    assert edit.status_code == 200
    again = citizen.post(f"/api/v1/applications/{application.pk}/submit/")
    assert again.status_code == 200


def test_approving_from_a_wrong_state_is_409(caseworker):
    application = ApplicationFactory()
    services.application_submit(application=application, actor=application.applicant.user)
    response = caseworker.post(f"/api/v1/review/applications/{application.pk}/approve/")
    assert response.status_code == 409
    assert errors(response) == {"status": "invalid_transition"}
    application.refresh_from_db()
    assert application.status == "submitted"


@pytest.mark.parametrize("role", ["finance", "program_manager", "auditor"])
def test_only_caseworkers_decide(staff, role):
    application = under_review()
    client = staff(role)
    response = client.post(f"/api/v1/review/applications/{application.pk}/approve/")
    assert response.status_code == 403
    application.refresh_from_db()
    assert application.status == "under_review"


def test_auditor_reads_the_queue(staff):
    under_review()
    assert staff("auditor").get("/api/v1/review/applications/").status_code == 200


def test_citizen_cannot_use_the_review_api(citizen):
    application = under_review(applicant=citizen.applicant)
    assert citizen.get("/api/v1/review/applications/").status_code == 403
    assert citizen.get(f"/api/v1/review/applications/{application.pk}/").status_code == 403
    response = citizen.post(f"/api/v1/review/applications/{application.pk}/approve/")
    assert response.status_code == 403
    application.refresh_from_db()
    assert application.status == "under_review"


def test_revealing_an_rrn_needs_a_reason_and_is_audited(caseworker):
    application = under_review()
    url = f"/api/v1/review/applications/{application.pk}/reveal-rrn/"
    refused = caseworker.post(url, {}, format="json")
    assert refused.status_code == 400
    assert errors(refused) == {"reason": "required"}
    assert not AuditEvent.objects.filter(action="applicant.rrn_revealed").exists()

    response = caseworker.post(url, {"reason": "신분증 대조"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"rrn": application.applicant.rrn}
    assert response["Cache-Control"] == "no-store"
    event = AuditEvent.objects.get(action="applicant.rrn_revealed")
    assert (event.actor, event.reason) == (caseworker.user, "신분증 대조")
    assert application.applicant.rrn not in str(event.data)


@pytest.mark.parametrize("role", ["auditor", "finance", "program_manager"])
def test_other_staff_cannot_reveal_an_rrn(staff, role):
    application = under_review()
    response = staff(role).post(
        f"/api/v1/review/applications/{application.pk}/reveal-rrn/", {"reason": "x"}, format="json"
    )
    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="applicant.rrn_revealed").exists()
