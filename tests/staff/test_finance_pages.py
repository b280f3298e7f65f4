"""Finance's pages through the Django test client: batches from creation to reconciliation,
maker–checker, the pre-release audit, and every refusal shown as a message."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from benefits.models import Round
from core.models import AuditEvent
from core.roles import Role
from payments.models import BankFile, BatchAuditReading, DisbursementBatch, Payment
from tests.factories import ApplicantFactory, RoundFactory, UserFactory, approved_applications
from tests.staff.conftest import query_count

pytestmark = pytest.mark.django_db


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def finance1(web):
    return web(Role.FINANCE)


@pytest.fixture
def finance2(web):
    return web(Role.FINANCE)


@pytest.fixture
def selected_round(db):
    """A selected round of five recipients with bank accounts."""
    from benefits.selection import round_select

    round_ = RoundFactory(status=Round.Status.CLOSED, capacity=5)
    approved_applications(round_, 5)
    round_select(round_=round_, actor=UserFactory(role=Role.PROGRAM_MANAGER))
    round_.refresh_from_db()
    return round_


@pytest.fixture(autouse=True)
def _run_after_commit(django_capture_on_commit_callbacks, monkeypatch):
    """Build batches as the eager worker does after the commit (the test never commits)."""
    global _capture
    _capture = django_capture_on_commit_callbacks


_capture = None


def approve(client, batch, data=None, **kwargs):
    """Approve as a checker does: from the batch page, with the audit reading it shows."""
    reading = client.get(f"/staff/batches/{batch.pk}/").context["audit_read"].reading_id
    return client.post(
        f"/staff/batches/{batch.pk}/approve/", {"audit_reading": reading, **(data or {})}, **kwargs
    )


def make_batch(client, round_) -> DisbursementBatch:
    with _capture(execute=True):
        response = client.post("/staff/batches/new/", {"round": round_.pk})
    assert response.status_code == 302, response
    return DisbursementBatch.objects.get(round=round_, status="draft")


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (Role.FINANCE, 200),
        (Role.AUDITOR, 200),
        (Role.CASEWORKER, 403),
        (Role.PROGRAM_MANAGER, 403),
        (Role.CITIZEN, 403),
    ],
)
def test_batch_pages_by_role(web, finance1, selected_round, role, expected):
    batch = make_batch(finance1, selected_round)
    client = web(role)
    assert client.get("/staff/batches/").status_code == expected
    assert client.get(f"/staff/batches/{batch.pk}/").status_code == expected


def test_anonymous_goes_to_login():
    assert Client().get("/staff/batches/").status_code == 302


def test_whole_flow_maker_checker_download_disburse_and_reconcile(
    finance1, finance2, selected_round, django_capture_on_commit_callbacks
):
    batch = make_batch(finance1, selected_round)
    page = finance1.get(f"/staff/batches/{batch.pk}/")
    assert page.context["totals"]["payments_count"] == 5
    assert "5,000,000원" in page.content.decode()

    finance1.post(f"/staff/batches/{batch.pk}/submit/")
    batch.refresh_from_db()
    assert batch.status == "pending_approval"

    # The preparer sees why they cannot approve, and a direct POST is refused with it.
    page = finance1.get(f"/staff/batches/{batch.pk}/").content.decode()
    assert "다른 재무 담당자가 승인해야 합니다" in page
    refused = finance1.post(f"/staff/batches/{batch.pk}/approve/", follow=True)
    assert any("다른 재무 담당자가 승인해야" in m for m in messages_of(refused))
    batch.refresh_from_db()
    assert batch.status == "pending_approval"

    # Marking sent before the file left Baeum is refused.
    with django_capture_on_commit_callbacks(execute=True):  # the commit makes the files
        approve(finance2, batch, {"reason": "확인"})
    batch.refresh_from_db()
    assert batch.status == "approved" and batch.approved_by == finance2.user
    early = finance2.post(f"/staff/batches/{batch.pk}/disburse/", follow=True)
    assert any("은행 파일을 먼저 내려받아" in m for m in messages_of(early))

    download = finance2.get(f"/staff/batches/{batch.pk}/export/csv/")
    assert download.status_code == 200
    assert download["Content-Disposition"] == f'attachment; filename="baeum-batch-{batch.pk}.csv"'
    content = b"".join(download.streaming_content).decode()
    assert content.startswith("reference,bank_code,account_number")
    bank_file = BankFile.objects.get(batch=batch, format="csv")
    assert bank_file.downloaded_by == finance2.user
    assert AuditEvent.objects.filter(action="batch.file_downloaded", actor=finance2.user).exists()

    finance2.post(f"/staff/batches/{batch.pk}/disburse/")
    batch.refresh_from_db()
    assert batch.status == "sent"

    references = [line.split(",")[0] for line in content.splitlines()[1:]]
    result = "reference,result,reason\n" + "".join(
        f"{ref},{'failed' if i == 0 else 'paid'},{'계좌 없음' if i == 0 else ''}\n"
        for i, ref in enumerate(references)
    )
    response = finance2.post(
        f"/staff/batches/{batch.pk}/results/",
        {"file": SimpleUploadedFile("result.csv", result.encode())},
        follow=True,
    )
    assert any("지급 완료 4건" in m for m in messages_of(response))
    batch.refresh_from_db()
    assert batch.status == "reconciled"
    assert "대사 완료" in response.content.decode()


def test_a_rejected_result_file_lists_its_lines_and_changes_nothing(
    finance1, finance2, selected_round, django_capture_on_commit_callbacks
):
    batch = make_batch(finance1, selected_round)
    finance1.post(f"/staff/batches/{batch.pk}/submit/")
    with django_capture_on_commit_callbacks(execute=True):  # the commit makes the files
        approve(finance2, batch)
    finance2.get(f"/staff/batches/{batch.pk}/export/pain001/")
    finance2.post(f"/staff/batches/{batch.pk}/disburse/")
    bad = b"reference,result,reason\nNOT-OURS,paid,\n"
    response = finance2.post(
        f"/staff/batches/{batch.pk}/results/",
        {"file": SimpleUploadedFile("r.csv", bad)},
        follow=True,
    )
    shown = messages_of(response)
    assert any("결과 파일이 거부되어" in m for m in shown)
    assert any("Line 2" in m for m in shown)
    assert Payment.objects.filter(batch=batch, status="sent").count() == 5
    missing = finance2.post(f"/staff/batches/{batch.pk}/results/", {}, follow=True)
    assert missing.status_code == 200 and messages_of(missing)


def test_pre_release_audit_flags_and_hold_out_before_approval_only(
    finance1, finance2, selected_round
):
    # Two recipients share one account: both are flagged.
    payments = list(selected_round.applications.select_related("applicant")[:2])
    shared = payments[0].applicant
    ApplicantFactory._meta.model.objects.filter(pk=payments[1].applicant_id).update(
        account_fingerprint=shared.account_fingerprint
    )
    batch = make_batch(finance1, selected_round)
    page = finance1.get(f"/staff/batches/{batch.pk}/")
    assert page.context["audit_summary"]["shared_account"] == 2
    flagged = [p.pk for p in page.context["audit"]]
    assert len(flagged) == 2
    assert "한 계좌로 여러 명 지급" in page.content.decode()

    no_reason = finance1.post(f"/staff/batches/{batch.pk}/payments/{flagged[0]}/hold/", follow=True)
    assert any("사유" in m for m in messages_of(no_reason))
    finance1.post(f"/staff/batches/{batch.pk}/payments/{flagged[0]}/hold/", {"reason": "계좌 확인"})
    held = Payment.objects.get(pk=flagged[0])
    assert held.status == "cancelled" and held.hold_reason == "계좌 확인"
    twice = finance1.post(
        f"/staff/batches/{batch.pk}/payments/{flagged[0]}/hold/", {"reason": "다시"}, follow=True
    )
    assert any("이미 처리되었을 수 있습니다" in m for m in messages_of(twice))

    finance1.post(f"/staff/batches/{batch.pk}/submit/")
    approve(finance2, batch)
    page = finance2.get(f"/staff/batches/{batch.pk}/")
    assert page.context["audit"] is None and not page.context["can_hold"]
    late = finance2.post(
        f"/staff/batches/{batch.pk}/payments/{flagged[1]}/hold/", {"reason": "늦음"}, follow=True
    )
    assert messages_of(late)
    assert Payment.objects.get(pk=flagged[1]).status == "pending"


def share_an_account(round_) -> None:
    """After their batch was built, the second recipient gives the first one's account:
    the first's payment is now to an account someone else gives (shared_account), the
    second's to an account its payee no longer gives (account_changed)."""
    first, second = round_.applications.order_by("id")[:2]
    ApplicantFactory._meta.model.objects.filter(pk=second.applicant_id).update(
        account_fingerprint=first.applicant.account_fingerprint
    )


