"""The caseworker's pages through the Django test client: who may enter, what they show,
and that every refusal is a message on the page, never a 500."""

import pytest
from django.test import Client

from benefits.models import Application
from core.models import AuditEvent
from core.roles import Role
from tests.factories import ApplicantFactory, ApplicationFactory, RoundFactory
from tests.staff.conftest import PDF, query_count, screened, under_review, with_document

pytestmark = pytest.mark.django_db

RULES = [
    {
        "rule": "seoul_resident",
        "outcome": "fail",
        "code": "not_seoul_resident",
        "evidence": {"source": "social_security", "district": "41110"},
    },
    {"rule": "income_status", "outcome": "pass", "code": "income_status_confirmed"},
]


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (Role.CASEWORKER, 200),
        (Role.AUDITOR, 200),
        (Role.FINANCE, 403),
        (Role.PROGRAM_MANAGER, 403),
        (Role.CITIZEN, 403),
        (Role.PROVIDER, 403),
    ],
)
def test_queue_and_application_page_by_role(web, role, expected):
    application = under_review()
    client = web(role)
    assert client.get("/staff/review/").status_code == expected
    assert client.get(f"/staff/review/{application.pk}/").status_code == expected


def test_anonymous_is_sent_to_the_login_page():
    response = Client().get("/staff/review/?flag=duplicate")
    assert response.status_code == 302
    assert response["Location"].startswith("/staff/login/?next=/staff/review/")


def test_queue_filters_by_flag_district_and_search(web):
    mapo = under_review(applicant=ApplicantFactory(district="11440", legal_name="박서연"))
    gangnam = under_review(applicant=ApplicantFactory(district="11680", legal_name="최도윤"))
    screened(gangnam, duplicate=True)
    client = web(Role.CASEWORKER)

    def ids(query: str) -> list[int]:
        response = client.get(f"/staff/review/{query}")
        assert response.status_code == 200
        return [row["application"].pk for row in response.context["rows"]]

    assert ids("") == [mapo.pk, gangnam.pk]
    assert ids("?flag=duplicate") == [gangnam.pk]
    assert ids("?district=11440") == [mapo.pk]
    assert ids("?q=서연") == [mapo.pk]
    assert ids(f"?q={gangnam.pk}") == [gangnam.pk]
    assert ids(f"?round={mapo.round_id}") == [mapo.pk]


def test_queue_searches_by_the_masked_rrn_prefix(web):
    applicant = ApplicantFactory()
    target = under_review(applicant=applicant)
    under_review(applicant=ApplicantFactory(rrn="8501012345678"))
    prefix = applicant.rrn[:6]
    client = web(Role.CASEWORKER)
    for query in (prefix, f"{prefix}-{applicant.rrn[6]}", f"{prefix}{applicant.rrn[6]}"):
        response = client.get("/staff/review/", {"rrn": query})
        assert [r["application"].pk for r in response.context["rows"]] == [target.pk], query


def test_queue_refuses_a_whole_rrn_and_drops_it_from_the_address(web):
    client = web(Role.CASEWORKER)
    response = client.get("/staff/review/", {"q": "900101-1234567"}, follow=True)
    assert response.redirect_chain[-1][0] == "/staff/review/"
    assert any("가려진 번호" in m for m in messages_of(response))
    bad = client.get("/staff/review/", {"rrn": "99x"})
    assert bad.status_code == 200
    assert "rrn" in bad.context["form"].errors


def test_queue_is_paginated_in_a_fixed_number_of_queries(web, django_assert_max_num_queries):
    round_ = RoundFactory()
    for _ in range(30):
        screened(under_review(round=round_), duplicate=True)
    client = web(Role.CASEWORKER)
    counts = [
        query_count(client, "/staff/review/", {"per_page": n, "flag": "duplicate"})
        for n in (25, 50)
    ]
    assert counts[0] == counts[1] <= 10  # the page's ids, then its rows (IdsFirst)
    with django_assert_max_num_queries(10):
        response = client.get("/staff/review/", {"per_page": 50})
    assert len(response.context["rows"]) == 30


