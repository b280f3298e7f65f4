"""Who may call what: every API endpoint answered for every role, exactly as the table says.

The table below is the API's access policy. Each row is one endpoint (method and path) and
the status each role gets:

    anon   no credentials                         cw    caseworker
    a      citizen A, on A's own objects          pm    program manager
    b      citizen B, on A's objects              fin   finance, who prepared the batches
    prv    a voucher provider                     chk   another finance user (the checker)
    aud    auditor

No credentials is 401; a role the endpoint is not for is 403; a citizen asking for another
citizen's object is 404, never 403, so that she cannot learn it exists. The allowed roles'
statuses are what they get on the objects the scene builds (a 409 or 400 there still shows
the call went past the access checks). A path names the scene's object it is called on,
`{draft}` for citizen A's draft application and so on (tests/api/access_scene.py builds
them); paths are under /api/v1.

Every call runs in a savepoint rolled back afterwards: each cell starts from the same data,
whatever the calls before it did. A refused call (401, 403, 404) must not have written
anything: no INSERT, UPDATE or DELETE reached the database.

An endpoint of the URL configuration without a row fails `test_every_endpoint_has_a_row`:
a new endpoint cannot be added without deciding who may call it.
"""

import re

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator

from tests.api.access_scene import build_scene, endpoint_of, request_body

API = "/api/v1"
ROLES = ("anon", "a", "b", "cw", "pm", "fin", "chk", "prv", "aud")

