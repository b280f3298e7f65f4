"""Inputs that used to reach the database or the parser raw get a 4xx, never a 5xx."""

import pytest

from benefits.models import Applicant, Application
from tests.api.test_applications import TRAINING

pytestmark = pytest.mark.django_db


@pytest.fixture
def c(citizen):
    citizen.raise_request_exception = False
    return citizen


def create(client, **body):
    return client.post("/api/v1/applications/", body, format="json")


@pytest.mark.parametrize("round_id", [10**30, 2**63])
def test_round_id_beyond_64_bits(c, round_id):
    response = create(c, round=round_id, income_category="none", training=TRAINING)
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "round"


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/applications/99999999999999999999999/",
        "/api/v1/rounds/99999999999999999999999/",
        "/api/v1/applications/99999999999999999999999/submit/",
    ],
)
def test_huge_id_in_the_path_is_not_found(c, url):
    response = c.get(url) if "submit" not in url else c.post(url)
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("url", "attr"),
    [
        ("/api/v1/applications/?round=99999999999999999999999", "round"),
        ("/api/v1/rounds/?year=99999999999999999", "year"),
    ],
)
def test_huge_numbers_in_filters(c, url, attr):
    response = c.get(url)
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == attr


def test_huge_program_id_filter_matches_nothing(c):
    response = c.get("/api/v1/rounds/?program=99999999999999999999")
    assert response.status_code == 200 and response.json()["count"] == 0


def test_thirteen_megabyte_json_body_is_413(c):
    body = '{"a": "' + "x" * (13 * 1024 * 1024) + '"}'
    response = c.post("/api/v1/applications/", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["errors"][0]["code"] == "request_too_large"


@pytest.mark.parametrize("raw", ['"a\\u0000b"', '"a\\ud800b"'])
def test_nul_and_lone_surrogates_are_refused(c, raw):
    before = Applicant.objects.get(pk=c.applicant.pk).legal_name
    response = c.patch(
        "/api/v1/me/profile/", data='{"legal_name": ' + raw + "}", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "legal_name"
    assert Applicant.objects.get(pk=c.applicant.pk).legal_name == before


def test_dates_far_from_now_are_refused(c, open_round):
    response = create(
        c,
        round=open_round.pk,
        income_category="none",
        training={**TRAINING, "starts_on": "0001-01-01"},
    )
    assert response.status_code == 400
    assert {e["attr"]: e["code"] for e in response.json()["errors"]} == {
        "training.starts_on": "out_of_range"
    }
    assert not Application.objects.exists()


def test_huge_weekly_hours(c, open_round):
    response = create(
        c,
        round=open_round.pk,
        income_category="none",
        training={**TRAINING, "weekly_hours": 10**20},
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b"\xff\xfe{", "application/json", 400),
        ("x=1", "text/plain", 415),
    ],
)
def test_undecodable_or_unsupported_bodies(c, data, content_type, status):
    response = c.post("/api/v1/applications/", data=data, content_type=content_type)
    assert response.status_code == status


def test_page_that_is_not_a_number(c):
    assert c.get("/api/v1/applications/?page=abc").status_code == 404
