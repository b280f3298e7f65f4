"""One JSON error format under /api/, and a valid OpenAPI schema."""

import pytest
from django.core.management import call_command
from django.test import RequestFactory

from api.errors import handler500

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
