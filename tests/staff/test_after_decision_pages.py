"""The caseworker's pages after the decision, through the Django test client: the appeals
queue with the days left to decide, the appeal's decision (never by the caseworker who
rejected), the eligibility_changed flag and its clearing, revoking an approval before
payment, resolving a duplicate match, and the batch page's holds for changed eligibility.

Each action works for a caseworker, is a 403 for the auditor and finance, and without a
reason is a form error that writes nothing."""

from datetime import timedelta

import pytest
from django.utils import timezone

from benefits import after_decision, services
from benefits.models import Appeal, Application, ApplicationFlag, Round
from core.models import AuditEvent
from core.roles import Role
from eligibility import rules
from eligibility.models import MatchResolution
from payments import services as payment_services
from payments.models import Payment
from tests.factories import ApplicantFactory, ApplicationFactory, RoundFactory, UserFactory
from tests.staff.conftest import query_count, screened, under_review

pytestmark = pytest.mark.django_db

NOT_IN_REGISTRY = {
    "rule": "income_status",
    "outcome": "fail",
    "code": "not_in_social_security_registry",
    "evidence": {"source": "social_security"},
}
NAEILBAEUM_BLOCKS = {
    "rule": "no_duplicate_benefit",
    "outcome": "fail",
    "code": "duplicate_naeilbaeum",
    "evidence": {
        "matches": [
            {
                "course_id": "AIG2026X0009",
                "training_from": "2026-04-01",
                "training_to": "2026-07-31",
            }
        ]
    },
}
# The Korean message of each cause, as the page shows it.
NOT_IN_REGISTRY_KO = rules.MESSAGES["not_in_social_security_registry"][1]
NAEILBAEUM_KO = rules.MESSAGES["duplicate_naeilbaeum"][1]


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def page(client, application):
    return client.get(f"/staff/review/{application.pk}/")


def post(client, application, action: str, data: dict):
    """Post a form of the application page and follow the redirect back to it."""
    return client.post(f"/staff/review/{application.pk}/{action}/", data, follow=True)


def audit_count() -> int:
    return AuditEvent.objects.count()


@pytest.fixture
def rejecter(web):
    return web(Role.CASEWORKER)


@pytest.fixture
def caseworker(web):
    return web(Role.CASEWORKER)


def appealed(rejecter_user, *, filed_days_ago: int = 0, **fields) -> Application:
    """An application rejected by `rejecter_user`, appealed by its citizen."""
    application = under_review(**fields)
    services.application_reject(
        application=application, actor=rejecter_user, reason="훈련 과정 확인 불가"
    )
    application = after_decision.application_appeal_file(
        applicant=application.applicant,
        pk=application.pk,
        actor=application.applicant.user,
        reason="수료 예정 확인서를 첨부합니다.",
    )
    if filed_days_ago:
        filed = timezone.now() - timedelta(days=filed_days_ago)
        Appeal.objects.filter(application=application).update(
            filed_at=filed,
            deadline=timezone.localdate(filed)
            + timedelta(days=application.round.appeal_decision_days),
        )
    return application


def flagged(*, causes=(NOT_IN_REGISTRY,), status=Application.Status.SELECTED, **fields):
    """A decided application that a re-check flagged: its eligibility changed."""
    application = ApplicationFactory(status=status, submitted_at=timezone.now(), **fields)
    ApplicationFlag.objects.create(
        application=application,
        kind=ApplicationFlag.Kind.ELIGIBILITY_CHANGED,
        causes=list(causes),
        summary="; ".join(c["code"] for c in causes),
        trigger_key="recheck:test",
        raised_at=timezone.now(),
    )
    return application


# The appeals queue


def test_the_appeals_filter_lists_appeals_oldest_first_with_the_days_left(rejecter, caseworker):
    # Submitted first but appealed last: the queue follows the appeals.
    recent = appealed(rejecter.user, applicant=ApplicantFactory(legal_name="나중이"))
    overdue = appealed(
        rejecter.user, filed_days_ago=33, applicant=ApplicantFactory(legal_name="늦은이")
    )
    older = appealed(
        rejecter.user, filed_days_ago=10, applicant=ApplicantFactory(legal_name="먼저이")
    )
    under_review(applicant=ApplicantFactory(legal_name="심사중"))

    response = caseworker.get("/staff/review/", {"flag": "appeal"})
    rows = [row["application"].pk for row in response.context["rows"]]
    assert rows == [overdue.pk, older.pk, recent.pk]
    html = response.content.decode()
    assert "심사중" not in html
    assert "기한 3일 지남" in html  # 30 days to decide, filed 33 days ago
    assert "20일 남음" in html and "30일 남음" in html
    assert 'class="badge badge-bad"' in html
    # The quick filter names it in Korean.
    assert ">이의신청</a>" in html


