"""The staff workbench in a real browser (Debian's Chromium driven by Playwright).

What a person sees is named: texts, labels and roles, never CSS paths. Every page is
watched for JavaScript errors, and screenshots go to var/screenshots/ (Korean, and one in
English). Select them with `-m browser`; they skip where /usr/bin/chromium is missing
(`.ci/run` installs it).
"""

import os
import re
from pathlib import Path

import pytest

from benefits.models import Application, Round
from benefits.selection import round_select
from core.roles import Role
from payments.models import DisbursementBatch
from tests.factories import PASSWORD, ApplicantFactory, RoundFactory, UserFactory
from tests.factories import approved_applications as approved
from tests.staff.conftest import screened, under_review, with_document

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)"
    ),
]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

RULES = [
    {
        "rule": "seoul_resident",
        "outcome": "fail",
        "code": "not_seoul_resident",
        "evidence": {"source": "social_security", "district": "41110"},
    },
    {"rule": "income_status", "outcome": "pass", "code": "income_status_confirmed"},
]


@pytest.fixture(scope="module")
def browser(live_server):
    # Playwright's sync API keeps an event loop in this thread; Django refuses ORM calls
    # there unless told that they are plain synchronous calls, which they are.
    allowed = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()
    if allowed is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = allowed


@pytest.fixture
def open_page(browser, live_server):
    """Open a page of the workbench in a fresh browser context; fail on any JavaScript error."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    contexts, errors = [], []

    def make(path: str = "/staff/"):
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": 1366, "height": 900}, locale="en-US"
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        page.on(
            "console",
            lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None,
        )
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(path)
        return page

    yield make
    for context in contexts:
        context.close()
    assert errors == [], errors


def sign_in(page, username: str) -> None:
    expect(page.get_by_role("heading", name="업무 화면 로그인")).to_be_visible()
    page.get_by_label("아이디").fill(username)
    page.get_by_label("비밀번호").fill(PASSWORD)
    page.get_by_role("button", name="로그인").click()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_caseworker_filters_opens_reads_and_rejects(open_page):
    caseworker = UserFactory(username="caseworker", role=Role.CASEWORKER)
    round_ = RoundFactory(name="서울시민 평생학습 장학금 2026년 1차")
    plain = under_review(round=round_, applicant=ApplicantFactory(legal_name="이서윤"))
    screened(plain, outcome="eligible")
    target = under_review(
        round=round_, applicant=ApplicantFactory(legal_name="박지우", district="11350")
    )
    screened(target, outcome="ineligible", duplicate=True, rules=RULES)
    with_document(target)
    after = under_review(round=round_, applicant=ApplicantFactory(legal_name="최하준"))
    screened(after, outcome="needs_review", duplicate=True)

    page = open_page("/staff/review/")
    sign_in(page, caseworker.username)
    expect(page.get_by_role("heading", name="심사 대기열")).to_be_visible()
    page.get_by_label("표시").select_option(label="중복 수혜")
    page.get_by_role("button", name="조회").click()
    rows = page.get_by_role("row")
    expect(page.get_by_role("link", name="박지우")).to_be_visible()
    expect(page.get_by_role("link", name="이서윤")).to_have_count(0)
    expect(rows.filter(has_text="박지우").get_by_text("중복 수혜")).to_be_visible()
    shot(page, "01-caseworker-queue-ko")

    page.get_by_role("link", name="박지우").click()
    expect(page.get_by_role("heading", name=f"신청 #{target.pk}")).to_be_visible()
    expect(page.get_by_text("주소지가 서울시가 아닙니다.")).to_be_visible()
    expect(page.get_by_role("cell", name="국민내일배움카드", exact=True)).to_be_visible()
    expect(
        page.get_by_text("기간 또는 과정이 겹치는 국민내일배움카드 훈련 이력이 있습니다.")
    ).to_be_visible()
    page.get_by_text("통장 사본 — bankbook.png").click()
    document = page.get_by_role("img", name="통장 사본: bankbook.png")
    expect(document).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=document.element_handle()
    )
    shot(page, "02-caseworker-application-ko")

    page.get_by_label("반려 사유 (신청인에게 안내됩니다)").fill("직업훈련 과정이 아닙니다.")
    page.get_by_role("button", name="반려", exact=True).click()
    expect(page.get_by_text(f"신청 #{target.pk}를 반려했습니다.")).to_be_visible()
    expect(page.get_by_label("상태", exact=True)).to_have_text("반려")
    shot(page, "03-caseworker-rejected-ko")
    page.get_by_role("link", name="다음 신청 ›").first.click()
    expect(page.get_by_role("heading", name=f"신청 #{after.pk}")).to_be_visible()
    page.go_back()
    target.refresh_from_db()
    assert target.status == Application.Status.REJECTED

    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name=f"Application #{target.pk}")).to_be_visible()
    expect(page.get_by_label("State", exact=True)).to_have_text("Rejected")
    shot(page, "04-caseworker-application-en")


def result_file(csv_text: str) -> bytes:
    references = [line.split(",")[0] for line in csv_text.splitlines()[1:]]
    lines = [f"{ref},paid," for ref in references]
    return ("reference,result,reason\n" + "\n".join(lines) + "\n").encode()


def test_finance_maker_checker_download_disburse_and_reconcile(open_page, tmp_path):
    finance1 = UserFactory(username="finance1", role=Role.FINANCE)
    finance2 = UserFactory(username="finance2", role=Role.FINANCE)
    round_ = RoundFactory(name="장학금 2026년 1차", status=Round.Status.CLOSED, capacity=4)
    approved(round_, 4)
    round_select(round_=round_, actor=UserFactory(role=Role.PROGRAM_MANAGER))

    page = open_page("/staff/")
    sign_in(page, finance1.username)
    page.get_by_role("navigation", name="주 메뉴").get_by_role("link", name="지급").click()
    new_batch = page.get_by_role("region", name="회차 지급 배치 만들기")
    new_batch.get_by_label("회차", exact=True).select_option(
        label=f"#{round_.pk} 장학금 2026년 1차 (선정 완료)"
    )
    new_batch.get_by_role("button", name="배치 준비").click()
    batch = DisbursementBatch.objects.get(round=round_)
    expect(page.get_by_text(f"배치 #{batch.pk}를 만들었습니다.")).to_be_visible()
    expect(page.get_by_text("4,000,000원").first).to_be_visible()
    page.get_by_role("button", name="승인 요청").click()
    expect(page.get_by_label("상태", exact=True)).to_have_text("승인 대기")
    expect(page.get_by_role("note")).to_have_text(
        "이 지급 배치를 직접 준비하셨습니다. 다른 재무 담당자가 승인해야 합니다."
    )
    expect(page.get_by_role("button", name="승인", exact=True)).to_be_disabled()
    shot(page, "05-finance1-cannot-approve-ko")
    page.get_by_role("button", name="로그아웃").click()

    sign_in(page, finance2.username)
    page.goto(f"/staff/batches/{batch.pk}/")
    page.get_by_role("button", name="English").click()
    audit = page.get_by_role("region", name="Pre-release audit")
    expect(audit.get_by_text("Approving reads it again")).to_be_visible()
    expect(audit.get_by_role("button", name="Read the audit again")).to_be_visible()
    shot(page, "05-finance2-batch-to-approve-en")
    page.get_by_role("button", name="한국어").click()
    page.get_by_role("button", name="승인", exact=True).click()
    expect(page.get_by_label("상태", exact=True)).to_have_text("승인")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="CSV 내려받기").click()
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    assert saved.name == f"baeum-batch-{batch.pk}.csv"
    page.reload()
    page.get_by_role("button", name="송금 완료로 표시").click()
    expect(page.get_by_label("상태", exact=True)).to_have_text("송금")

    results = tmp_path / "results.csv"
    results.write_bytes(result_file(saved.read_text(encoding="utf-8")))
    page.get_by_label("은행 결과 파일 (CSV 또는 pain.002)").set_input_files(str(results))
    page.get_by_role("button", name="결과 올리기").click()
    expect(page.get_by_text("은행 결과를 반영했습니다: 4행, 지급 완료 4건")).to_be_visible()
    expect(page.get_by_label("상태", exact=True)).to_have_text("대사 완료")
    shot(page, "06-finance2-reconciled-ko")
    batch.refresh_from_db()
    assert batch.status == DisbursementBatch.Status.RECONCILED
    assert os.path.getsize(saved) > 0


def test_manager_report_shows_every_district_and_the_chart(open_page):
    from core.districts import SEOUL_DISTRICTS

    manager = UserFactory(username="manager", role=Role.PROGRAM_MANAGER)
    round_ = RoundFactory(name="평생학습 바우처 2026년 1차", capacity=30)
    for n, code in enumerate(["11710", "11710", "11710", "11350", "11440"]):
        approved(round_, 1, applicant=ApplicantFactory(district=code, legal_name=f"신청{n}"))

    page = open_page(f"/staff/reports/{round_.pk}/")
    sign_in(page, manager.username)
    expect(page.get_by_role("heading", name=re.compile("회차 보고서"))).to_be_visible()
    districts = page.get_by_role("table", name="서울시 25개 자치구")
    expect(districts.get_by_role("rowheader")).to_have_count(25)
    for district in SEOUL_DISTRICTS.values():
        expect(
            districts.get_by_role("rowheader", name=district.name_ko, exact=True)
        ).to_be_visible()
    chart = page.get_by_role("img", name="25개 자치구별 신청과 선정 그래프")
    expect(chart).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=chart.element_handle()
    )
    shot(page, "07-manager-report-ko")
