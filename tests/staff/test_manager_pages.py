"""The program manager's pages, sign-in, the home page and the language of the staff pages."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from benefits.models import Round
from core.models import AuditEvent
from core.roles import Role
from eligibility.models import RegistryImportJob
from tests.factories import PASSWORD, RoundFactory, UserFactory, approved_applications

pytestmark = pytest.mark.django_db


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (Role.PROGRAM_MANAGER, 200),
        (Role.AUDITOR, 200),
        (Role.CASEWORKER, 403),
        (Role.FINANCE, 403),
        (Role.CITIZEN, 403),
    ],
)
def test_round_and_registry_pages_by_role(web, role, expected):
    round_ = RoundFactory()
    client = web(role)
    for url in ("/staff/rounds/", f"/staff/rounds/{round_.pk}/", "/staff/registries/"):
        assert client.get(url).status_code == expected, url


@pytest.mark.parametrize(
    "role", [Role.CASEWORKER, Role.PROGRAM_MANAGER, Role.FINANCE, Role.AUDITOR]
)
def test_every_staff_role_reads_the_reports_and_sees_only_its_menus(web, role):
    client = web(role)
    assert client.get("/staff/reports/").status_code == 200
    menus = {m["key"] for m in client.get("/staff/").context["staff_menus"]}
    expected = {
        Role.CASEWORKER: {"queue", "reports"},
        Role.PROGRAM_MANAGER: {"rounds", "registries", "recoveries", "reports"},
        Role.FINANCE: {"batches", "recoveries", "reports"},
        Role.AUDITOR: {"queue", "batches", "recoveries", "rounds", "registries", "reports"},
    }[role]
    assert menus == expected


def test_round_close_and_select_show_the_seed_and_refuse_a_second_click(web):
    round_ = RoundFactory(capacity=2)
    approved_applications(round_, 3)
    client = web(Role.PROGRAM_MANAGER)
    client.post(f"/staff/rounds/{round_.pk}/close/")
    again = client.post(f"/staff/rounds/{round_.pk}/close/", follow=True)
    assert any("이미 처리되었을 수 있습니다" in m for m in messages_of(again))
    response = client.post(f"/staff/rounds/{round_.pk}/select/", follow=True)
    round_.refresh_from_db()
    assert round_.status == Round.Status.SELECTED
    assert any(round_.selection_seed in m and "선정 2명" in m for m in messages_of(response))
    assert round_.selection_seed in response.content.decode()


def test_round_money_form_posts_to_the_audited_service_only(web):
    round_ = RoundFactory()
    page = web(Role.PROGRAM_MANAGER).get(f"/staff/rounds/{round_.pk}/").content.decode()
    assert "1,000,000원" in page
    assert f'action="/staff/rounds/{round_.pk}/money/"' in page
    auditor_page = web(Role.AUDITOR).get(f"/staff/rounds/{round_.pk}/").content.decode()
    assert 'name="budget"' not in auditor_page


def test_top_up_without_configuration_is_a_message(web):
    round_ = RoundFactory()
    response = web(Role.PROGRAM_MANAGER).post(f"/staff/rounds/{round_.pk}/top-up/", follow=True)
    assert response.status_code == 200
    assert any("추가 지원" in m for m in messages_of(response))


def test_auditor_cannot_change_rounds_or_import(web):
    round_ = RoundFactory(status=Round.Status.DRAFT)
    client = web(Role.AUDITOR)
    assert client.post(f"/staff/rounds/{round_.pk}/open/").status_code == 403
    upload = SimpleUploadedFile("nv.csv", b"rrn,year\n")
    response = client.post("/staff/registries/", {"kind": "national_voucher", "file": upload})
    assert response.status_code == 403
    round_.refresh_from_db()
    assert round_.status == Round.Status.DRAFT and not RegistryImportJob.objects.exists()


def test_registry_import_shows_progress_and_rejected_lines(web, django_capture_on_commit_callbacks):
    client = web(Role.PROGRAM_MANAGER)
    upload = SimpleUploadedFile(
        "national_voucher.csv", b"rrn,year\n9001011234567,2026\n901301-1234567,2026\n"
    )
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(
            "/staff/registries/", {"kind": "national_voucher", "file": upload}, follow=True
        )
    job = RegistryImportJob.objects.get()
    assert response.redirect_chain[-1][0] == f"/staff/registries/imports/{job.pk}/"
    page = response.content.decode()
    assert "data-progress-url" in page and "가져오는 중입니다" in page
    progress_url = f"/staff/registries/imports/{job.pk}/progress/"
    assert client.get(progress_url).json()["finished"] is False

    with django_capture_on_commit_callbacks(execute=True):
        for run in queued:  # the worker runs the import after the commit, and its chunks
            run()
    job.refresh_from_db()
    # One bad line fails the whole import: the previous snapshot stays active.
    assert job.status == "failed" and job.rows_rejected == 1
    page = client.get(f"/staff/registries/imports/{job.pk}/").content.decode()
    assert "거부된 행" in page and "invalid_birth_date" in page and "이전 자료를" in page
    assert "data-progress-url" not in page
    assert client.get(progress_url).json() == {
        "status": "failed",
        "status_label": "실패",
        "rows_read": job.rows_read,
        "rows_rejected": 1,
        "finished": True,
    }
    missing = client.post("/staff/registries/", {"kind": "national_voucher"}, follow=True)
    assert missing.status_code == 200 and messages_of(missing)


def test_login_accepts_staff_refuses_citizens_and_expires_after_a_working_day(settings):
    staff = UserFactory(role=Role.CASEWORKER)
    citizen = UserFactory(role=Role.CITIZEN)
    client = Client()
    assert client.get("/staff/login/").status_code == 200
    refused = client.post("/staff/login/", {"username": citizen.username, "password": PASSWORD})
    assert refused.status_code == 200
    assert "업무 화면을 사용할 수 없습니다" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    response = client.post("/staff/login/", {"username": staff.username, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/staff/"
    assert client.session.get_expiry_age() == settings.BAEUM_STAFF_SESSION_SECONDS
    assert client.get("/staff/review/").status_code == 200
    client.post("/staff/logout/")
    assert client.get("/staff/review/").status_code == 302


def test_login_needs_the_csrf_token():
    staff = UserFactory(role=Role.CASEWORKER)
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/staff/login/", {"username": staff.username, "password": PASSWORD})
    assert response.status_code == 403


def test_staff_pages_default_to_korean_and_switch_to_english(web):
    client = web(Role.CASEWORKER)
    page = client.get("/staff/review/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert page["Content-Language"] == "ko" and "심사 대기열" in page.content.decode()
    client.post("/staff/language/", {"language": "en", "next": "/staff/review/"})
    page = client.get("/staff/review/")
    assert page["Content-Language"] == "en" and "Review queue" in page.content.decode()


def test_the_api_still_answers_in_english_unless_asked(db):
    anon = Client()
    assert anon.get("/api/v1/me/profile/").json()["errors"][0]["detail"] == (
        "Authentication credentials were not provided."
    )
    korean = anon.get("/api/v1/me/profile/", HTTP_ACCEPT_LANGUAGE="ko")
    assert korean.json()["errors"][0]["detail"] == "자격 인증 데이터가 제공되지 않았습니다."


def test_each_action_is_audited_with_the_user(web):
    round_ = RoundFactory(status=Round.Status.DRAFT)
    client = web(Role.PROGRAM_MANAGER)
    client.post(f"/staff/rounds/{round_.pk}/open/")
    assert AuditEvent.objects.filter(action="round.open", actor=client.user).exists()


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (Role.CASEWORKER, 200),
        (Role.PROGRAM_MANAGER, 200),
        (Role.FINANCE, 200),
        (Role.AUDITOR, 200),
        (Role.CITIZEN, 403),
        (Role.PROVIDER, 403),
    ],
)
def test_round_report_page_by_role(web, role, expected):
    round_ = RoundFactory()
    assert web(role).get(f"/staff/reports/{round_.pk}/").status_code == expected


def test_round_report_page_shows_the_report_numbers_for_all_25_districts(web):
    from benefits import reports
    from core.districts import SEOUL_DISTRICTS

    round_ = RoundFactory()
    approved_applications(round_, 3)
    client = web(Role.PROGRAM_MANAGER)
    response = client.get(f"/staff/reports/{round_.pk}/")
    page = response.content.decode()
    expected = reports.round_report(round_=round_)
    assert [r["district"] for r in response.context["districts"]] == list(SEOUL_DISTRICTS)
    assert [r["applications"] for r in response.context["districts"]] == [
        r["applications"] for r in expected["districts"]
    ]
    for district in SEOUL_DISTRICTS.values():
        assert f'<th scope="row">{district.name_ko}</th>' in page
    assert f'src="/api/v1/reports/rounds/{round_.pk}/chart.svg"' in page
    assert "100.0%" in page  # the approval rate: three approved of three decided
    chart = client.get(f"/api/v1/reports/rounds/{round_.pk}/chart.svg")
    assert chart.status_code == 200 and chart["Content-Type"] == "image/svg+xml"


def test_round_report_page_runs_a_fixed_number_of_queries(web):
    from tests.staff.conftest import query_count

    small, large = RoundFactory(), RoundFactory()
    approved_applications(small, 1)
    approved_applications(large, 12)
    client = web(Role.AUDITOR)
    assert query_count(client, f"/staff/reports/{small.pk}/") == query_count(
        client, f"/staff/reports/{large.pk}/"
    )


def test_money_settings_change_only_through_the_service_with_a_reason(web):
    round_ = RoundFactory(capacity=10, amount=1_000_000, budget=10_000_000)
    client = web(Role.PROGRAM_MANAGER)
    url = f"/staff/rounds/{round_.pk}/money/"
    missing = client.post(url, {"budget": 12_000_000}, follow=True)
    assert any("사유" in m for m in messages_of(missing))
    fixed = client.post(url, {"amount": 900_000, "reason": "단가 조정"}, follow=True)
    assert messages_of(fixed)
    round_.refresh_from_db()
    assert round_.budget == 10_000_000 and round_.amount == 1_000_000
    client.post(url, {"budget": 12_000_000, "amount": 1_000_000, "reason": "추경 반영"})
    round_.refresh_from_db()
    assert round_.budget == 12_000_000
    event = AuditEvent.objects.filter(object_id=str(round_.pk), actor=client.user).last()
    assert event.reason == "추경 반영"
    assert web(Role.AUDITOR).post(url, {"budget": 1, "reason": "x"}).status_code == 403
