"""After the decision, in a real browser and in Korean: a caseworker finds an appeal in the
appeals queue with the days left to decide it, overturns it, and resolves a duplicate match
(Debian's Chromium driven by Playwright; the fixtures are tests/staff/test_browser.py's)."""

import pytest

from benefits import after_decision, services
from benefits.models import Appeal, Application
from core.roles import Role
from eligibility.models import MatchResolution
from tests.factories import ApplicantFactory, RoundFactory, UserFactory
from tests.staff import test_browser
from tests.staff.conftest import screened, under_review
from tests.staff.test_browser import CHROMIUM, expect, shot, sign_in

# The browser and its pages, as tests/staff/test_browser.py sets them up.
browser = test_browser.browser
open_page = test_browser.open_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)"
    ),
]


def test_a_caseworker_decides_an_appeal_and_resolves_a_match(open_page):
    rejecter = UserFactory(username="caseworker", role=Role.CASEWORKER)
    deciding = UserFactory(username="caseworker2", role=Role.CASEWORKER)
    round_ = RoundFactory(name="서울시민 평생학습 장학금 2026년 1차")
    objecting = under_review(round=round_, applicant=ApplicantFactory(legal_name="한소망"))
    services.application_reject(application=objecting, actor=rejecter, reason="재학 확인 불가")
    after_decision.application_appeal_file(
        applicant=objecting.applicant,
        pk=objecting.pk,
        actor=objecting.applicant.user,
        reason="재학증명서를 새로 제출합니다.",
    )
    matched = under_review(round=round_, applicant=ApplicantFactory(legal_name="윤바다"))
    screened(matched, duplicate=True)

    page = open_page("/staff/review/")
    sign_in(page, deciding.username)
    page.get_by_role("link", name="이의신청", exact=True).click()
    row = page.get_by_role("row").filter(has_text="한소망")
    expect(row.get_by_text("30일 남음")).to_be_visible()
    expect(page.get_by_role("link", name="윤바다")).to_have_count(0)
    shot(page, "08-caseworker-appeals-queue-ko")

    page.get_by_role("link", name="한소망").click()
    expect(page.get_by_role("heading", name=f"신청 #{objecting.pk}")).to_be_visible()
    appeal = page.get_by_role("region", name="이의신청", exact=True)
    expect(appeal.get_by_text("재학증명서를 새로 제출합니다.")).to_be_visible()
    expect(appeal.get_by_text("30일 남음")).to_be_visible()
    page.get_by_label("인용 (승인)").check()
    page.get_by_label("사유 (신청인에게 안내됩니다)").fill("새 재학증명서로 재학을 확인함")
    page.get_by_role("button", name="이의신청 결정").click()
    expect(
        page.get_by_text(f"신청 #{objecting.pk}의 이의신청을 인용했습니다. 신청이 승인되었습니다.")
    ).to_be_visible()
    expect(page.get_by_label("상태", exact=True)).to_have_text("승인")
    expect(appeal.get_by_text("새 재학증명서로 재학을 확인함")).to_be_visible()
    expect(appeal.get_by_text("인용 (승인)")).to_be_visible()
    shot(page, "09-caseworker-appeal-overturned-ko")
    objecting.refresh_from_db()
    assert objecting.status == Application.Status.APPROVED
    assert Appeal.objects.get(application=objecting).decided_by == deciding

    page.goto(f"/staff/review/{matched.pk}/")
    expect(page.get_by_text("2026-03-01 – 2026-06-30 (과정 AIG2026X0001)")).to_be_visible()
    page.get_by_label("판단").select_option(label="동일인 아님")
    page.get_by_label("사유 (기록됩니다)").fill("생년월일이 다른 동명이인")
    page.get_by_role("button", name="중복 판정").click()
    expect(page.get_by_text(f"신청 #{matched.pk}의 중복을 판정했습니다.")).to_be_visible()
    judged = page.get_by_role("table", name="판정한 중복").get_by_role("row").nth(1)
    for cell in ("국민내일배움카드", "동일인 아님", "생년월일이 다른 동명이인", "caseworker2"):
        expect(judged.get_by_role("cell", name=cell, exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="다시 판정")).to_be_visible()
    shot(page, "10-caseworker-match-resolved-ko")
    assert MatchResolution.objects.get(application=matched).resolution == "not_the_same_person"

    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name=f"Application #{matched.pk}")).to_be_visible()
    shot(page, "10-caseworker-match-resolved-en")


def test_finance_records_a_repayment_and_a_waiver_needs_a_second_user(open_page):
    from benefits.training_end import application_training_end
    from payments.models import Recovery
    from tests.payments.test_recoveries import ENDED, TODAY, paid

    finance1 = UserFactory(username="finance1", role=Role.FINANCE)
    finance2 = UserFactory(username="finance2", role=Role.FINANCE)
    application = paid(applicant=ApplicantFactory(legal_name="강이음"))
    recovery = application_training_end(
        application=application,
        actor=UserFactory(role=Role.CASEWORKER),
        ended_on=ENDED,
        reason="수강 포기 (기관 통보)",
    ).recovery

    page = open_page("/staff/")
    sign_in(page, finance1.username)
    page.get_by_role("navigation", name="주 메뉴").get_by_role("link", name="환수").click()
    page.get_by_role("link", name="강이음").click()
    expect(page.get_by_role("heading", name=f"환수 #{recovery.pk}")).to_be_visible()
    page.get_by_label("금액 (원)").fill("100000")
    page.get_by_label("상환일").fill(TODAY.isoformat())
    page.get_by_role("button", name="상환 기록").click()
    expect(page.get_by_text(f"환수 #{recovery.pk}에 상환을 기록했습니다.")).to_be_visible()
    expect(page.get_by_text("233,333원").first).to_be_visible()
    page.get_by_label("남은 금액을 면제하는 사유").fill("생계 곤란 확인")
    page.get_by_role("button", name="면제 요청").click()
    expect(page.get_by_role("note")).to_have_text(
        "이 면제를 직접 요청하셨습니다. 다른 재무 담당자가 승인해야 합니다."
    )
    expect(page.get_by_role("button", name="면제 승인")).to_be_disabled()
    shot(page, "11-finance1-cannot-approve-waiver-ko")
    page.get_by_role("button", name="로그아웃").click()

    sign_in(page, finance2.username)
    page.goto(f"/staff/recoveries/{recovery.pk}/")
    page.get_by_role("button", name="면제 승인").click()
    expect(page.get_by_label("상태", exact=True)).to_have_text("면제")
    shot(page, "12-finance2-waiver-approved-ko")
    recovery.refresh_from_db()
    assert (recovery.status, recovery.repaid, recovery.waived_amount) == (
        "waived",
        100_000,
        233_333,
    )
    assert Recovery.objects.get().waiver_approved_by == finance2

    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name=f"Recovery #{recovery.pk}")).to_be_visible()
    shot(page, "12-finance2-waiver-approved-en")
