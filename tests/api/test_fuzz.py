"""The contract, fuzzed: every operation of the published schema, called by each role with
inputs generated from the schema (valid and invalid), answers as the schema says.

schemathesis runs all its checks on every response: no 5xx, a documented status code and
content type, a body matching the documented schema, invalid input refused and valid input
accepted. The calls reach real objects: before each role's run the access matrix's scene is
built, and the path ids are drawn from it as well as generated.
"""

import time

import pytest
import schemathesis
from django.core import signals
from django.core.cache import cache
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from api.error_codes import ERRORS
from config.wsgi import application
from tests.api.access_scene import build_scene

pytestmark = pytest.mark.django_db
# Reading the schema needs no database: it is generated from the code.
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application)

ROLES = {
    "anonymous": None,
    "citizen": "a",
    "caseworker": "cw",
    "program manager": "pm",
    "finance": "fin",
    "provider": "prv",
    "auditor": "aud",
}
# The scene's objects a path may name, by the path's start (besides generated ids).
SCENE_IDS = {
    "/api/v1/rounds/": ("round", "draft_round", "closed_round", "voucher_round"),
    "/api/v1/reports/rounds/": ("round", "voucher_round"),
    "/api/v1/applications/": ("draft", "rejected", "appealed"),
    "/api/v1/review/applications/": ("under_review", "appealed", "flagged", "rejected", "paid"),
    "/api/v1/registries/imports/": ("import",),
    "/api/v1/disbursements/": ("batch", "pending_batch", "approved_batch"),
    "/api/v1/vouchers/redemptions/": ("redemption",),
    "/api/v1/recoveries/": ("recovery", "waiver"),
}
OTHER_IDS = {"payment_pk": "payment", "document_id": "document", "match_id": "match"}

# Logging out revokes the role's token: last, or every call after it would be a 401.
OPERATIONS = sorted(
    (result.ok() for result in schema.get_all_operations()),
    key=lambda operation: operation.label == "POST /api/v1/auth/logout/",
)

FUZZ = settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    # Like Django's test client: calling the WSGI app must not close the test's connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _scene_paths(operation, scene) -> list[dict]:
    """Every way to name the scene's objects in this operation's path."""
    names = [parameter.name for parameter in operation.path_parameters]
    if not names:
        return [{}]
    if "id" not in names:
        return []
    keys = next((k for p, k in SCENE_IDS.items() if operation.path.startswith(p)), ())
    others = {name: scene.ids[OTHER_IDS[name]] for name in names if name in OTHER_IDS}
    return [{"id": scene.ids[key], **others} for key in keys]


def _strategy(operation, scene):
    generated = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
        GenerationMode.NEGATIVE
    )
    paths = [path for path in _scene_paths(operation, scene) if path]
    if not paths:
        return generated
    on_scene = st.sampled_from(paths).flatmap(
        lambda path: operation.as_strategy(GenerationMode.POSITIVE, path_parameters=path)
    )
    return on_scene | generated


def _refused_by_a_named_rule(case, response) -> bool:
    """Whether a 400 to a schema-valid request names only rules that the schema states by
    their error code alone (api.schema.ERRORS: a round no longer open, a password too easy
    to guess, a file that is not a PDF), or a referenced object that does not exist.

    No JSON Schema keyword can say those, so schemathesis's positive_data_acceptance takes
    such a 400 for valid data refused; any other 400 to valid data still fails the test
    (a bound the server enforces and the schema does not state, say)."""
    if response.status_code != 400:
        return False
    declared = ERRORS.get((case.method.upper(), case.operation.path), {}).get(400, {})
    errors = response.json().get("errors", [])
    return bool(errors) and all(
        error["code"] == "does_not_exist"
        or error["code"] in declared.get(error["attr"], ())
        or _empty_file_part(case, error)
        for error in errors
    )


def _empty_file_part(case, error) -> bool:
    """schemathesis sends an empty file as a multipart part without a Content-Type, which
    Django's multipart parser drops: the server then answers that no file was sent. An
    empty file is refused either way (a client's upload with a type gets `empty_file`)."""
    body = case.body if isinstance(case.body, dict) else {}
    return error["code"] == "required" and body.get(error["attr"]) in (b"", "")


def _call_and_validate(case, headers):
    response = case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])
    if not _refused_by_a_named_rule(case, response):
        case.validate_response(response, checks=[positive_data_acceptance], headers=headers)


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_answers_as_documented(role, quick):
    scene = build_scene()
    key = ROLES[role]
    headers = {}
    if key:
        headers = {"Authorization": scene.clients[key]._credentials["HTTP_AUTHORIZATION"]}
    mismatches = []
    started = time.monotonic()
    for operation in OPERATIONS:
        cache.clear()
        if operation.method.upper() == "GET":
            # Each of the scene's objects read as it is, without generated parameters.
            for path in _scene_paths(operation, scene):
                case = operation.Case(path_parameters=path, query={})
                try:
                    _call_and_validate(case, headers)
                except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001
                    mismatches.append(f"{operation.label} {path}: {exc}")

        @FUZZ
        @given(case=_strategy(operation, scene))
        def run(case):
            _call_and_validate(case, headers)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001
            mismatches.append(f"{operation.label}: {exc}")
    print(role, time.monotonic() - started, len(mismatches))
    assert not mismatches, "\n\n".join(["", *mismatches])
