"""Bodies that used to reach DRF's parser or a choice field raw: a 4xx naming the field,
never a 500 (a RecursionError, or an error message that cannot be written as UTF-8)."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework import parsers as drf_parsers
from rest_framework.views import APIView

from api import parsers
from benefits.models import Applicant, Application
from core.roles import Role
from payments.models import DisbursementBatch
from tests.api.test_applications import TRAINING
from tests.documents import PDF
from tests.factories import RoundFactory

pytestmark = pytest.mark.django_db

NESTED = "[" * 1000 + "]" * 1000
SURROGATE, NUL = '"\\ud800"', '"\\u0000"'


def post_raw(client, url, body: str, method="post"):
    client.raise_request_exception = False
    return getattr(client, method)(url, data=body, content_type="application/json")


def error(response) -> tuple[str, str]:
    first = response.json()["errors"][0]
    return first["attr"], first["code"]


@pytest.mark.parametrize("url", ["/api/v1/auth/token/", "/api/v1/auth/register/"])
@pytest.mark.parametrize("body", [NESTED, '{"username": ' + NESTED + "}", "[" * 1000])
def test_a_thousand_nested_arrays_are_refused_before_parsing(anon, url, body):
    assert len(body) <= 2048
    response = post_raw(anon, url, body)
    assert response.status_code == 400
    assert error(response) == (None, "parse_error")
    assert "nested deeper than 32 levels" in response.json()["errors"][0]["detail"]


def test_nesting_up_to_the_limit_reaches_the_view(anon, settings):
    settings.BAEUM_JSON_MAX_DEPTH = 3
    at_limit = post_raw(anon, "/api/v1/auth/token/", '{"username": [["x"]], "password": "p"}')
    assert error(at_limit) == ("username", "invalid")  # the serializer's own answer
    deeper = post_raw(anon, "/api/v1/auth/token/", '{"username": [[["x"]]], "password": "p"}')
    assert error(deeper) == (None, "parse_error")


def test_brackets_inside_strings_are_not_nesting(anon):
    body = '{"username": "' + "[{" * 70 + '\\"]", "password": "p"}'
    response = post_raw(anon, "/api/v1/auth/token/", body)
    assert error(response) == ("non_field_errors", "invalid_login")


def test_a_json_body_over_the_limit_is_413(anon, settings):
    settings.BAEUM_JSON_MAX_BYTES = 100
    body = '{"username": "' + "x" * 100 + '", "password": "p"}'
    response = post_raw(anon, "/api/v1/auth/token/", body)
    assert response.status_code == 413
    assert error(response) == (None, "request_too_large")


def test_json_in_another_charset_is_refused(anon):
    anon.raise_request_exception = False
    response = anon.post(
        "/api/v1/auth/token/",
        data='{"username": "x", "password": "p"}'.encode("utf-16"),
        content_type="application/json; charset=utf-16",
    )
    assert response.status_code == 400
    assert error(response) == (None, "parse_error")


# NUL and lone surrogates, in choice fields and everywhere else.


@pytest.fixture
def c(citizen):
    citizen.raise_request_exception = False
    return citizen


def application_body(**changes) -> str:
    import json

    body = {"round": 1, "income_category": "none", "training": TRAINING, **changes}
    return json.dumps(body)


@pytest.mark.parametrize(
    ("raw", "code"),
    [(SURROGATE, "surrogate_characters_not_allowed"), (NUL, "null_characters_not_allowed")],
)
def test_income_category_with_a_nul_or_a_lone_surrogate(c, open_round, raw, code):
    body = application_body(round=open_round.pk).replace('"none"', raw)
    response = post_raw(c, "/api/v1/applications/", body)
    assert response.status_code == 400
    assert error(response) == ("income_category", code)
    assert not Application.objects.exists()


@pytest.mark.parametrize(
    ("raw", "code"),
    [(SURROGATE, "surrogate_characters_not_allowed"), (NUL, "null_characters_not_allowed")],
)
def test_a_nested_field_is_named_by_its_path(c, open_round, raw, code):
    training = {**TRAINING, "course_name": "PLACEHOLDER"}
    body = application_body(round=open_round.pk, training=training).replace('"PLACEHOLDER"', raw)
    response = post_raw(c, "/api/v1/applications/", body)
    assert error(response) == ("training.course_name", code)


def test_a_field_name_with_a_lone_surrogate(c):
    response = post_raw(c, "/api/v1/me/profile/", '{"legal_\\udc00name": "x"}', "patch")
    assert response.status_code == 400
    assert error(response) == ("non_field_errors", "surrogate_characters_not_allowed")


def test_an_item_of_a_list_is_named_by_its_index(anon):
    response = post_raw(anon, "/api/v1/auth/token/", '{"username": ["a", "\\u0000"]}')
    assert error(response) == ("username.1", "null_characters_not_allowed")


def test_redemption_purpose_with_a_lone_surrogate(staff):
    provider = staff(Role.PROVIDER)
    body = '{"voucher_code": "X", "amount": 1, "course": "c", "purpose": ' + SURROGATE + "}"
    response = post_raw(provider, "/api/v1/vouchers/redemptions/", body)
    assert response.status_code == 400
    assert error(response) == ("purpose", "surrogate_characters_not_allowed")


def test_batch_kind_with_a_lone_surrogate(staff, open_round):
    finance = staff(Role.FINANCE)
    body = '{"round": ' + str(open_round.pk) + ', "kind": ' + SURROGATE + "}"
    response = post_raw(finance, "/api/v1/disbursements/", body)
    assert response.status_code == 400
    assert error(response) == ("kind", "surrogate_characters_not_allowed")
    assert not DisbursementBatch.objects.exists()


def test_a_nul_in_a_form_field(c):
    draft = Application.objects.create(
        applicant=c.applicant, round=RoundFactory(), income_category="none"
    )
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = c.post(
        f"/api/v1/applications/{draft.pk}/documents/",
        {"kind": "other\x00", "file": SimpleUploadedFile("a.pdf", PDF)},
        format="multipart",
    )
    assert response.status_code == 400
    assert error(response) == ("kind", "null_characters_not_allowed")
    assert not draft.documents.exists()


def test_the_profile_is_untouched_by_a_refused_body(c):
    before = Applicant.objects.get(pk=c.applicant.pk).legal_name
    assert post_raw(c, "/api/v1/me/profile/", "[" * 1000, "patch").status_code == 400
    assert Applicant.objects.get(pk=c.applicant.pk).legal_name == before


# Every API view parses through these parsers, whatever it declares.

CHECKED = (parsers.JSONParser, parsers.MultiPartParser, parsers.FormParser)


def _views(resolver=None, prefix=""):
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from _views(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            view = getattr(entry.callback, "cls", None)
            if view is not None and issubclass(view, APIView):
                yield prefix + str(entry.pattern), view


def test_every_api_view_uses_the_checked_parsers():
    views = list(_views())
    assert len(views) > 30
    for route, view in views:
        for parser in view.parser_classes:
            assert issubclass(parser, CHECKED), (route, parser)
            assert parser not in (
                drf_parsers.JSONParser,
                drf_parsers.MultiPartParser,
                drf_parsers.FormParser,
            )