def test_next_application_follows_the_appeals_in_their_order(rejecter, caseworker):
    recent = appealed(rejecter.user)
    older = appealed(rejecter.user, filed_days_ago=5)
    oldest = appealed(rejecter.user, filed_days_ago=9)
    queue = {"flag": "appeal"}

    def next_of(application):
        return caseworker.get(f"/staff/review/{application.pk}/", queue).context["next_id"]

    assert [next_of(oldest), next_of(older), next_of(recent)] == [older.pk, recent.pk, oldest.pk]
    # Decided, an appeal leaves the queue: "next" is the oldest one still waiting.
    response = caseworker.post(
        f"/staff/review/{oldest.pk}/appeal-decision/",
        {"outcome": "upheld", "reason": "요건 미충족", "queue": "flag=appeal"},
    )
    assert response["Location"] == f"/staff/review/{oldest.pk}/?flag=appeal#appeal"
    assert next_of(oldest) == older.pk


def test_the_appeal_filter_counts_queries_whatever_the_page_size(rejecter, caseworker):
    for _ in range(3):
        appealed(rejecter.user)
    counts = [
        query_count(caseworker, "/staff/review/", {"flag": "appeal", "per_page": n})
        for n in (25, 100)
    ]
    assert counts[0] == counts[1] <= 10  # the page's ids, then its rows (IdsFirst)


def test_the_eligibility_changed_filter_shows_flagged_decided_applications(caseworker):
    changed = flagged(applicant=ApplicantFactory(legal_name="변동자"))
    ApplicationFactory(status=Application.Status.SELECTED, submitted_at=timezone.now())
    response = caseworker.get("/staff/review/", {"flag": "eligibility_changed"})
    assert [row["application"].pk for row in response.context["rows"]] == [changed.pk]
    assert "자격 변동" in response.content.decode()


# Deciding an appeal


def test_another_caseworker_overturns_an_appeal_and_the_page_shows_it(rejecter, caseworker):
    application = appealed(rejecter.user)
    shown = page(caseworker, application).content.decode()
    assert "수료 예정 확인서를 첨부합니다." in shown
    assert "30일 남음" in shown
    assert f'action="/staff/review/{application.pk}/appeal-decision/"' in shown

    response = post(
        caseworker,
        application,
        "appeal-decision",
        {"outcome": "overturned", "reason": "수료 예정 확인서로 확인"},
    )
    assert response.status_code == 200
    assert messages_of(response) == [
        f"신청 #{application.pk}의 이의신청을 인용했습니다. 신청이 승인되었습니다."
    ]
    application.refresh_from_db()
    assert application.status == Application.Status.APPROVED
    appeal = Appeal.objects.get(application=application)
    assert (appeal.outcome, appeal.decision_reason, appeal.decided_by) == (
        "overturned",
        "수료 예정 확인서로 확인",
        caseworker.user,
    )
    html = response.content.decode()
    assert "인용 (승인)" in html and "수료 예정 확인서로 확인" in html
    assert "appeal-decision/" not in html  # decided: no form any more


def test_an_upheld_appeal_is_final_on_the_page(rejecter, caseworker):
    application = appealed(rejecter.user)
    response = post(
        caseworker, application, "appeal-decision", {"outcome": "upheld", "reason": "요건 미충족"}
    )
    assert messages_of(response) == [
        f"신청 #{application.pk}의 이의신청을 기각했습니다. 반려가 확정되었습니다."
    ]
    application.refresh_from_db()
    assert (application.status, application.rejection_final) == ("rejected", True)


