"""Registration, token login and logout; throttles, lockouts and token lifetimes."""

import io
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from benefits.models import Applicant
from core.roles import Role
from tests.factories import PASSWORD, ApplicantFactory, UserFactory

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


# The client's address: REMOTE_ADDR, unless proxies of ours are configured.

TOKEN_URL = "/api/v1/auth/token/"


WRONG_PASSWORD = "not-the-password"


def login(client, username="hana", password=None, **meta):
    body = {"username": username, "password": password or WRONG_PASSWORD}
    return client.post(TOKEN_URL, body, **meta)


def codes(responses) -> list[str]:
    return [r.json()["errors"][0]["code"] if r.status_code >= 400 else "ok" for r in responses]


@pytest.fixture
def rate(monkeypatch):
    def set_rate(value: str):
        monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": value})

    return set_rate


def test_a_new_x_forwarded_for_on_each_try_does_not_escape_the_throttle(anon, rate):
    rate("5/min")
    responses = [
        login(anon, username=f"u{i}", HTTP_X_FORWARDED_FOR=f"198.51.100.{i % 250}")
        for i in range(200)
    ]
    assert codes(responses)[:5] == ["invalid_login"] * 5
    assert codes(responses)[5:] == ["throttled"] * 195
    assert responses[-1]["Retry-After"]


def test_behind_one_trusted_proxy_the_address_it_added_is_the_client(anon, rate, settings):
    rate("3/min")
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    # The client writes what it likes on the left; our proxy appends the address it saw.
    spoofed = [
        login(anon, username=f"u{i}", HTTP_X_FORWARDED_FOR=f"10.9.{i}.1, 203.0.113.7")
        for i in range(5)
    ]
    assert codes(spoofed) == ["invalid_login"] * 3 + ["throttled"] * 2
    # Another client behind the same proxy has its own allowance.
    other = login(anon, username="v", HTTP_X_FORWARDED_FOR="203.0.113.8")
    assert codes([other]) == ["invalid_login"]


def test_without_trusted_proxies_the_header_is_ignored(anon, rate):
    rate("2/min")
    first = [login(anon, username=f"u{i}", REMOTE_ADDR="192.0.2.1") for i in range(2)]
    # The same header from another socket address is another client.
    other = login(anon, username="w", REMOTE_ADDR="192.0.2.2", HTTP_X_FORWARDED_FOR="192.0.2.1")
    assert codes([*first, other]) == ["invalid_login"] * 3
    assert codes([login(anon, REMOTE_ADDR="192.0.2.1")]) == ["throttled"]


# Lockouts: N failed logins for one username from one address lock that pair.


@pytest.fixture
def hana(db):
    return UserFactory(username="hana", role=Role.CITIZEN)


@pytest.fixture
def limit(settings):
    settings.AXES_FAILURE_LIMIT = 3
    return 3


def test_repeated_failures_lock_the_username_from_that_address(anon, hana, limit):
    failures = [login(anon) for _ in range(limit)]
    assert [r.status_code for r in failures] == [400, 400, 429]
    locked = login(anon, password=PASSWORD)  # even the right password
    assert locked.status_code == 429
    assert locked.json() == {
        "type": "client_error",
        "errors": [
            {
                "code": "locked_out",
                "detail": "Too many failed sign-ins with this username from this address. "
                "Try again in 15 minutes.",
                "attr": None,
            }
        ],
    }
    assert locked["Retry-After"] == "900"
    assert not Token.objects.filter(user=hana).exists()
    # The same user from elsewhere, and another user from here, are not locked.
    assert login(anon, password=PASSWORD, REMOTE_ADDR="192.0.2.50").status_code == 200
    assert codes([login(anon, username="someone")]) == ["invalid_login"]


def test_a_username_in_other_capitals_counts_as_the_same(anon, hana, limit):
    for username in ("hana", "HANA", "Hana"):
        login(anon, username=username)
    assert login(anon, password=PASSWORD).status_code == 429


def test_a_successful_login_forgets_earlier_failures(anon, hana, limit):
    login(anon), login(anon)
    assert login(anon, password=PASSWORD).status_code == 200
    assert [login(anon).status_code for _ in range(2)] == [400, 400]
    assert login(anon, password=PASSWORD).status_code == 200


def test_the_lockout_ends_after_the_cool_off(anon, hana, limit, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=4)  # room for three slow logins
    [login(anon) for _ in range(limit)]
    assert login(anon, password=PASSWORD).status_code == 429
    time.sleep(5)  # the cool-off counts from the last refused try
    assert login(anon, password=PASSWORD).status_code == 200


def test_an_administrator_lifts_a_lockout(anon, hana, limit):
    [login(anon) for _ in range(limit)]
    out = io.StringIO()
    call_command("axes_reset_ip_username", "127.0.0.1", "hana", stdout=out)
    assert "removed" in out.getvalue()
    assert login(anon, password=PASSWORD).status_code == 200


