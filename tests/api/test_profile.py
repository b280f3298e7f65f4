"""The citizen's profile: validated on the way in, masked on the way out."""

import pytest

from benefits.models import Applicant
from core.crypto import account_fingerprint, rrn_hmac
from core.models import AuditEvent
from tests.factories import ApplicationFactory, UserFactory

pytestmark = pytest.mark.django_db

RRN = "850315-1234567"
PROFILE = {
    "legal_name": "이서연",
    "rrn": RRN,
    "phone": "01098765432",
    "email": "seoyeon@example.org",
    "district": "11440",
    "address": "서울특별시 마포구 월드컵북로 400",
    "bank_code": "004",
    "account_number": "123-4567-89012",
    "account_holder": "이서연",
    "consent_data_checks": True,
}


@pytest.fixture
def fresh(db):
    """A citizen who has just registered: an empty profile."""
    from tests.conftest import client_for

    user = UserFactory(role="citizen")
    Applicant.objects.create(user=user, email=user.email)
    client = client_for(user)
    client.user = user
    return client


def errors(response) -> dict:
    return {e["attr"]: e["code"] for e in response.json()["errors"]}


def test_new_profile_is_empty(fresh):
    response = fresh.get("/api/v1/me/profile/")
    assert response.status_code == 200
    body = response.json()
    assert body["rrn"] == "" and body["account_number"] == ""
    assert body["consent_data_checks"] is False


def test_put_stores_encrypted_and_reads_back_masked(fresh):
    response = fresh.put("/api/v1/me/profile/", PROFILE, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["rrn"] == "850315-1******"
    assert body["account_number"] == "****9012"
    assert body["district_name"] == "마포구"
    assert body["birth_date"] == "1985-03-15"
    assert body["phone"] == "010-9876-5432"
    assert "8503151234567" not in response.content.decode()

    applicant = Applicant.objects.get(user=fresh.user)
    assert applicant.rrn == "8503151234567"
    assert applicant.rrn_hmac == rrn_hmac("8503151234567")
    assert applicant.account_number == "123456789012"
    # Giving the first account is not a change of account (the pre-release audit's flag).
    assert applicant.account_changed_at is None
    assert applicant.consent_at is not None
    event = AuditEvent.objects.get(action="profile.updated")
    assert "rrn" in event.data["fields"] and "1234567" not in str(event.data)


def test_patch_changes_only_what_is_sent(fresh):
    fresh.put("/api/v1/me/profile/", PROFILE, format="json")
    response = fresh.patch("/api/v1/me/profile/", {"district": "11680"}, format="json")
    assert response.status_code == 200
    assert response.json()["district_name"] == "강남구"
    assert response.json()["rrn"] == "850315-1******"


def test_sending_back_the_masks_changes_nothing(fresh):
    read = fresh.put("/api/v1/me/profile/", PROFILE, format="json").json()
    body = {k: v for k, v in read.items() if k in PROFILE}
    body["address"] = "서울특별시 마포구 새 주소 1"
    response = fresh.put("/api/v1/me/profile/", body, format="json")
    assert response.status_code == 200, response.json()
    applicant = Applicant.objects.get(user=fresh.user)
    assert applicant.rrn == "8503151234567"
    assert applicant.account_number == "123456789012"
    assert applicant.address == "서울특별시 마포구 새 주소 1"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("rrn", "851315-1234567", "invalid_birth_date"),  # month 13
        ("rrn", "850332-1234567", "invalid_birth_date"),  # day 32
        ("rrn", "850230-1234567", "invalid_birth_date"),  # 30 February
        ("rrn", "850315-123456", "invalid_format"),  # too short
        ("rrn", "850315-12345678", "invalid_format"),  # too long
        ("rrn", "85O315-1234567", "invalid_format"),  # a letter O
        ("rrn", "850315-9234567", "invalid_gender_digit"),
        ("rrn", "850315-0234567", "invalid_gender_digit"),
        ("rrn", 8503151234567, "invalid"),  # a number, not a string
        ("district", "99999", "invalid_choice"),
        ("district", "26440", "invalid_choice"),  # a Busan code
        ("bank_code", "999", "invalid_choice"),
        ("account_number", "123456789", "invalid_account_number"),  # 9 digits
        ("account_number", "12345678901234567", "invalid_account_number"),  # 17 digits
        ("account_number", "1234-ABCD-5678", "invalid_account_number"),
        ("phone", "12345", "invalid"),
        ("email", "not-an-email", "invalid"),
        ("consent_data_checks", "maybe", "invalid"),
        ("legal_name", "", "blank"),
        ("district_name", "마포구", "read_only"),
        ("nickname", "sy", "unknown_field"),
    ],
)
def test_bad_profile_input_is_refused_and_changes_nothing(fresh, field, value, code):
    fresh.put("/api/v1/me/profile/", PROFILE, format="json")
    before = Applicant.objects.get(user=fresh.user)
    response = fresh.patch("/api/v1/me/profile/", {field: value}, format="json")
    assert response.status_code == 400, response.json()
    assert errors(response) == {field: code}
    detail = response.json()["errors"][0]["detail"]
    if field == "rrn":
        assert str(value) not in detail
    after = Applicant.objects.get(user=fresh.user)
    assert (after.rrn, after.district, after.account_number, after.updated_at) == (
        before.rrn,
        before.district,
        before.account_number,
        before.updated_at,
    )


def test_put_with_a_missing_field_names_it(fresh):
    body = dict(PROFILE)
    del body["address"]
    response = fresh.put("/api/v1/me/profile/", body, format="json")
    assert response.status_code == 400
    assert errors(response) == {"address": "required"}
    assert Applicant.objects.get(user=fresh.user).rrn == ""


def test_rrn_registered_to_another_account_is_refused(fresh, applicant):
    from core.rrn import mask_rrn

    response = fresh.put("/api/v1/me/profile/", {**PROFILE, "rrn": applicant.rrn}, format="json")
    assert response.status_code == 400
    assert errors(response) == {"rrn": "rrn_taken"}
    assert applicant.rrn not in response.content.decode()
    assert mask_rrn(applicant.rrn) not in response.content.decode()
    assert Applicant.objects.get(user=fresh.user).rrn == ""


def test_rrn_is_locked_once_an_application_was_submitted(citizen):
    from benefits import services

    application = ApplicationFactory(applicant=citizen.applicant)
    services.application_submit(application=application, actor=citizen.applicant.user)
    response = citizen.patch("/api/v1/me/profile/", {"rrn": "900101-2345678"}, format="json")
    assert response.status_code == 400
    assert errors(response) == {"rrn": "rrn_locked"}


def test_post_2020_rrn_with_a_wrong_check_digit_is_accepted(fresh):
    # RRNs issued since October 2020 end in random digits: no check digit to verify.
    response = fresh.patch("/api/v1/me/profile/", {"rrn": "2101013000000"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["birth_date"] == "2021-01-01"


def test_profile_is_for_citizens_only(caseworker, anon):
    assert caseworker.get("/api/v1/me/profile/").status_code == 403
    assert anon.get("/api/v1/me/profile/").status_code == 401


def test_replacing_the_bank_account_records_when(fresh):
    fresh.put("/api/v1/me/profile/", PROFILE, format="json")
    response = fresh.patch(
        "/api/v1/me/profile/", {"account_number": "110-222-333444"}, format="json"
    )
    assert response.status_code == 200
    applicant = Applicant.objects.get(user=fresh.user)
    assert applicant.account_changed_at is not None
    assert applicant.account_fingerprint == account_fingerprint(
        PROFILE["bank_code"], "110222333444"
    )