def test_the_page_shows_the_audit_as_read_and_reads_it_again_when_asked_or_when_old(
    finance1, selected_round, settings
):
    batch = make_batch(finance1, selected_round)  # the build reads the audit
    share_an_account(selected_round)
    page = finance1.get(f"/staff/batches/{batch.pk}/")
    assert page.context["audit"].paginator.count == 0
    assert "확인 시각" in page.content.decode()

    response = finance1.post(f"/staff/batches/{batch.pk}/audit/", follow=True)
    assert any("다시 확인했습니다" in m for m in messages_of(response))
    page = finance1.get(f"/staff/batches/{batch.pk}/")
    summary = page.context["audit_summary"]
    assert (summary["shared_account"], summary["account_changed"]) == (1, 1)
    assert page.context["audit"].paginator.count == 2

    # Holding one out counts at once, without reading the audit again.
    flagged = [p.pk for p in page.context["audit"]]
    finance1.post(f"/staff/batches/{batch.pk}/payments/{flagged[0]}/hold/", {"reason": "확인"})
    page = finance1.get(f"/staff/batches/{batch.pk}/")
    assert page.context["audit"].paginator.count == 1
    assert [p.pk for p in page.context["audit"]] == flagged[1:]

    # A reading older than BAEUM_AUDIT_MAX_AGE is not shown: the page reads it again.
    ApplicantFactory._meta.model.objects.update(account_changed_at=timezone.now())
    assert finance1.get(f"/staff/batches/{batch.pk}/").context["audit"].paginator.count == 1
    settings.BAEUM_AUDIT_MAX_AGE = timedelta(0)
    assert finance1.get(f"/staff/batches/{batch.pk}/").context["audit"].paginator.count == 4


