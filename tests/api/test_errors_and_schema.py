"""One JSON error format under /api/, and a valid OpenAPI schema."""

import json
import re

import pytest
from django.core.management import call_command
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import path as route
from drf_spectacular.generators import SchemaGenerator

from api.errors import csrf_failure, handler500
from api.idempotency import KEY_PATTERN
from benefits.models import Application
from tests.factories import ApplicationFactory, RoundFactory

pytestmark = pytest.mark.django_db


def test_unknown_api_path_is_a_json_404(anon):
    response = anon.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "type": "client_error",
        "errors": [{"code": "not_found", "detail": "Not found.", "attr": None}],
    }


def test_unknown_api_path_is_json_even_in_debug(anon, settings):
    settings.DEBUG = True
    response = anon.get("/api/v2/programs/")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


def test_wrong_method_is_a_json_405(citizen):
    response = citizen.delete("/api/v1/applications/")
    assert response.status_code == 405
    assert response.json()["errors"][0]["code"] == "method_not_allowed"


def test_server_error_handler_answers_json_under_api():
    request = RequestFactory().get("/api/v1/programs/")
    response = handler500(request)
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert b"Server Error" in response.content


def test_unhandled_exception_in_a_view_is_a_json_500(citizen, monkeypatch, settings):
    from benefits import selectors

    def broken(**kwargs):
        raise RuntimeError("boom with secret 900101-2345678")

    monkeypatch.setattr(selectors, "application_list_for_citizen", broken)
    citizen.raise_request_exception = False
    response = citizen.get("/api/v1/applications/")
    assert response.status_code == 500
    assert response.json()["type"] == "server_error"
    assert "900101" not in response.content.decode()


def test_schema_and_docs_are_served(anon):
    schema = anon.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in [
        "/api/v1/auth/token/",
        "/api/v1/auth/register/",
        "/api/v1/programs/",
        "/api/v1/rounds/",
        "/api/v1/rounds/{id}/",
        "/api/v1/me/profile/",
        "/api/v1/applications/",
        "/api/v1/applications/{id}/",
        "/api/v1/applications/{id}/documents/",
        "/api/v1/applications/{id}/submit/",
        "/api/v1/applications/{id}/withdraw/",
    ]:
        assert path in paths, path
    assert anon.get("/api/v1/docs/").status_code == 200


def test_schema_generates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yml"))
    assert (tmp_path / "s.yml").stat().st_size > 1000


# JSON everywhere under /api/, whatever the method, CSRF included.


def test_an_unknown_api_path_is_a_json_404_for_a_post_too(db):
    # Django's CSRF check would refuse an anonymous POST with an HTML page before the 404.
    response = Client(enforce_csrf_checks=True).post("/api/v1/no-such-thing/", {"a": 1})
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


def test_a_refused_csrf_check_is_json_under_api_and_a_page_elsewhere():
    under_api = csrf_failure(RequestFactory().post("/api/v1/applications/"), "no token")
    assert under_api.status_code == 403
    assert under_api["Content-Type"] == "application/json"
    assert json.loads(under_api.content) == {
        "type": "client_error",
        "errors": [{"code": "permission_denied", "detail": "CSRF Failed: no token", "attr": None}],
    }
    elsewhere = csrf_failure(RequestFactory().post("/admin/login/"), "no token")
    assert elsewhere.status_code == 403
    assert elsewhere["Content-Type"].startswith("text/html")


def _a_form_view(request):
    return HttpResponse("posted")


# A view that Django's CSRF check guards, under /api/ (every view of Baeum's there is exempt).
urlpatterns = [route("api/v1/form/", _a_form_view)]


@pytest.mark.urls(__name__)
def test_a_csrf_failure_under_api_is_answered_in_json(db):
    response = Client(enforce_csrf_checks=True).post("/api/v1/form/", {"a": 1})
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "permission_denied"


def test_the_admin_login_without_csrf_token_still_gets_djangos_page(db):
    response = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "x"})
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


# Bounds the server enforces are the schema's.


@pytest.mark.parametrize(
    ("page_size", "code"),
    [
        ("0", "min_value"),
        ("201", "max_value"),
        ("abc", "invalid"),
        ("", "invalid"),
        ("-1", "invalid"),
    ],
)
def test_a_page_size_outside_1_to_200_is_refused(citizen, page_size, code):
    response = citizen.get("/api/v1/applications/", {"page_size": page_size})
    assert response.status_code == 400
    assert [(e["attr"], e["code"]) for e in response.json()["errors"]] == [("page_size", code)]