def test_application_page_shows_screening_duplicates_documents_and_history(web):
    application = under_review()
    screened(application, outcome="ineligible", duplicate=True, rules=RULES)
    image = with_document(application)
    pdf = with_document(application, content=PDF, name="certificate.pdf", kind="income_proof")
    response = web(Role.CASEWORKER).get(f"/staff/review/{application.pk}/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "주소지가 서울시가 아닙니다." in page  # the rule's Korean message
    assert "not_seoul_resident" in page and "41110" in page
    assert "2026-03-01 – 2026-06-30" in page  # the Naeil-baeum match's period
    assert f"/staff/review/{application.pk}/documents/{image.pk}/" in page
    assert f'<iframe src="/staff/review/{application.pk}/documents/{pdf.pk}/"' in page
    assert application.applicant.rrn_masked in page
    assert application.applicant.rrn not in page
    assert application.applicant.account_number not in page
    assert "제출" in page  # the history, in Korean by default


def test_a_document_is_served_inline_and_each_read_is_audited(web):
    application = under_review()
    document = with_document(application)
    client = web(Role.AUDITOR)
    response = client.get(f"/staff/review/{application.pk}/documents/{document.pk}/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"].startswith("inline")
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert response["Cache-Control"] == "no-store"
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")
    assert AuditEvent.objects.filter(
        action="document.viewed", object_id=str(application.pk), actor=client.user
    ).exists()
    other = under_review()
    missing = client.get(f"/staff/review/{other.pk}/documents/{document.pk}/")
    assert missing.status_code == 404


def test_reject_needs_a_reason_then_changes_the_state_and_offers_the_next(web):
    first = under_review()
    second = under_review()
    client = web(Role.CASEWORKER)
    url = f"/staff/review/{first.pk}/reject/"
    response = client.post(url, {"reason": "  "}, follow=True)
    assert response.status_code == 200
    assert any("사유" in m for m in messages_of(response))
    first.refresh_from_db()
    assert first.status == Application.Status.UNDER_REVIEW

    response = client.post(
        url, {"reason": "직업훈련 과정이 아닙니다.", "queue": "flag=&status="}, follow=True
    )
    assert response.redirect_chain[-1][0] == f"/staff/review/{first.pk}/?flag=&status="
    first.refresh_from_db()
    assert first.status == Application.Status.REJECTED
    assert first.decision_reason == "직업훈련 과정이 아닙니다."
    assert response.context["next_id"] == second.pk
    assert any(f"#{first.pk}" in m for m in messages_of(response))


def test_a_second_click_is_refused_kindly(web):
    application = under_review()
    client = web(Role.CASEWORKER)
    client.post(f"/staff/review/{application.pk}/approve/", {})
    response = client.post(f"/staff/review/{application.pk}/approve/", {}, follow=True)
    assert response.status_code == 200
    assert any("이미" in m for m in messages_of(response))
    assert AuditEvent.objects.filter(action="application.approved").count() == 1


def test_request_documents_needs_a_reason(web):
    application = under_review()
    client = web(Role.CASEWORKER)
    client.post(f"/staff/review/{application.pk}/request-documents/", {})
    application.refresh_from_db()
    assert application.status == Application.Status.UNDER_REVIEW
    client.post(f"/staff/review/{application.pk}/request-documents/", {"reason": "소득 증빙"})
    application.refresh_from_db()
    assert application.status == Application.Status.NEEDS_DOCUMENTS


def test_auditor_reads_but_cannot_decide_or_reveal(web):
    application = under_review()
    client = web(Role.AUDITOR)
    page = client.get(f"/staff/review/{application.pk}/").content.decode()
    assert "/approve/" not in page and "/reveal-rrn/" not in page
    for action in ("approve", "reject", "request-documents", "reveal-rrn"):
        response = client.post(f"/staff/review/{application.pk}/{action}/", {"reason": "x"})
        assert response.status_code == 403
    application.refresh_from_db()
    assert application.status == Application.Status.UNDER_REVIEW


def test_reveal_shows_the_rrn_once_audited_and_never_in_a_url(web):
    application = under_review()
    client = web(Role.CASEWORKER)
    refused = client.post(f"/staff/review/{application.pk}/reveal-rrn/", {}, follow=True)
    assert application.applicant.rrn not in refused.content.decode()
    response = client.post(f"/staff/review/{application.pk}/reveal-rrn/", {"reason": "신분증 대조"})
    rrn = application.applicant.rrn
    assert response.status_code == 200
    assert f"{rrn[:6]}-{rrn[6:]}" in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    event = AuditEvent.objects.get(action="applicant.rrn_revealed")
    assert event.reason == "신분증 대조" and event.actor == client.user
    again = client.get(f"/staff/review/{application.pk}/").content.decode()
    assert f"{rrn[:6]}-{rrn[6:]}" not in again


def test_decisions_are_post_only_and_need_the_csrf_token(web):
    application = under_review()
    client = web(Role.CASEWORKER)
    assert client.get(f"/staff/review/{application.pk}/approve/").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(client.user)
    assert strict.post(f"/staff/review/{application.pk}/approve/", {}).status_code == 403
    application.refresh_from_db()
    assert application.status == Application.Status.UNDER_REVIEW


def test_a_draft_or_unknown_application_is_not_found(web):
    draft = ApplicationFactory()
    client = web(Role.CASEWORKER)
    assert client.get(f"/staff/review/{draft.pk}/").status_code == 404
    assert client.get("/staff/review/99999999999999999999999/").status_code == 404
    assert client.post(f"/staff/review/{draft.pk}/approve/").status_code == 404