def test_an_approval_is_refused_when_a_payment_was_flagged_since_the_audit_it_was_made_from(
    finance1, finance2, selected_round
):
    batch = make_batch(finance1, selected_round)
    finance1.post(f"/staff/batches/{batch.pk}/submit/")
    seen = finance2.get(f"/staff/batches/{batch.pk}/").context["audit_read"].reading_id
    share_an_account(selected_round)

    refused = finance2.post(
        f"/staff/batches/{batch.pk}/approve/", {"audit_reading": seen}, follow=True
    )
    assert any("확인한 뒤 새로 표시된 지급" in m for m in messages_of(refused))
    batch.refresh_from_db()
    assert batch.status == "pending_approval" and batch.approved_by is None
    # The page now shows the audit read again, the two flagged payments in it.
    assert refused.context["audit"].paginator.count == 2

    approve(finance2, batch)  # from the reading that shows them
    batch.refresh_from_db()
    assert batch.status == "approved" and batch.approved_by == finance2.user


@pytest.mark.parametrize("reading", ["", "0", "abc", "²", "9" * 30, "other batch's"])
def test_an_approval_must_name_a_reading_of_this_batch(finance1, finance2, selected_round, reading):
    batch = make_batch(finance1, selected_round)
    finance1.post(f"/staff/batches/{batch.pk}/submit/")
    if reading == "other batch's":
        other = DisbursementBatch.objects.create(round=selected_round, prepared_by=finance1.user)
        reading = BatchAuditReading.objects.create(batch=other, read_at=timezone.now()).pk
    response = finance2.post(
        f"/staff/batches/{batch.pk}/approve/", {"audit_reading": reading}, follow=True
    )
    assert response.status_code == 200
    assert any("확인한 뒤 새로 표시된 지급" in m for m in messages_of(response))
    batch.refresh_from_db()
    assert batch.status == "pending_approval"