def test_the_caseworker_who_rejected_cannot_decide_the_appeal(rejecter):
    application = appealed(rejecter.user)
    shown = page(rejecter, application).content.decode()
    refusal = "이의신청 대상 결정을 내린 심사자입니다. 이의신청은 다른 심사자가 결정해야 합니다."
    assert refusal in shown
    assert "appeal-decision/" not in shown  # the form is not theirs
    before = audit_count()

    # Posted anyway: the service refuses, in Korean, and nothing changes.
    response = post(
        rejecter, application, "appeal-decision", {"outcome": "overturned", "reason": "재검토"}
    )
    assert messages_of(response) == [refusal]
    application.refresh_from_db()
    assert application.status == Application.Status.APPEALED
    assert Appeal.objects.get(application=application).outcome == ""
    assert audit_count() == before


@pytest.mark.parametrize(
    "data",
    [
        {"outcome": "overturned", "reason": ""},
        {"outcome": "overturned", "reason": "   "},
        {"outcome": "", "reason": "사유"},
        {"outcome": "approved", "reason": "사유"},
    ],
)
def test_an_appeal_decision_without_a_reason_or_outcome_writes_nothing(rejecter, caseworker, data):
    application = appealed(rejecter.user)
    before = audit_count()
    response = post(caseworker, application, "appeal-decision", data)
    assert response.status_code == 200
    assert messages_of(response)  # the form's error, on the page
    application.refresh_from_db()
    assert application.status == Application.Status.APPEALED
    assert Appeal.objects.get(application=application).outcome == ""
    assert audit_count() == before


def test_a_blank_reason_is_named_in_korean(rejecter, caseworker):
    application = appealed(rejecter.user)
    response = post(caseworker, application, "appeal-decision", {"outcome": "upheld"})
    assert messages_of(response) == ["사유 (신청인에게 안내됩니다): 사유를 입력해 주세요."]


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.FINANCE, Role.PROGRAM_MANAGER])
def test_other_roles_cannot_decide_an_appeal(web, rejecter, role):
    application = appealed(rejecter.user)
    client = web(role)
    response = client.post(
        f"/staff/review/{application.pk}/appeal-decision/",
        {"outcome": "overturned", "reason": "사유"},
    )
    assert response.status_code == 403
    assert Application.objects.get(pk=application.pk).status == Application.Status.APPEALED


def test_the_auditor_reads_the_appeal_without_a_form(web, rejecter):
    application = appealed(rejecter.user)
    shown = page(web(Role.AUDITOR), application).content.decode()
    assert "수료 예정 확인서를 첨부합니다." in shown
    assert "appeal-decision/" not in shown


# The eligibility_changed flag


def test_the_flag_shows_its_causes_and_a_caseworker_clears_it(caseworker):
    application = flagged(causes=[NOT_IN_REGISTRY, NAEILBAEUM_BLOCKS])
    shown = page(caseworker, application).content.decode()
    assert "결정 후 자격 변동" in shown
    assert NOT_IN_REGISTRY_KO in shown and NAEILBAEUM_KO in shown
    assert "내일배움카드" in shown and "2026-04-01 – 2026-07-31" in shown

    response = post(
        caseworker,
        application,
        "clear-flag",
        {"flag": "eligibility_changed", "reason": "갱신 신청 중 확인"},
    )
    assert messages_of(response) == [
        f"신청 #{application.pk}의 표시를 해제했습니다. 다음 배치에서 지급할 수 있습니다."
    ]
    flag = ApplicationFlag.objects.get(application=application)
    assert (flag.cleared_by, flag.clear_reason) == (caseworker.user, "갱신 신청 중 확인")
    html = response.content.decode()
    assert "clear-flag/" not in html  # nothing open any more
    assert "갱신 신청 중 확인" in html and caseworker.user.username in html
    assert AuditEvent.objects.filter(action="application.flag_cleared").count() == 1


def test_clearing_a_flag_needs_a_reason(caseworker):
    application = flagged()
    before = audit_count()
    response = post(caseworker, application, "clear-flag", {"flag": "eligibility_changed"})
    assert messages_of(response) == [
        "지급을 진행해도 되는 이유 (기록됩니다): 사유를 입력해 주세요."
    ]
    assert ApplicationFlag.objects.get(application=application).cleared_at is None
    assert audit_count() == before


