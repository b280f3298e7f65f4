"""The Content-Security-Policy, and the pages that must live with it: the staff workbench,
the admin and Swagger UI load nothing inline and nothing from elsewhere.

The header is checked on every kind of page; a real browser then loads them and fails
on any violation it reports (the workbench's own browser tests run under it too).
"""

import pytest
from django.test import Client

from core.roles import Role
from tests.factories import PASSWORD, UserFactory
from tests.staff import test_browser
from tests.staff.test_browser import CHROMIUM, expect, sign_in

# The workbench's browser and page fixtures, shared.
browser = test_browser.browser
open_page = test_browser.open_page

POLICY = {
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
    "base-uri 'self'",
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["/staff/login/", "/admin/login/", "/api/v1/docs/", "/api/v1/rounds/", "/health/"]
)
def test_every_page_carries_the_policy(url):
    response = Client().get(url)
    assert response.status_code == 200
    directives = {d.strip() for d in response["Content-Security-Policy"].split(";")}
    assert directives >= POLICY
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert "unsafe-eval" not in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_swagger_ui_is_served_from_baeum_itself():
    page = Client().get("/api/v1/docs/").content.decode()
    assert "cdn." not in page and "https://" not in page
    assert "<style" not in page and "<script>" not in page


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_a_staff_page_reports_no_violation(open_page):
    UserFactory(username="auditor", role=Role.AUDITOR, is_staff=True)
    page = open_page("/staff/")
    sign_in(page, "auditor")
    expect(page.get_by_role("navigation", name="주 메뉴")).to_be_visible()
    page.get_by_role("navigation", name="주 메뉴").get_by_role("link", name="보고서").click()
    expect(page.get_by_role("heading", name="보고서")).to_be_visible()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_the_admin_reports_no_violation(open_page):
    UserFactory(username="root", is_staff=True, is_superuser=True)
    page = open_page("/admin/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    page.goto("/admin/auth/user/")
    expect(page.get_by_role("link", name="root")).to_be_visible()
    page.goto("/admin/auth/user/add/")
    expect(page.get_by_role("heading", name="Add user")).to_be_visible()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_swagger_ui_draws_the_api_with_no_violation(open_page):
    page = open_page("/api/v1/docs/")
    # The schema is generated on the first request: seconds on a busy machine.
    expect(page.get_by_role("heading", name="Baeum API")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("/api/v1/auth/logout/").first).to_be_visible()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_redoc_draws_the_api_and_fetches_nothing_from_elsewhere(browser, live_server):
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto("/api/v1/redoc/")
    expect(page.get_by_role("heading", name="Baeum API").first).to_be_visible(timeout=60_000)
    expect(page.get_by_text("/api/v1/auth/logout/").first).to_be_attached()
    context.close()
    # ReDoc's footer asks its vendor's site for a logo: the policy refuses it, and that is
    # the only thing it refuses.
    assert all("cdn.redoc.ly" in error for error in errors), errors