# fmt: off
MATRIX = [
    # method   path                              anon  a   b  cw  pm  fin chk prv aud
    # Signing in and out, registering: the same for everyone.
    ("POST",  "/auth/token/",                    "200 200 200 200 200 200 200 200 200"),
    ("POST",  "/auth/register/",                 "201 201 201 201 201 201 201 201 201"),
    ("POST",  "/auth/logout/",                   "401 204 204 204 204 204 204 204 204"),
    # The schema and its pages, programs and rounds: public (a draft round: staff only).
    ("GET",   "/schema/",                        "200 200 200 200 200 200 200 200 200"),
    ("GET",   "/docs/",                          "200 200 200 200 200 200 200 200 200"),
    ("GET",   "/redoc/",                         "200 200 200 200 200 200 200 200 200"),
    ("GET",   "/programs/",                      "200 200 200 200 200 200 200 200 200"),
    ("GET",   "/rounds/",                        "200 200 200 200 200 200 200 200 200"),
    ("GET",   "/rounds/{round}/",                "200 200 200 200 200 200 200 200 200"),
    ("GET",   "/rounds/{draft_round}/",          "404 404 404 200 200 200 200 404 200"),
    # Running rounds: the program manager; the ledger for finance and the auditor too.
    ("POST",  "/rounds/{draft_round}/open/",     "401 403 403 403 200 403 403 403 403"),
    ("POST",  "/rounds/{round}/close/",          "401 403 403 403 200 403 403 403 403"),
    ("POST",  "/rounds/{closed_round}/select/",  "401 403 403 403 200 403 403 403 403"),
    ("POST",  "/rounds/{round}/money/",          "401 403 403 403 200 403 403 403 403"),
    ("POST",  "/rounds/{voucher_round}/voucher-top-up/",
                                                 "401 403 403 403 200 403 403 403 403"),
    ("GET",   "/rounds/{round}/ledger/",         "401 403 403 403 200 200 200 403 200"),
    # The citizen's own profile, messages, voucher and applications.
    ("GET",   "/me/profile/",                    "401 200 200 403 403 403 403 403 403"),
    ("PUT",   "/me/profile/",                    "401 400 400 403 403 403 403 403 403"),
    ("PATCH", "/me/profile/",                    "401 200 200 403 403 403 403 403 403"),
    ("GET",   "/me/notifications/",              "401 200 200 403 403 403 403 403 403"),
    ("GET",   "/me/voucher/",                    "401 200 404 403 403 403 403 403 403"),
    ("GET",   "/applications/",                  "401 200 200 403 403 403 403 403 403"),
    ("POST",  "/applications/",                  "401 201 201 403 403 403 403 403 403"),
    ("GET",   "/applications/{draft}/",          "401 200 404 403 403 403 403 403 403"),
    ("PATCH", "/applications/{draft}/",          "401 200 404 403 403 403 403 403 403"),
    ("POST",  "/applications/{draft}/documents/",
                                                 "401 201 404 403 403 403 403 403 403"),
    ("POST",  "/applications/{draft}/submit/",   "401 200 404 403 403 403 403 403 403"),
    ("POST",  "/applications/{draft}/withdraw/", "401 200 404 403 403 403 403 403 403"),
    ("POST",  "/applications/{rejected}/appeal/",
                                                 "401 200 404 403 403 403 403 403 403"),
    # Review: caseworkers decide; the auditor reads.
    ("GET",   "/review/applications/",           "401 403 403 200 403 403 403 403 200"),
    ("GET",   "/review/applications/{under_review}/",
                                                 "401 403 403 200 403 403 403 403 200"),
    ("GET",   "/review/applications/{under_review}/documents/{document}/",
                                                 "401 403 403 200 403 403 403 403 200"),
    ("POST",  "/review/applications/{under_review}/approve/",
                                                 "401 403 403 200 403 403 403 403 403"),
    ("POST",  "/review/applications/{under_review}/reject/",
                                                 "401 403 403 200 403 403 403 403 403"),
    ("POST",  "/review/applications/{under_review}/request-documents/",
                                                 "401 403 403 200 403 403 403 403 403"),
    ("POST",  "/review/applications/{under_review}/reveal-rrn/",
                                                 "401 403 403 200 403 403 403 403 403"),
    ("POST",  "/review/applications/{under_review}/matches/{match}/resolve/",
                                                 "401 403 403 200 403 403 403 403 403"),
    ("POST",  "/review/applications/{appealed}/appeal-decision/",
                                                 "401 403 403 200 403 403 403 403 403"),
    ("POST",  "/review/applications/{flagged}/clear-flag/",
                                                 "401 403 403 200 403 403 403 403 403"),
    ("POST",  "/review/applications/{flagged}/revoke/",
                                                 "401 403 403 200 403 403 403 403 403"),
    ("POST",  "/review/applications/{paid}/training-ended/",
                                                 "401 403 403 200 403 403 403 403 403"),
    # Registries: the program manager imports; the auditor follows.
    ("POST",  "/registries/{kind}/imports/",     "401 403 403 403 202 403 403 403 403"),
    ("GET",   "/registries/imports/{import}/",   "401 403 403 403 200 403 403 403 200"),
    # Disbursements: finance; a batch is approved by another finance user than its preparer.
    ("GET",   "/disbursements/",                 "401 403 403 403 403 200 200 403 200"),
    ("POST",  "/disbursements/",                 "401 403 403 403 403 201 201 403 403"),
    ("GET",   "/disbursements/{batch}/",         "401 403 403 403 403 200 200 403 200"),
    ("GET",   "/disbursements/{batch}/payments/",
                                                 "401 403 403 403 403 200 200 403 200"),
    ("GET",   "/disbursements/{batch}/audit/",   "401 403 403 403 403 200 200 403 200"),
    ("POST",  "/disbursements/{batch}/payments/{payment}/hold/",
                                                 "401 403 403 403 403 200 200 403 403"),
    ("POST",  "/disbursements/{batch}/submit/",  "401 403 403 403 403 200 200 403 403"),
    ("POST",  "/disbursements/{batch}/cancel/",  "401 403 403 403 403 200 200 403 403"),
    ("POST",  "/disbursements/{pending_batch}/approve/",
                                                 "401 403 403 403 403 403 200 403 403"),
    ("GET",   "/disbursements/{approved_batch}/export/?format=csv",
                                                 "401 403 403 403 403 200 200 403 403"),
    ("POST",  "/disbursements/{approved_batch}/disburse/",
                                                 "401 403 403 403 403 409 409 403 403"),
    ("POST",  "/disbursements/{approved_batch}/results/",
                                                 "401 403 403 403 403 400 400 403 403"),
    ("POST",  "/disbursements/{approved_batch}/close/",
                                                 "401 403 403 403 403 409 409 403 403"),
    # Recoveries: finance records repayments and waivers (a waiver approved by another
    # finance user than its requester); staff read every case, a citizen her own.
    ("GET",   "/recoveries/",                    "401 200 200 200 200 200 200 403 200"),
    ("GET",   "/recoveries/{recovery}/",         "401 200 404 200 200 200 200 403 200"),
    ("POST",  "/recoveries/{recovery}/repayments/",
                                                 "401 403 403 403 403 201 201 403 403"),
    ("POST",  "/recoveries/{recovery}/waive/",   "401 403 403 403 403 200 200 403 403"),
    ("POST",  "/recoveries/{waiver}/approve-waiver/",
                                                 "401 403 403 403 403 403 200 403 403"),
    # Vouchers: providers charge and refund; the round's top-up is the manager's (above).
    ("POST",  "/vouchers/redemptions/",          "401 403 403 403 403 403 403 201 403"),
    ("POST",  "/vouchers/redemptions/{redemption}/refund/",
                                                 "401 403 403 403 403 403 403 201 403"),
    ("POST",  "/vouchers/redemptions/{redemption}/complete/",
                                                 "401 403 403 403 403 403 403 200 403"),
    # Reports: every staff role.
    ("GET",   "/reports/rounds/{round}/",        "401 403 403 200 200 200 200 403 200"),
    ("GET",   "/reports/rounds/{round}/chart.svg",
                                                 "401 403 403 200 200 200 200 403 200"),
]
# fmt: on

