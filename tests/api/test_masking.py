"""The raw RRN and account number reach no response, log line, SQL parameter or admin page."""

import logging

import pytest
from django.db import connection

from benefits import services
from benefits.models import Applicant
from tests.factories import ApplicationFactory, UserFactory

pytestmark = pytest.mark.django_db

RAW_RRN = "9001012345678"
RAW_ACCOUNT = "110234567890"


def _raw_forms():
    return [RAW_RRN, "900101-2345678", "2345678", RAW_ACCOUNT, "110-234-567890", "234567890"]


@pytest.fixture
def filled(citizen):
    response = citizen.put(
        "/api/v1/me/profile/",
        {
            "legal_name": "박지우",
            "rrn": "900101-2345678",
            "phone": "010-1111-2222",
            "email": "jiwoo@example.org",
            "district": "11110",
            "address": "서울특별시 종로구 세종대로 1",
            "bank_code": "088",
            "account_number": "110-234-567890",
            "account_holder": "박지우",
            "consent_data_checks": True,
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    return response


def test_raw_values_appear_in_no_response_log_or_sql(citizen, open_round, caplog, settings):
    settings.LOGGING_CONFIG = None
    caplog.set_level(logging.DEBUG)
    connection.force_debug_cursor = True
    try:
        responses = [
            citizen.put(
                "/api/v1/me/profile/",
                {
                    "legal_name": "박지우",
                    "rrn": "900101-2345678",
                    "phone": "010-1111-2222",
                    "email": "jiwoo@example.org",
                    "district": "11110",
                    "address": "서울특별시 종로구 세종대로 1",
                    "bank_code": "088",
                    "account_number": "110-234-567890",
                    "account_holder": "박지우",
                    "consent_data_checks": True,
                },
                format="json",
            ),
            citizen.get("/api/v1/me/profile/"),
            citizen.patch("/api/v1/me/profile/", {"rrn": "900101-2345678"}, format="json"),
            citizen.patch("/api/v1/me/profile/", {"rrn": "900101-234567X"}, format="json"),
        ]
        application = ApplicationFactory(applicant=citizen.applicant, round=open_round)
        responses.append(citizen.post(f"/api/v1/applications/{application.pk}/submit/"))
        responses.append(citizen.get(f"/api/v1/applications/{application.pk}/"))
        queries = list(connection.queries)
    finally:
        connection.force_debug_cursor = False

    assert responses[0].json()["rrn"] == "900101-2******"
    assert responses[0].json()["account_number"] == "****7890"
    everything = "\n".join(r.content.decode() for r in responses)
    everything += "\n".join(rec.getMessage() for rec in caplog.records)
    everything += "\n".join(q["sql"] for q in queries)
    assert queries, "SQL was captured"
    for raw in _raw_forms():
        assert raw not in everything


def test_database_holds_only_ciphertext(filled, citizen):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rrn, account_number FROM benefits_applicant WHERE id = %s",
            [citizen.applicant.pk],
        )
        rrn, account = cursor.fetchone()
    assert rrn.startswith("v1:") and account.startswith("v1:")
    for raw in _raw_forms():
        assert raw not in rrn + account
    applicant = Applicant.objects.get(pk=citizen.applicant.pk)
    assert applicant.rrn == RAW_RRN


def test_admin_pages_show_masks_only(filled, citizen, client):
    admin = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    pk = citizen.applicant.pk
    pages = [
        client.get("/admin/benefits/applicant/"),
        client.get(f"/admin/benefits/applicant/{pk}/change/"),
        client.get("/admin/core/auditevent/"),
    ]
    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        for raw in _raw_forms():
            assert raw not in html
    assert "900101-2******" in pages[1].content.decode()
    assert "****7890" in pages[1].content.decode()


def test_errors_never_echo_the_rrn(citizen):
    for bad in ["900199-2345678", "900101-9345678", "9001012345"]:
        response = citizen.patch("/api/v1/me/profile/", {"rrn": bad}, format="json")
        assert response.status_code == 400
        assert bad not in response.content.decode()
        assert bad.replace("-", "") not in response.content.decode()


def test_duplicate_rrn_error_names_no_other_account(filled, other_citizen):
    response = other_citizen.patch("/api/v1/me/profile/", {"rrn": "900101-2345678"}, format="json")
    assert response.status_code == 400
    body = response.content.decode()
    assert "박지우" not in body and "900101" not in body


def test_submit_service_keeps_personal_data_out_of_the_audit(filled, citizen, open_round):
    from core.models import AuditEvent

    application = ApplicationFactory(applicant=citizen.applicant, round=open_round)
    services.application_submit(application=application, actor=citizen.applicant.user)
    dump = "\n".join(f"{e.action}{e.reason}{e.data}" for e in AuditEvent.objects.all())
    for raw in _raw_forms():
        assert raw not in dump