@pytest.mark.parametrize(
    ("url", "staff"),
    [("/admin/login/", True), ("/staff/login/", True), ("/api-auth/login/", False)],
)
def test_the_admin_and_staff_sign_in_pages_lock_out_too(url, staff, limit, db):
    UserFactory(username="kim", role=Role.CASEWORKER, is_staff=staff)
    browser = Client()
    pages = [browser.post(url, {"username": "kim", "password": "wrong"}) for _ in range(limit)]
    assert [p.status_code for p in pages] == [200, 200, 429]
    locked = browser.post(url, {"username": "kim", "password": PASSWORD})
    assert locked.status_code == 429
    assert "text/html" in locked["Content-Type"]
    assert "_auth_user_id" not in browser.session
    page = Client().post(url, {"username": "kim", "password": PASSWORD}, REMOTE_ADDR="192.0.2.9")
    assert page.status_code == 302


# Tokens: rotated at each login, expiring, revoked by logout and by a new password.


def token_of(client, username, password=PASSWORD) -> str:
    response = login(client, username=username, password=password)
    assert response.status_code == 200, response.json()
    return response.json()["token"]


def authorized(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_each_login_issues_a_new_token_and_retires_the_last(anon, hana):
    first = token_of(anon, "hana")
    second = token_of(anon, "hana")
    assert first != second
    assert authorized(first).get("/api/v1/me/profile/").status_code == 401
    assert authorized(second).get("/api/v1/me/profile/").status_code == 200
    assert Token.objects.filter(user=hana).count() == 1


def test_a_login_records_the_time(anon, hana):
    token_of(anon, "hana")
    hana.refresh_from_db()
    assert hana.last_login is not None


def age(token: str, **delta) -> None:
    Token.objects.filter(key=token).update(created=timezone.now() - timedelta(**delta))


@pytest.mark.parametrize(
    ("role", "fresh", "stale"),
    [
        (Role.CITIZEN, {"days": 29, "hours": 23}, {"days": 30}),
        (Role.CASEWORKER, {"hours": 7, "minutes": 59}, {"hours": 8}),
        (Role.PROVIDER, {"hours": 7, "minutes": 59}, {"hours": 8}),
    ],
)
def test_tokens_expire_by_role(anon, role, fresh, stale):
    user = UserFactory(username="lee", role=role, is_staff=role == Role.CASEWORKER)
    token = token_of(anon, "lee")
    url = "/api/v1/me/profile/" if role == Role.CITIZEN else "/api/v1/rounds/"
    if role == Role.CITIZEN:
        ApplicantFactory(user=user)
    age(token, **fresh)
    assert authorized(token).get(url).status_code == 200
    age(token, **stale)
    response = authorized(token).get(url)
    if url == "/api/v1/rounds/":  # public: an expired token is still refused, not ignored
        assert response.status_code == 401
    assert response.status_code == 401
    assert response.json()["errors"][0] == {
        "code": "authentication_failed",
        "detail": "The token has expired: log in again.",
        "attr": None,
    }
    assert response["WWW-Authenticate"] == "Token"


def test_token_lifetimes_are_configurable(anon, hana, settings):
    settings.BAEUM_CITIZEN_TOKEN_DAYS = 1
    token = token_of(anon, "hana")
    age(token, hours=25)
    assert authorized(token).get("/api/v1/me/profile/").status_code == 401


def test_the_expiry_check_costs_no_query(anon, hana, django_assert_num_queries):
    client = authorized(token_of(anon, "hana"))
    client.get("/api/v1/rounds/")
    # The token with its user and roles in one query; the rounds in the other.
    with django_assert_num_queries(2):
        assert client.get("/api/v1/rounds/").status_code == 200


def test_logout_revokes_the_token(anon, hana):
    token = token_of(anon, "hana")
    client = authorized(token)
    response = client.post("/api/v1/auth/logout/")
    assert response.status_code == 204
    assert response.content == b""
    assert client.get("/api/v1/me/profile/").status_code == 401
    assert client.post("/api/v1/auth/logout/").status_code == 401
    assert not Token.objects.filter(user=hana).exists()


def test_logout_needs_a_login(anon):
    response = anon.post("/api/v1/auth/logout/")
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "not_authenticated"


def test_logout_in_the_browsable_api_ends_the_session(hana):
    client = APIClient()
    client.force_login(hana)
    assert client.get("/api/v1/applications/").status_code == 200
    assert client.post("/api/v1/auth/logout/").status_code == 204
    assert client.get("/api/v1/applications/").status_code == 401


def test_a_new_password_revokes_the_token(anon, hana):
    token = token_of(anon, "hana")
    hana.set_password("another-long-passphrase-7")
    hana.save()
    assert authorized(token).get("/api/v1/me/profile/").status_code == 401
    assert token_of(anon, "hana", "another-long-passphrase-7") != token


def test_a_password_set_in_the_admin_revokes_the_token(anon, hana):
    token = token_of(anon, "hana")
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", password="x"))
    response = admin.post(
        f"/admin/auth/user/{hana.pk}/password/",
        {"password1": "a-new-long-passphrase-3", "password2": "a-new-long-passphrase-3"},
    )
    assert response.status_code == 302
    assert authorized(token).get("/api/v1/me/profile/").status_code == 401


def test_saving_the_user_without_a_new_password_keeps_the_token(anon, hana):
    token = token_of(anon, "hana")
    hana.email = "new@example.org"
    hana.save()
    assert authorized(token).get("/api/v1/me/profile/").status_code == 200