def test_a_flag_cleared_already_is_said_so(caseworker, web):
    application = flagged()
    other = web(Role.CASEWORKER)
    post(other, application, "clear-flag", {"flag": "eligibility_changed", "reason": "확인"})
    response = post(
        caseworker, application, "clear-flag", {"flag": "eligibility_changed", "reason": "확인"}
    )
    assert messages_of(response) == [
        "이 표시는 이미 해제되었을 수 있습니다. 화면에 현재 상태를 표시합니다."
    ]
    assert ApplicationFlag.objects.get(application=application).cleared_by == other.user


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.FINANCE])
def test_other_roles_cannot_clear_a_flag(web, role):
    application = flagged()
    response = web(role).post(
        f"/staff/review/{application.pk}/clear-flag/",
        {"flag": "eligibility_changed", "reason": "사유"},
    )
    assert response.status_code == 403
    assert ApplicationFlag.objects.get(application=application).cleared_at is None


# Revoking an approval


def test_a_caseworker_revokes_an_approval_before_payment(caseworker):
    application = flagged(status=Application.Status.APPROVED)
    assert (
        f'action="/staff/review/{application.pk}/revoke/"'
        in page(caseworker, application).content.decode()
    )
    response = post(caseworker, application, "revoke", {"reason": "기초생활수급 자격 종료"})
    assert messages_of(response) == [f"신청 #{application.pk}의 승인을 취소했습니다."]
    application.refresh_from_db()
    assert (application.status, application.decision_reason) == (
        "rejected",
        "기초생활수급 자격 종료",
    )
    # Revoking clears the flag it answered.
    assert ApplicationFlag.objects.get(application=application).cleared_at is not None


def test_revoking_needs_a_reason(caseworker):
    application = flagged(status=Application.Status.APPROVED)
    before = audit_count()
    response = post(caseworker, application, "revoke", {"reason": ""})
    assert messages_of(response) == ["사유: 사유를 입력해 주세요."]
    assert Application.objects.get(pk=application.pk).status == Application.Status.APPROVED
    assert audit_count() == before


def test_no_revoking_once_a_payment_exists(caseworker):
    round_ = RoundFactory(status=Round.Status.SELECTED, capacity=1)
    application = flagged(round=round_, causes=[NOT_IN_REGISTRY])
    ApplicationFlag.objects.filter(application=application).update(
        cleared_at=timezone.now(), clear_reason="확인"
    )
    finance = UserFactory(role=Role.FINANCE)
    batch = payment_services.batch_build(
        batch_id=payment_services.batch_create(round_=round_, actor=finance).pk
    )
    assert Payment.objects.get(batch=batch).status == Payment.Status.PENDING

    shown = page(caseworker, application).content.decode()
    assert "revoke/" not in shown
    assert "이 신청의 지급이 있어 여기서 승인을 취소할 수 없습니다." in shown
    response = post(caseworker, application, "revoke", {"reason": "자격 종료"})
    assert messages_of(response)  # refused by the service, on the page
    assert Application.objects.get(pk=application.pk).status == Application.Status.SELECTED


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.FINANCE])
def test_other_roles_cannot_revoke(web, role):
    application = flagged(status=Application.Status.APPROVED)
    response = web(role).post(f"/staff/review/{application.pk}/revoke/", {"reason": "사유"})
    assert response.status_code == 403
    assert Application.objects.get(pk=application.pk).status == Application.Status.APPROVED


# Resolving a duplicate match


def _match_id(application) -> str:
    run = application.screening_runs.get(is_current=True)
    match = run.duplicate_matches()[0]
    record = rules.match_records(match["registry"], match["evidence"])[0]
    return rules.match_id(match["registry"], record)


def test_a_caseworker_resolves_a_match_and_the_page_shows_who_and_when(caseworker):
    application = under_review()
    screened(application, duplicate=True)
    match_id = _match_id(application)
    shown = page(caseworker, application).content.decode()
    assert f"/matches/{match_id}/resolve/" in shown
    assert "2026-03-01 – 2026-06-30 (과정 AIG2026X0001)" in shown

    response = post(
        caseworker,
        application,
        f"matches/{match_id}/resolve",
        {"resolution": "not_the_same_person", "reason": "생년월일 다름"},
    )
    assert messages_of(response) == [f"신청 #{application.pk}의 중복을 판정했습니다."]
    resolution = MatchResolution.objects.get(application=application)
    assert (resolution.resolution, resolution.reason, resolution.resolved_by) == (
        "not_the_same_person",
        "생년월일 다름",
        caseworker.user,
    )
    html = response.content.decode()
    assert "판정한 중복" in html and "동일인 아님" in html and "생년월일 다름" in html
    assert caseworker.user.username in html
    assert AuditEvent.objects.filter(action="application.match_resolved").count() == 1


