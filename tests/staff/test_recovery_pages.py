"""Training ends and recoveries (환수) in the workbench, through the Django test client: a
caseworker records a training that ended early (revoked before payment, a recovery after),
finance lists recoveries, records repayments and asks for a waiver that another finance
user approves; the requester is refused in Korean; the wrong roles get 403 and nothing is
written; a missing reason or amount is a form error."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from benefits.models import Application
from core.models import AuditEvent
from core.roles import Role
from payments.models import Recovery, Repayment
from payments.recoveries import recovery_repayment_record, recovery_waiver_request
from tests.api.test_documents import PDF
from tests.payments.test_recoveries import ENDED, PRO_RATA, TODAY, paid, selected
from tests.staff.conftest import query_count

pytestmark = pytest.mark.django_db


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def caseworker(web):
    return web(Role.CASEWORKER)


@pytest.fixture
def finance1(web):
    return web(Role.FINANCE)


@pytest.fixture
def finance2(web):
    return web(Role.FINANCE)


def end_training(client, application, **data):
    body = {"ended_on": ENDED.isoformat(), "reason": "수강 포기 (기관 통보)", **data}
    return client.post(f"/staff/review/{application.pk}/training-ended/", body, follow=True)


def opened(caseworker_user, application=None) -> Recovery:
    from benefits.training_end import application_training_end

    application = application or paid()
    return application_training_end(
        application=application, actor=caseworker_user, ended_on=ENDED, reason="수강 포기"
    ).recovery


# The caseworker's form


def test_a_training_end_after_payment_opens_a_pro_rata_recovery(caseworker):
    application = paid()
    shown = caseworker.get(f"/staff/review/{application.pk}/").content.decode()
    assert f'action="/staff/review/{application.pk}/training-ended/"' in shown

    response = end_training(caseworker, application, evidence=SimpleUploadedFile("notice.pdf", PDF))
    recovery = Recovery.objects.get(application=application)
    assert recovery.amount == PRO_RATA
    assert recovery.evidence.original_name == "notice.pdf"
    assert messages_of(response) == [
        f"신청 #{application.pk}의 훈련 중도 종료를 기록했습니다. 환수 #{recovery.pk}"
        f"(333,333원, 기한 {recovery.due_on.isoformat()})를 시작하고 신청인에게 안내했습니다."
    ]
    html = response.content.decode()
    assert "training-ended/" not in html  # recorded: the form gives way to the recovery
    assert "333,333원" in html and "환수 중" in html


def test_a_training_end_before_payment_revokes_the_approval(caseworker):
    application = selected()
    response = end_training(caseworker, application)
    assert messages_of(response) == [
        f"신청 #{application.pk}의 훈련 중도 종료를 기록했습니다. "
        "지급 전이어서 승인을 취소했습니다."
    ]
    assert Application.objects.get(pk=application.pk).status == Application.Status.REJECTED
    assert not Recovery.objects.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"reason": ""}, "사유 (신청인에게 안내됩니다): 사유를 입력해 주세요."),
        ({"ended_on": ""}, None),
        ({"ended_on": "2026-13-40"}, None),
        (
            {"ended_on": (TODAY + timedelta(days=3)).isoformat()},
            "미래의 날짜는 기록할 수 없습니다.",
        ),
    ],
)
def test_a_training_end_without_a_reason_or_a_good_date_writes_nothing(caseworker, data, message):
    application = paid()
    before = AuditEvent.objects.count()
    response = end_training(caseworker, application, **data)
    shown = messages_of(response)
    assert shown if message is None else shown == [message]
    assert not Recovery.objects.exists()
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.FINANCE, Role.PROGRAM_MANAGER])
def test_other_roles_cannot_record_a_training_end(web, role):
    application = paid()
    response = web(role).post(
        f"/staff/review/{application.pk}/training-ended/",
        {"ended_on": ENDED.isoformat(), "reason": "사유"},
    )
    assert response.status_code == 403
    assert not Recovery.objects.exists()


# Finance's list and page


def test_the_list_filters_by_state_and_shows_overdue_in_red(finance1, caseworker):
    late = opened(caseworker.user)
    Recovery.objects.filter(pk=late.pk).update(due_on=TODAY - timedelta(days=4))
    current = opened(caseworker.user)
    done = opened(caseworker.user)
    recovery_repayment_record(recovery=done, actor=finance1.user, amount=done.amount, paid_on=TODAY)

    def listed(**params) -> list[int]:
        response = finance1.get("/staff/recoveries/", params)
        return [r.pk for r in response.context["page"]]

    assert listed() == [done.pk, current.pk, late.pk]
    assert listed(status="open") == [current.pk, late.pk]
    assert listed(status="overdue") == [late.pk]
    assert listed(status="repaid") == [done.pk]
    html = finance1.get("/staff/recoveries/").content.decode()
    assert "기한 4일 지남" in html and "badge-bad" in html
    assert "상환 완료" in html and "333,333원" in html


def test_the_list_counts_queries_whatever_the_page_size(finance1, caseworker):
    for _ in range(3):
        opened(caseworker.user)
    counts = [query_count(finance1, "/staff/recoveries/", {"per_page": n}) for n in (25, 100)]
    assert counts[0] == counts[1] <= 10


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.PROGRAM_MANAGER, Role.FINANCE])
def test_the_recovery_menu_is_for_finance_managers_and_auditors(web, role):
    assert 'href="/staff/recoveries/"' in web(role).get("/staff/").content.decode()


def test_the_caseworker_has_no_recovery_menu(caseworker):
    assert 'href="/staff/recoveries/"' not in caseworker.get("/staff/").content.decode()
    assert caseworker.get("/staff/recoveries/").status_code == 403


def test_finance_records_repayments_until_it_is_repaid(finance1, caseworker):
    recovery = opened(caseworker.user)
    url = f"/staff/recoveries/{recovery.pk}/"
    response = finance1.post(
        f"{url}repayments/", {"amount": 100_000, "paid_on": TODAY.isoformat()}, follow=True
    )
    assert messages_of(response) == [f"환수 #{recovery.pk}에 상환을 기록했습니다."]
    html = response.content.decode()
    assert "100,000원" in html and "233,333원" in html  # repaid, still owed

    too_much = finance1.post(
        f"{url}repayments/", {"amount": 233_334, "paid_on": TODAY.isoformat()}, follow=True
    )
    assert messages_of(too_much) == ["상환액이 남은 환수액보다 많습니다."]
    assert Repayment.objects.count() == 1

    finance1.post(f"{url}repayments/", {"amount": 233_333, "paid_on": TODAY.isoformat()})
    recovery.refresh_from_db()
    assert (recovery.status, recovery.repaid) == ("repaid", PRO_RATA)
    html = finance1.get(url).content.decode()
    assert "repayments/" not in html  # nothing more is owed: no form


@pytest.mark.parametrize(
    "data",
    [
        {"amount": "", "paid_on": TODAY.isoformat()},
        {"amount": "0", "paid_on": TODAY.isoformat()},
        {"amount": "-5", "paid_on": TODAY.isoformat()},
        {"amount": "열만", "paid_on": TODAY.isoformat()},
        {"amount": "1000", "paid_on": ""},
        {"amount": "1000", "paid_on": (TODAY + timedelta(days=1)).isoformat()},
    ],
)
def test_a_bad_repayment_is_refused_and_writes_nothing(finance1, caseworker, data):
    recovery = opened(caseworker.user)
    response = finance1.post(f"/staff/recoveries/{recovery.pk}/repayments/", data, follow=True)
    assert response.status_code == 200
    assert messages_of(response)
    assert not Repayment.objects.exists()


def test_a_waiver_needs_a_second_finance_user(finance1, finance2, caseworker):
    recovery = opened(caseworker.user)
    url = f"/staff/recoveries/{recovery.pk}/"
    asked = finance1.post(f"{url}waive/", {"reason": "생계 곤란"}, follow=True)
    assert messages_of(asked) == [
        f"환수 #{recovery.pk}의 면제를 요청했습니다. 다른 재무 담당자가 승인합니다."
    ]
    refusal = "이 면제를 직접 요청하셨습니다. 다른 재무 담당자가 승인해야 합니다."
    html = asked.content.decode()
    assert refusal in html and "approve-waiver/" not in html  # the button is not theirs

    refused = finance1.post(f"{url}approve-waiver/", follow=True)
    assert messages_of(refused) == [refusal]
    recovery.refresh_from_db()
    assert recovery.status == Recovery.Status.OPEN

    approved = finance2.post(f"{url}approve-waiver/", follow=True)
    assert messages_of(approved) == [
        f"환수 #{recovery.pk}의 면제를 승인했습니다. 더 받을 금액이 없습니다."
    ]
    recovery.refresh_from_db()
    assert (recovery.status, recovery.waived_amount, recovery.waiver_approved_by) == (
        "waived",
        PRO_RATA,
        finance2.user,
    )
    assert "면제" in approved.content.decode() and "생계 곤란" in approved.content.decode()


def test_a_waiver_needs_a_reason(finance1, caseworker):
    recovery = opened(caseworker.user)
    before = AuditEvent.objects.count()
    response = finance1.post(
        f"/staff/recoveries/{recovery.pk}/waive/", {"reason": " "}, follow=True
    )
    assert messages_of(response) == ["사유: 사유를 입력해 주세요."]
    recovery.refresh_from_db()
    assert recovery.waiver_requested_by is None
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.PROGRAM_MANAGER, Role.CASEWORKER])
def test_other_roles_cannot_repay_or_waive(web, caseworker, finance1, role):
    recovery = opened(caseworker.user)
    recovery_waiver_request(recovery=recovery, actor=finance1.user, reason="생계 곤란")
    client = web(role)
    url = f"/staff/recoveries/{recovery.pk}/"
    assert (
        client.post(f"{url}repayments/", {"amount": 1000, "paid_on": TODAY.isoformat()}).status_code
        == 403
    )
    assert client.post(f"{url}waive/", {"reason": "사유"}).status_code == 403
    assert client.post(f"{url}approve-waiver/").status_code == 403
    recovery.refresh_from_db()
    assert (recovery.status, recovery.repaid) == ("open", 0)
    # Managers and auditors read it, without the forms.
    if role != Role.CASEWORKER:
        html = client.get(url).content.decode()
        assert "333,333원" in html and "repayments/" not in html and "approve-waiver/" not in html


def test_the_rounds_ledger_shows_what_was_recovered_and_what_is_owed(finance1, caseworker, web):
    recovery = opened(caseworker.user)
    recovery_repayment_record(recovery=recovery, actor=finance1.user, amount=100_000, paid_on=TODAY)
    manager = web(Role.PROGRAM_MANAGER)
    html = manager.get(f"/staff/rounds/{recovery.application.round_id}/").content.decode()
    ledger = html[html.index('id="h-ledger"') :]
    assert '환수</span><span class="value">100,000원' in ledger
    assert '환수 예정</span><span class="value">233,333원' in ledger