def test_cancel_needs_a_reason_and_only_before_sending(finance1, selected_round):
    batch = make_batch(finance1, selected_round)
    finance1.post(f"/staff/batches/{batch.pk}/cancel/")
    batch.refresh_from_db()
    assert batch.status == "draft"
    finance1.post(f"/staff/batches/{batch.pk}/cancel/", {"reason": "금액 재확인"})
    batch.refresh_from_db()
    assert batch.status == "cancelled"
    again = finance1.post(f"/staff/batches/{batch.pk}/cancel/", {"reason": "x"}, follow=True)
    assert again.status_code == 200 and messages_of(again)


def test_a_round_not_selected_is_refused_with_a_message(finance1):
    round_ = RoundFactory(status=Round.Status.CLOSED)
    response = finance1.post("/staff/batches/new/", {"round": round_.pk}, follow=True)
    assert response.status_code == 200
    assert messages_of(response)
    assert not DisbursementBatch.objects.exists()


def test_settlement_needs_a_voucher_round_and_an_ordered_period(finance1, selected_round):
    response = finance1.post(
        "/staff/batches/new-settlement/",
        {
            "round": selected_round.pk,
            "period_starts_on": "2026-02-01",
            "period_ends_on": "2026-01-01",
        },
        follow=True,
    )
    assert response.status_code == 200 and messages_of(response)
    assert not DisbursementBatch.objects.exists()


def test_auditor_reads_batches_but_changes_nothing(web, finance1, selected_round):
    batch = make_batch(finance1, selected_round)
    auditor = web(Role.AUDITOR)
    page = auditor.get(f"/staff/batches/{batch.pk}/").content.decode()
    assert "/submit/" not in page and "/hold/" not in page
    assert auditor.post(f"/staff/batches/{batch.pk}/submit/").status_code == 403
    assert auditor.post("/staff/batches/new/", {"round": selected_round.pk}).status_code == 403
    assert auditor.get(f"/staff/batches/{batch.pk}/export/csv/").status_code == 403
    batch.refresh_from_db()
    assert batch.status == "draft"


def test_batch_post_needs_the_csrf_token(finance1, selected_round):
    batch = make_batch(finance1, selected_round)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(finance1.user)
    assert strict.post(f"/staff/batches/{batch.pk}/submit/").status_code == 403


def test_list_and_batch_pages_run_a_fixed_number_of_queries(finance1):
    from benefits.selection import round_select

    round_ = RoundFactory(status=Round.Status.CLOSED, capacity=60)
    approved_applications(round_, 60)
    round_select(round_=round_, actor=UserFactory(role=Role.PROGRAM_MANAGER))
    batch = make_batch(finance1, round_)
    for _ in range(30):
        DisbursementBatch.objects.create(
            round=round_, prepared_by=finance1.user, build_status="ready", status="cancelled"
        )
    listed = [query_count(finance1, "/staff/batches/", {"per_page": n}) for n in (25, 100)]
    assert listed[0] == listed[1] <= 12
    shown = [
        query_count(finance1, f"/staff/batches/{batch.pk}/", {"per_page": n}) for n in (25, 50)
    ]
    assert shown[0] == shown[1] <= 22


def test_the_batch_page_shows_the_pre_release_audit(finance1, selected_round):
    """Shared accounts inside and outside the batch, counted and listed on the page."""
    from benefits.models import Applicant

    applicants = list(Applicant.objects.filter(applications__round=selected_round).order_by("id"))
    # Two payees of the batch share one account; a third shares with someone outside it.
    Applicant.objects.filter(pk=applicants[1].pk).update(
        account_fingerprint=applicants[0].account_fingerprint
    )
    ApplicantFactory(account_fingerprint=applicants[2].account_fingerprint)
    batch = make_batch(finance1, selected_round)
    held = Payment.objects.filter(batch=batch).order_by("id").first()
    finance1.post(f"/staff/batches/{batch.pk}/payments/{held.pk}/hold/", {"reason": "확인"})
    page = finance1.get(f"/staff/batches/{batch.pk}/")
    # The held payment is out of the audit; its twin and the one shared outside stay.
    assert page.context["audit_summary"]["shared_account"] == 2
    listed = {p.pk for p in page.context["audit"].object_list}
    assert held.pk not in listed and len(listed) == 2