REFUSED = (401, 403, 404)
# Endpoints: what the schema documents, and what the URL configuration serves besides.


def _routes(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern).lstrip("^").rstrip("$")
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route, pattern.callback


_CONVERTED = re.compile(r"<[^>]+>|\(\?P<\w+>[^)]*\)")
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def served_endpoints() -> set[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    endpoints = {
        endpoint_of(method, path)
        for path, operations in schema["paths"].items()
        for method in operations
    }
    documented = {path for _, path in endpoints}
    for route, callback in _routes(get_resolver().url_patterns):
        if not route.startswith("api/v1/"):
            continue
        path = "/" + _CONVERTED.sub("{}", route)
        if path in documented:
            continue
        view = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
        methods = [m for m in HTTP_METHODS if hasattr(view, m)] or ["get"]
        endpoints |= {endpoint_of(m, path) for m in methods}
    return endpoints


def test_every_endpoint_has_a_row():
    rows = {endpoint_of(method, API + path) for method, path, _ in MATRIX}
    served = served_endpoints()
    without_row = sorted(served - rows)
    assert not without_row, f"decide who may call these and add their rows: {without_row}"
    stale = sorted(rows - served)
    assert not stale, f"these rows name no endpoint: {stale}"
    assert all(len(statuses.split()) == len(ROLES) for _, _, statuses in MATRIX)


def call(scene, role: str, method: str, path: str):
    client = scene.clients[role]
    url = path.format(**scene.ids)
    body = request_body(scene, method, path)
    kwargs = {"data": body[0], "format": body[1]} if body else {}
    return getattr(client, method.lower())(url, **kwargs)


WRITES = ("INSERT", "UPDATE", "DELETE")


@pytest.mark.django_db
def test_every_endpoint_answers_every_role_as_the_table_says(quick):
    scene = build_scene()
    wrong = []
    for method, row_path, statuses in MATRIX:
        path = API + row_path
        for role, expected in zip(ROLES, map(int, statuses.split()), strict=True):
            cache.clear()  # sign-in throttles count per address: each call starts afresh
            with transaction.atomic(), CaptureQueriesContext(connection) as queries:
                got = call(scene, role, method, path).status_code
                transaction.set_rollback(True)
            writes = [q["sql"][:60] for q in queries if q["sql"].lstrip().startswith(WRITES)]
            if got != expected:
                wrong.append(f"{method} {path} as {role}: {got}, the table says {expected}")
            elif expected in REFUSED and writes:
                wrong.append(f"{method} {path} as {role}: refused ({got}) yet wrote {writes}")
    assert not wrong, "\n".join(["", *wrong])

    # A list answers citizen B with hers alone: none of A's applications or messages.
    for path in ("/applications/", "/me/notifications/", "/recoveries/"):
        mine = {item["id"] for item in scene.clients["a"].get(API + path).json()["results"]}
        hers = {item["id"] for item in scene.clients["b"].get(API + path).json()["results"]}
        assert mine and not mine & hers, path
