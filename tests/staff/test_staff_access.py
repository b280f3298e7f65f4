"""Who enters each staff page: the staff roles named below; citizens and providers never.

Signed out, a page sends to the login page; signed in without one of its roles, 403. The
pages are called on ids that do not exist: the guard answers before any object is read,
so a role let in gets past it (a 404, a form error or the page), one kept out gets 403.
A staff page without a row fails the test.
"""

import pytest
from django.test import Client
from django.urls import URLPattern, reverse

from core.roles import Role
from staff import urls
from tests.factories import ApplicantFactory, UserFactory

CW, PM, FIN, AUD = Role.CASEWORKER, Role.PROGRAM_MANAGER, Role.FINANCE, Role.AUDITOR

# url name: (method, the roles that enter)
PAGES = {
    "home": ("GET", (CW, PM, FIN, AUD)),
    "queue": ("GET", (CW, AUD)),
    "application": ("GET", (CW, AUD)),
    "document": ("GET", (CW, AUD)),
    "approve": ("POST", (CW,)),
    "reject": ("POST", (CW,)),
    "request_documents": ("POST", (CW,)),
    "reveal_rrn": ("POST", (CW,)),
    "appeal_decide": ("POST", (CW,)),
    "flag_clear": ("POST", (CW,)),
    "revoke": ("POST", (CW,)),
    "match_resolve": ("POST", (CW,)),
    "training_end": ("POST", (CW,)),
    "batch_list": ("GET", (FIN, AUD)),
    "batch_create": ("POST", (FIN,)),
    "settlement_create": ("POST", (FIN,)),
    "batch": ("GET", (FIN, AUD)),
    "batch_submit": ("POST", (FIN,)),
    "batch_approve": ("POST", (FIN,)),
    "batch_disburse": ("POST", (FIN,)),
    "batch_cancel": ("POST", (FIN,)),
    "batch_close": ("POST", (FIN,)),
    "batch_audit_recheck": ("POST", (FIN,)),
    "batch_export": ("GET", (FIN,)),
    "batch_results": ("POST", (FIN,)),
    "batch_results_progress": ("GET", (FIN, AUD)),
    "payment_hold": ("POST", (FIN,)),
    "recovery_list": ("GET", (FIN, PM, AUD)),
    "recovery": ("GET", (FIN, PM, AUD)),
    "recovery_repayment": ("POST", (FIN,)),
    "recovery_waive": ("POST", (FIN,)),
    "recovery_approve_waiver": ("POST", (FIN,)),
    "round_list": ("GET", (PM, AUD)),
    "round": ("GET", (PM, AUD)),
    "round_top_up": ("POST", (PM,)),
    "round_money": ("POST", (PM,)),
    "round_open": ("POST", (PM,)),
    "round_close": ("POST", (PM,)),
    "round_select": ("POST", (PM,)),
    "registry_list": ("GET", (PM, AUD)),
    "registry_import": ("GET", (PM, AUD)),
    "registry_import_progress": ("GET", (PM, AUD)),
    "report_list": ("GET", (CW, PM, FIN, AUD)),
    "report": ("GET", (CW, PM, FIN, AUD)),
}
# Signing in and out, and choosing the language, are for everyone.
OPEN_TO_ALL = {"login", "logout", "set_language"}
ABSENT_ID = 987_654_321


def _url(pattern: URLPattern) -> str:
    kwargs = {
        name: "csv" if name == "fmt" else ABSENT_ID
        for name in pattern.pattern.converters  # the names in the route
    }
    return reverse(f"staff:{pattern.name}", kwargs=kwargs)


def test_every_staff_page_has_a_row():
    names = {p.name for p in urls.urlpatterns}
    assert names - OPEN_TO_ALL == set(PAGES), sorted(names.symmetric_difference(PAGES))


@pytest.mark.django_db
def test_only_the_roles_of_a_page_enter_it():
    users = {role: UserFactory(role=role, is_staff=True) for role in (CW, PM, FIN, AUD)}
    users["citizen"] = ApplicantFactory().user
    users["provider"] = UserFactory(role=Role.PROVIDER)
    clients = {"anonymous": Client()}
    for name, user in users.items():
        clients[name] = Client()
        clients[name].force_login(user)
    wrong = []
    for pattern in urls.urlpatterns:
        if pattern.name in OPEN_TO_ALL:
            continue
        method, roles = PAGES[pattern.name]
        url = _url(pattern)
        for name, client in clients.items():
            response = getattr(client, method.lower())(url)
            to_login = response.status_code == 302 and response.url.startswith(
                reverse("staff:login")
            )
            if name == "anonymous":
                ok = to_login
            elif name in roles:
                ok = response.status_code != 403 and not to_login
            else:
                ok = response.status_code == 403
            if not ok:
                wrong.append(f"{method} {url} as {name}: {response.status_code}")
    assert not wrong, "\n".join(["", *wrong])