def test_a_page_size_within_bounds_sizes_the_page(citizen, open_round):
    for _ in range(3):
        ApplicationFactory(round=RoundFactory())
    response = citizen.get("/api/v1/rounds/", {"page_size": "1"})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1
    assert citizen.get("/api/v1/rounds/", {"page_size": "200"}).status_code == 200


def _parameter(schema, path, method, name):
    parameters = schema["paths"][path][method]["parameters"]
    return next(p for p in parameters if p["name"] == name)["schema"]


def test_the_schema_states_the_bounds_of_pages_filters_and_keys():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert _parameter(schema, "/api/v1/applications/", "get", "page_size") == {
        "type": "integer",
        "minimum": 1,
        "maximum": 200,
    }
    assert _parameter(schema, "/api/v1/applications/", "get", "page")["minimum"] == 1
    assert _parameter(schema, "/api/v1/rounds/", "get", "year")["minimum"] == 2000
    assert _parameter(schema, "/api/v1/rounds/", "get", "year")["maximum"] == 2100
    assert _parameter(schema, "/api/v1/applications/", "get", "round")["minimum"] == 1
    key = _parameter(schema, "/api/v1/applications/", "post", "Idempotency-Key")
    assert key["pattern"] == KEY_PATTERN and key["maxLength"] == 255


def test_the_idempotency_key_pattern_is_the_one_the_server_applies(citizen, open_round):
    assert re.fullmatch(KEY_PATTERN, "a-key_1")
    for key in ("with space", "x" * 256, "é"):
        assert not re.fullmatch(KEY_PATTERN, key)
        response = citizen.post(
            "/api/v1/applications/", {"round": open_round.pk}, HTTP_IDEMPOTENCY_KEY=key
        )
        assert response.status_code == 400, key
        assert response.json()["errors"][0]["code"] == "invalid_idempotency_key"


def test_json_endpoints_take_json_alone(citizen, open_round):
    response = citizen.post(
        "/api/v1/applications/",
        {"round": open_round.pk, "income_category": "none"},
        format="multipart",
    )
    assert response.status_code == 415
    assert not Application.objects.exists()


# Every error the server answers is in the schema: status, body and code.


def _error_codes(schema, path, method, status):
    """The (attr, code) pairs the schema allows in this response, following references."""
    components = schema["components"]["schemas"]
    found = set()

    def walk(node, attr=None):
        if isinstance(node, dict):
            if "$ref" in node:
                walk(components[node["$ref"].rsplit("/", 1)[1]], attr)
                return
            properties = node.get("properties", {})
            if "code" in properties and "attr" in properties:
                attrs = properties["attr"].get("enum", [None])
                code = properties["code"]
                if "$ref" in code:
                    code = components[code["$ref"].rsplit("/", 1)[1]]
                found.update((a, c) for a in attrs for c in code.get("enum", []))
            for value in node.values():
                walk(value, attr)
        elif isinstance(node, list):
            for value in node:
                walk(value, attr)

    walk(schema["paths"][path][method]["responses"][str(status)])
    return found


def test_the_schema_declares_conflicts_too_large_bodies_and_reused_keys():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    appeal = "/api/v1/applications/{id}/appeal/"
    assert ("status", "rejection_final") in _error_codes(schema, appeal, "post", 409)
    assert ("Idempotency-Key", "idempotency_request_in_progress") in _error_codes(
        schema, appeal, "post", 409
    )
    assert ("Idempotency-Key", "idempotency_key_reused") in _error_codes(
        schema, appeal, "post", 422
    )
    assert (None, "request_too_large") in _error_codes(schema, appeal, "post", 413)
    assert ("reason", "appeal_window_closed") in _error_codes(schema, appeal, "post", 400)
    approve = "/api/v1/disbursements/{id}/approve/"
    assert ("approved_by", "maker_checker") in _error_codes(schema, approve, "post", 403)
    assert ("non_field_errors", "invalid_login") in _error_codes(
        schema, "/api/v1/auth/token/", "post", 400
    )