@pytest.mark.parametrize(
    "data",
    [
        {"resolution": "not_the_same_person", "reason": ""},
        {"resolution": "", "reason": "사유"},
        {"resolution": "probably_fine", "reason": "사유"},
    ],
)
def test_a_resolution_without_a_reason_or_judgement_writes_nothing(caseworker, data):
    application = under_review()
    screened(application, duplicate=True)
    before = audit_count()
    response = post(caseworker, application, f"matches/{_match_id(application)}/resolve", data)
    assert messages_of(response)
    assert not MatchResolution.objects.exists()
    assert audit_count() == before


def test_a_match_that_is_not_the_applications_is_a_404(caseworker):
    application = under_review()
    screened(application, duplicate=True)
    response = caseworker.post(
        f"/staff/review/{application.pk}/matches/naeilbaeum.0000000000/resolve/",
        {"resolution": "not_the_same_person", "reason": "사유"},
    )
    assert response.status_code == 404
    assert not MatchResolution.objects.exists()


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.FINANCE])
def test_other_roles_cannot_resolve_a_match(web, role):
    application = under_review()
    screened(application, duplicate=True)
    response = web(role).post(
        f"/staff/review/{application.pk}/matches/{_match_id(application)}/resolve/",
        {"resolution": "not_the_same_person", "reason": "사유"},
    )
    assert response.status_code == 403
    assert not MatchResolution.objects.exists()


# The batch page


def test_the_batch_page_shows_holds_and_flags_for_changed_eligibility_with_the_cause(web):
    round_ = RoundFactory(status=Round.Status.SELECTED, capacity=3)
    held = flagged(round=round_, causes=[NAEILBAEUM_BLOCKS])
    later = ApplicationFactory(round=round_, status=Application.Status.SELECTED)
    ApplicationFactory(round=round_, status=Application.Status.SELECTED)
    finance = web(Role.FINANCE)
    batch = payment_services.batch_build(
        batch_id=payment_services.batch_create(round_=round_, actor=finance.user).pk
    )
    assert Payment.objects.get(application=held).status == Payment.Status.CANCELLED
    # Flagged after the batch was built: pending, in the pre-release audit.
    ApplicationFlag.objects.create(
        application=later,
        kind=ApplicationFlag.Kind.ELIGIBILITY_CHANGED,
        causes=[NOT_IN_REGISTRY],
        summary=NOT_IN_REGISTRY["code"],
        raised_at=timezone.now(),
    )
    finance.post(f"/staff/batches/{batch.pk}/audit/")  # read the audit again

    response = finance.get(f"/staff/batches/{batch.pk}/")
    html = response.content.decode()
    assert "자격 변동으로 보류된 지급" in html
    assert [p.application_id for p in response.context["held"]] == [held.pk]
    assert NAEILBAEUM_KO in html and "2026-04-01 – 2026-07-31" in html
    assert "심사자 확인 대기" in html
    assert [p.application_id for p in response.context["audit"]] == [later.pk]
    assert NOT_IN_REGISTRY_KO in html
    assert "결정 후 자격 변동" in html  # the audit flag's badge

    # Cleared by a caseworker: the hold says who and why.
    after_decision.application_flag_clear(
        application=held,
        actor=UserFactory(role=Role.CASEWORKER),
        flag="eligibility_changed",
        reason="중복 아님 확인",
    )
    html = finance.get(f"/staff/batches/{batch.pk}/").content.decode()
    assert "중복 아님 확인" in html


def test_the_batch_page_with_holds_counts_queries_whatever_the_page_size(web):
    round_ = RoundFactory(status=Round.Status.SELECTED, capacity=6)
    for _ in range(3):
        flagged(round=round_)
    for _ in range(3):
        ApplicationFactory(round=round_, status=Application.Status.SELECTED)
    finance = web(Role.FINANCE)
    batch = payment_services.batch_build(
        batch_id=payment_services.batch_create(round_=round_, actor=finance.user).pk
    )
    shown = [query_count(finance, f"/staff/batches/{batch.pk}/", {"per_page": n}) for n in (25, 50)]
    assert shown[0] == shown[1] <= 25
