"""Registration and token login."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.throttling import ScopedRateThrottle

from benefits.models import Applicant

pytestmark = pytest.mark.django_db
User = get_user_model()


def errors(response) -> dict:
    return {e["attr"]: e["code"] for e in response.json()["errors"]}


def register(anon, **overrides):
    body = {"username": "hana", "password": "a-long-passphrase-9", "email": "hana@example.org"}
    body.update(overrides)
    return anon.post("/api/v1/auth/register/", body, format="json")


def test_register_then_log_in_and_read_profile(anon):
    response = register(anon)
    assert response.status_code == 201
    assert response.json()["username"] == "hana"
    assert "password" not in response.json()
    user = User.objects.get(username="hana")
    assert list(user.groups.values_list("name", flat=True)) == ["citizen"]
    assert Applicant.objects.get(user=user).email == "hana@example.org"

    token = anon.post(
        "/api/v1/auth/token/",
        {"username": "hana", "password": "a-long-passphrase-9"},
        format="json",
    )
    assert token.status_code == 200
    anon.credentials(HTTP_AUTHORIZATION=f"Token {token.json()['token']}")
    assert anon.get("/api/v1/me/profile/").json()["email"] == "hana@example.org"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"password": "12345678"}, {"password": "password_too_weak"}),
        ({"email": "nope"}, {"email": "invalid"}),
        ({"username": "a b"}, {"username": "invalid"}),
        ({"username": None}, {"username": "null"}),
        ({"role": "caseworker"}, {"role": "unknown_field"}),
    ],
)
def test_bad_registration_is_refused(anon, overrides, expected):
    response = register(anon, **overrides)
    assert response.status_code == 400
    assert errors(response) == expected
    assert not User.objects.exists()


def test_username_taken_case_insensitively(anon):
    assert register(anon).status_code == 201
    response = register(anon, username="HANA")
    assert response.status_code == 400
    assert errors(response) == {"username": "unique"}
    assert User.objects.count() == 1


def test_wrong_password_gets_no_token(anon):
    register(anon)
    response = anon.post(
        "/api/v1/auth/token/", {"username": "hana", "password": "wrong"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalid_login"


def test_login_is_rate_limited(anon, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": "3/min"})
    codes = [
        anon.post("/api/v1/auth/token/", {"username": "x", "password": "y"}, format="json")
        for _ in range(4)
    ]
    assert [r.status_code for r in codes] == [400, 400, 400, 429]
    assert codes[-1].json()["errors"][0]["code"] == "throttled"


def test_database_refuses_a_username_differing_only_in_case():
    from django.db import IntegrityError, transaction

    User.objects.create_user("Hana", password="x")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user("hana", password="y")
