"""Training drop-outs and recovery (환수): a caseworker records that a recipient's training
ended early; before payment the approval is revoked, after it a recovery opens for what the
round's rule says; finance records repayments (never more than owed) and waivers (approved
by another finance user); the citizen reads her own case; the round's ledger shows it."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from benefits.models import Application, Document, Notification, Program, Round
from core.exceptions import DomainError
from core.models import AuditEvent
from core.roles import Role
from payments import exports, services
from payments.imports import bank_results_import
from payments.models import BankFile, DisbursementBatch, Payment, Recovery, Repayment
from payments.recoveries import recovery_amount
from payments.selectors import round_budget_ledger
from tests.api.test_documents import PDF
from tests.factories import ApplicationFactory, ProgramFactory, RoundFactory, UserFactory

pytestmark = pytest.mark.django_db

API = "/api/v1"
TODAY = timezone.localdate()
# A 300-day training (both ends counted) that ends in ten days; the recipient last
# attended 100 days before its end: 200 days attended, 100 not.
STARTS = TODAY - timedelta(days=289)
ENDS = TODAY + timedelta(days=10)
ENDED = TODAY - timedelta(days=90)
PAID = 1_000_000
PRO_RATA = 333_333  # 1,000,000 × 100 / 300 = 333,333.3…, rounded down


def selected(
    *, rule: str = "pro_rata", program: Program | None = None, amount: int = PAID, **fields
) -> Application:
    """A selected recipient of a round of her own, in training from STARTS to ENDS."""
    round_ = RoundFactory(
        program=program or ProgramFactory(),
        status=Round.Status.SELECTED,
        capacity=1,
        amount=amount,
        recovery_rule=rule,
    )
    fields = {
        "status": Application.Status.SELECTED,
        "training_starts_on": STARTS,
        "training_ends_on": ENDS,
        **fields,
    }
    return ApplicationFactory(round=round_, **fields)


def approved_batch(round_: Round) -> DisbursementBatch:
    """The round's batch, prepared by one finance user and approved by another."""
    maker, checker = UserFactory(role=Role.FINANCE), UserFactory(role=Role.FINANCE)
    batch = services.batch_build(batch_id=services.batch_create(round_=round_, actor=maker).pk)
    batch = services.batch_submit(batch=batch, actor=maker)
    return services.batch_approve(batch=batch, actor=checker)


def sent(batch: DisbursementBatch) -> DisbursementBatch:
    """The batch's bank file made, downloaded and the batch marked sent."""
    exports.bank_file_generate(batch_id=batch.pk, fmt=BankFile.Format.CSV)
    b"".join(exports.bank_file_for_download(batch=batch, fmt="csv", actor=batch.prepared_by)[1])
    return services.batch_disburse(batch=batch, actor=batch.prepared_by)


def pay(round_: Round) -> None:
    """Pay every selected recipient of a bank round through the services, to the bank's
    result file that says each was paid."""
    batch = sent(approved_batch(round_))
    lines = ["reference,result,reason", *(f"{p.reference},paid," for p in batch.payments.all())]
    bank_results_import(batch=batch, actor=batch.prepared_by, data="\n".join(lines).encode())


def paid(**fields) -> Application:
    """A selected recipient paid through the services (batch, approval, bank results)."""
    application = selected(**fields)
    pay(application.round)
    assert application.payments.get().status == Payment.Status.PAID
    return application


def training_ended(client, application, ended_on=ENDED, reason="수강 포기 (기관 통보)", **extra):
    body = {"ended_on": str(ended_on), "reason": reason, **extra}
    return client.post(
        f"{API}/review/applications/{application.pk}/training-ended/",
        body,
        format="multipart" if "evidence" in extra else "json",
    )


def repay(client, recovery_id, amount, paid_on=TODAY, **headers):
    return client.post(
        f"{API}/recoveries/{recovery_id}/repayments/",
        {"amount": amount, "paid_on": str(paid_on)},
        format="json",
        **headers,
    )


def error(response) -> tuple:
    first = response.json()["errors"][0]
    return first["attr"], first["code"]


@pytest.fixture
def recovery(caseworker):
    """An open pro-rata recovery of 333,333 KRW, made through the API."""
    application = paid()
    response = training_ended(caseworker, application)
    assert response.status_code == 200, response.json()
    return Recovery.objects.get(pk=response.json()["recovery"]["id"])


def test_a_drop_out_after_payment_opens_a_recovery_of_the_days_not_attended(caseworker):
    application = paid()

    response = training_ended(caseworker, application)

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "selected"  # the decision stands: the money is claimed back
    assert body["recovery"]["amount"] == PRO_RATA
    detail = caseworker.get(f"{API}/recoveries/{body['recovery']['id']}/").json()
    assert {k: detail[k] for k in ("application", "amount", "repaid", "outstanding", "status")} == {
        "application": application.pk,
        "amount": PRO_RATA,
        "repaid": 0,
        "outstanding": PRO_RATA,
        "status": "open",
    }
    assert detail["due_on"] == str(TODAY + timedelta(days=30))
    assert (detail["training_days"], detail["days_not_attended"]) == (300, 100)
    message = Notification.objects.get(application=application, kind="recovery_opened")
    assert "333,333" in message.body and str(TODAY + timedelta(days=30)) in message.body
    assert AuditEvent.objects.filter(
        action="application.training_ended", object_id=str(application.pk)
    ).exists()
    assert AuditEvent.objects.filter(action="recovery.opened").count() == 1


def test_pro_rata_rounds_down_and_the_whole_rule_takes_everything_paid():
    args = {"paid": PAID, "starts_on": STARTS, "ends_on": ENDS, "ended_on": ENDED}
    assert recovery_amount(rule="pro_rata", **args) == (PRO_RATA, 300, 100)
    assert recovery_amount(rule="whole", **args) == (PAID, 300, 100)
    # The first day attended and no other: 299 of 300 days missed.
    first_day = {**args, "ended_on": STARTS}
    assert recovery_amount(rule="pro_rata", **first_day)[0] == 996_666


def test_a_round_with_the_whole_rule_recovers_the_whole_payment(caseworker):
    application = paid(rule="whole")

    response = training_ended(caseworker, application)

    assert response.status_code == 200, response.json()
    assert response.json()["recovery"]["amount"] == PAID


def test_a_drop_out_before_payment_revokes_the_approval_and_nothing_is_paid(caseworker):
    finance = UserFactory(role=Role.FINANCE)
    application = selected()

    response = training_ended(caseworker, application)

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "rejected"
    assert response.json()["recovery"] is None
    assert not Recovery.objects.exists()
    assert Notification.objects.filter(application=application, kind="approval_revoked").exists()
    ledger = round_budget_ledger(application.round)
    assert (ledger.awaiting_batch, ledger.to_recover) == (0, 0)
    with pytest.raises(DomainError) as refused:
        services.batch_create(round_=application.round, actor=finance)
    assert refused.value.code == "nothing_to_pay"


@pytest.mark.parametrize("stage", ["draft", "approved", "sent"])
def test_a_payment_on_its_way_is_refused_and_nothing_is_recorded(caseworker, stage):
    application = selected()
    if stage == "draft":
        maker = UserFactory(role=Role.FINANCE)
        services.batch_build(
            batch_id=services.batch_create(round_=application.round, actor=maker).pk
        )
    elif stage == "approved":
        approved_batch(application.round)
    else:
        sent(approved_batch(application.round))
    events = AuditEvent.objects.count()

    response = training_ended(caseworker, application)

    assert response.status_code == 409, response.json()
    assert error(response) == ("application", "payment_in_progress")
    application.refresh_from_db()
    assert application.status == Application.Status.SELECTED
    assert not Recovery.objects.exists()
    assert AuditEvent.objects.count() == events


def test_partial_then_full_repayment_closes_the_case_and_counts_as_recovered(
    recovery, finance1, citizen
):
    round_ = recovery.round
    available = round_budget_ledger(round_).available

    first = repay(finance1, recovery.pk, 100_000)

    assert first.status_code == 201, first.json()
    assert (first.json()["status"], first.json()["repaid"], first.json()["outstanding"]) == (
        "open",
        100_000,
        PRO_RATA - 100_000,
    )
    ledger = round_budget_ledger(round_)
    assert (ledger.recovered, ledger.to_recover) == (100_000, PRO_RATA - 100_000)

    second = repay(finance1, recovery.pk, PRO_RATA - 100_000)

    assert second.status_code == 201, second.json()
    assert (second.json()["status"], second.json()["outstanding"]) == ("repaid", 0)
    ledger = round_budget_ledger(round_)
    assert (ledger.recovered, ledger.to_recover) == (PRO_RATA, 0)
    # Recovered money goes back to the city, not to the round's budget.
    assert ledger.available == available
    assert Notification.objects.filter(
        application=recovery.application, kind="recovery_repaid"
    ).exists()
    assert [a for a in AuditEvent.objects.values_list("action", flat=True) if "repa" in a] == [
        "recovery.repayment_recorded",
        "recovery.repayment_recorded",
        "recovery.repaid",
    ]


def test_a_repayment_beyond_what_is_owed_is_refused(recovery, finance1):
    assert repay(finance1, recovery.pk, 300_000).status_code == 201

    response = repay(finance1, recovery.pk, PRO_RATA - 300_000 + 1)

    assert response.status_code == 400
    assert error(response) == ("amount", "exceeds_outstanding")
    recovery.refresh_from_db()
    assert (recovery.repaid, recovery.repayments.count()) == (300_000, 1)


def test_nothing_is_repaid_on_a_closed_case(recovery, finance1):
    assert repay(finance1, recovery.pk, PRO_RATA).status_code == 201

    response = repay(finance1, recovery.pk, 1)

    assert response.status_code == 409
    assert error(response) == ("status", "recovery_closed")


def test_a_double_click_with_one_idempotency_key_records_one_repayment(recovery, finance1):
    first = repay(finance1, recovery.pk, 50_000, HTTP_IDEMPOTENCY_KEY="repay-1")
    again = repay(finance1, recovery.pk, 50_000, HTTP_IDEMPOTENCY_KEY="repay-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert Repayment.objects.filter(recovery=recovery).count() == 1
    recovery.refresh_from_db()
    assert recovery.repaid == 50_000


def test_a_waiver_needs_a_second_finance_user(recovery, finance1, finance2):
    assert repay(finance1, recovery.pk, 33_333).status_code == 201
    url = f"{API}/recoveries/{recovery.pk}"

    asked = finance1.post(f"{url}/waive/", {"reason": "기초생활수급자, 상환 능력 없음"})

    assert asked.status_code == 200, asked.json()
    assert asked.json()["status"] == "open"  # a pending waiver keeps the case open
    assert asked.json()["waiver"]["requested_by"] == finance1.user.username
    same = finance1.post(f"{url}/approve-waiver/")
    assert same.status_code == 403
    assert error(same) == ("approved_by", "maker_checker")
    recovery.refresh_from_db()
    assert recovery.status == Recovery.Status.OPEN

    approved = finance2.post(f"{url}/approve-waiver/")

    assert approved.status_code == 200, approved.json()
    body = approved.json()
    assert (body["status"], body["outstanding"], body["waiver"]["amount"]) == (
        "waived",
        0,
        300_000,
    )
    ledger = round_budget_ledger(recovery.round)
    assert (ledger.recovered, ledger.to_recover) == (33_333, 0)
    message = Notification.objects.get(application=recovery.application, kind="recovery_waived")
    assert "300,000" in message.body
    assert AuditEvent.objects.filter(action="recovery.waived", actor=finance2.user).exists()


def test_a_waiver_is_approved_only_once_asked_and_asked_only_once(recovery, finance1, finance2):
    url = f"{API}/recoveries/{recovery.pk}"
    response = finance2.post(f"{url}/approve-waiver/")
    assert (response.status_code, error(response)) == (409, ("status", "no_waiver_requested"))
    assert finance1.post(f"{url}/waive/", {"reason": "상환 불능"}).status_code == 200

    again = finance2.post(f"{url}/waive/", {"reason": "다시"})

    assert (again.status_code, error(again)) == (409, ("non_field_errors", "waiver_pending"))


def test_the_database_refuses_a_waiver_approved_by_its_requester(recovery, finance1):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Recovery.objects.filter(pk=recovery.pk).update(
            waiver_requested_by=finance1.user, waiver_approved_by=finance1.user
        )


def test_the_database_refuses_more_repaid_than_owed(recovery):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Recovery.objects.filter(pk=recovery.pk).update(repaid=PRO_RATA + 1)


def test_a_citizen_reads_her_own_recovery_and_not_another_s(caseworker, citizen, other_citizen):
    application = paid(applicant=citizen.applicant)
    recovery_id = training_ended(caseworker, application).json()["recovery"]["id"]

    mine = citizen.get(f"{API}/recoveries/").json()["results"]
    detail = citizen.get(f"{API}/recoveries/{recovery_id}/")

    assert [r["id"] for r in mine] == [recovery_id]
    assert detail.status_code == 200
    assert (detail.json()["outstanding"], detail.json()["created_by"]) == (PRO_RATA, None)
    assert other_citizen.get(f"{API}/recoveries/").json()["results"] == []
    assert other_citizen.get(f"{API}/recoveries/{recovery_id}/").status_code == 404
    assert repay(citizen, recovery_id, 1).status_code == 403


def test_the_list_reads_in_a_fixed_number_of_queries(
    caseworker, finance1, django_assert_max_num_queries
):
    for _ in range(3):
        recovery_id = training_ended(caseworker, paid()).json()["recovery"]["id"]
        repay(finance1, recovery_id, 1_000)
    with django_assert_max_num_queries(8):
        response = finance1.get(f"{API}/recoveries/")
    assert len(response.json()["results"]) == 3


def test_the_evidence_document_is_kept_with_the_recovery(caseworker):
    application = paid()
    notice = SimpleUploadedFile("notice.pdf", PDF, "application/pdf")

    response = training_ended(caseworker, application, evidence=notice)

    assert response.status_code == 200, response.json()
    recovery = Recovery.objects.get(application=application)
    assert recovery.evidence.kind == Document.Kind.OTHER
    assert recovery.evidence.uploaded_by == caseworker.user
    assert [d["id"] for d in response.json()["documents"]] == [recovery.evidence_id]


def test_evidence_that_is_no_document_is_refused_on_its_own_field(caseworker):
    application = paid()
    notice = SimpleUploadedFile("notice.pdf", b"MZ not a document", "application/pdf")

    response = training_ended(caseworker, application, evidence=notice)

    assert response.status_code == 400
    assert [(e["attr"], e["code"]) for e in response.json()["errors"]] == [
        ("evidence", "unsupported_file_type")
    ]
    assert not Recovery.objects.filter(application=application).exists()


def test_the_ledger_and_the_report_show_recovered_and_to_recover(recovery, finance1, manager):
    repay(finance1, recovery.pk, 33_333)

    ledger = manager.get(f"{API}/rounds/{recovery.round_id}/ledger/").json()
    report = manager.get(f"{API}/reports/rounds/{recovery.round_id}/").json()["amounts"]

    assert (ledger["recovered"], ledger["to_recover"]) == (33_333, 300_000)
    assert (report["recovered"], report["to_recover"]) == (33_333, 300_000)


def test_a_voucher_recipient_is_left_to_the_voucher_ledger(caseworker):
    application = selected(program=ProgramFactory(code=Program.Code.VOUCHER))

    response = training_ended(caseworker, application)

    assert (response.status_code, error(response)) == (409, ("application", "voucher_program"))
    application.refresh_from_db()
    assert application.status == Application.Status.SELECTED


def test_a_training_end_is_recorded_once(recovery, caseworker):
    response = training_ended(caseworker, recovery.application)

    assert (response.status_code, error(response)) == (409, ("non_field_errors", "recovery_exists"))
    assert Recovery.objects.count() == 1


def test_only_a_decided_recipient_s_training_end_is_recorded(caseworker):
    application = selected(status=Application.Status.UNDER_REVIEW)

    response = training_ended(caseworker, application)

    assert (response.status_code, error(response)) == (409, ("status", "invalid_transition"))


# Bad input: a 4xx naming the field, and nothing written.


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"ended_on": str(STARTS - timedelta(days=1))}, "ended_on", "outside_training"),
        ({"ended_on": str(TODAY + timedelta(days=1))}, "ended_on", "future"),
        ({"ended_on": "2026-02-30"}, "ended_on", "invalid"),
        ({"ended_on": ""}, "ended_on", "invalid"),
        ({"reason": ""}, "reason", "blank"),
        ({"reason": "   "}, "reason", "blank"),
        ({"reason": None}, "reason", "null"),
        ({"surprise": 1}, "surprise", "unknown_field"),
    ],
)
def test_a_bad_training_end_is_refused_and_nothing_is_written(caseworker, body, field, code):
    application = paid()
    events = AuditEvent.objects.count()
    payload = {"ended_on": str(ENDED), "reason": "수강 포기", **body}

    response = caseworker.post(
        f"{API}/review/applications/{application.pk}/training-ended/", payload, format="json"
    )

    assert response.status_code == 400, response.json()
    assert error(response) == (field, code)
    assert not Recovery.objects.exists()
    assert AuditEvent.objects.count() == events
    assert not Notification.objects.filter(kind="recovery_opened").exists()


def test_a_training_attended_to_its_last_day_did_not_end_early(caseworker):
    application = paid(training_ends_on=TODAY - timedelta(days=5))

    response = training_ended(caseworker, application, ended_on=TODAY - timedelta(days=5))

    assert (response.status_code, error(response)) == (400, ("ended_on", "outside_training"))
    assert not Recovery.objects.exists()


def test_a_training_end_without_a_reason_is_refused(caseworker):
    application = paid()
    response = caseworker.post(
        f"{API}/review/applications/{application.pk}/training-ended/",
        {"ended_on": str(ENDED)},
        format="json",
    )
    assert (response.status_code, error(response)) == (400, ("reason", "required"))
    assert not Recovery.objects.exists()


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"amount": 0}, "amount", "min_value"),
        ({"amount": -1_000}, "amount", "min_value"),
        ({"amount": 1000.5}, "amount", "invalid"),
        ({"amount": "천원"}, "amount", "invalid"),
        ({"amount": None}, "amount", "null"),
        ({"paid_on": "2026-13-01"}, "paid_on", "invalid"),
        ({"paid_on": str(TODAY + timedelta(days=1))}, "paid_on", "future"),
        ({"paid_on": str(ENDED - timedelta(days=1))}, "paid_on", "before_training_end"),
    ],
)
def test_a_bad_repayment_is_refused_and_nothing_is_written(recovery, finance1, body, field, code):
    events = AuditEvent.objects.count()
    payload = {"amount": 1_000, "paid_on": str(TODAY), **body}

    response = finance1.post(f"{API}/recoveries/{recovery.pk}/repayments/", payload, format="json")

    assert response.status_code == 400, response.json()
    assert error(response) == (field, code)
    recovery.refresh_from_db()
    assert (recovery.repaid, recovery.repayments.count()) == (0, 0)
    assert AuditEvent.objects.count() == events


def test_a_waiver_without_a_reason_is_refused(recovery, finance1):
    response = finance1.post(f"{API}/recoveries/{recovery.pk}/waive/", {"reason": " "})

    assert (response.status_code, error(response)) == (400, ("reason", "blank"))
    recovery.refresh_from_db()
    assert recovery.waiver_requested_by is None


def test_the_services_refuse_a_bad_repayment_whatever_the_api_checks(recovery, finance1):
    from django.core.exceptions import ValidationError

    from payments.recoveries import recovery_repayment_record

    for amount in (0, -1):
        with pytest.raises(ValidationError):
            recovery_repayment_record(
                recovery=recovery, actor=finance1.user, amount=amount, paid_on=TODAY
            )
    assert not Repayment.objects.exists()


def test_a_pro_rata_share_below_one_won_opens_no_recovery(caseworker):
    application = paid(amount=100, training_ends_on=TODAY - timedelta(days=1))

    # One day of 300 missed: 100 KRW × 1 / 300 rounds down to nothing.
    response = training_ended(caseworker, application, ended_on=TODAY - timedelta(days=2))

    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["recovery"]) == ("selected", None)
    assert not Recovery.objects.exists()
    event = AuditEvent.objects.get(action="application.training_ended")
    assert event.data["outcome"] == "nothing_to_recover"


def test_a_drop_out_whose_transfer_failed_is_revoked_and_never_paid_again(caseworker):
    application = selected()
    batch = sent(approved_batch(application.round))
    reference = batch.payments.get().reference
    results = f"reference,result,reason\n{reference},failed,account closed\n".encode()
    bank_results_import(batch=batch, actor=batch.prepared_by, data=results)
    # The citizen gives another account: the next batch would reissue the payment.
    application.applicant.account_number = "998877665544"
    application.applicant.account_fingerprint = "another"
    application.applicant.save()

    response = training_ended(caseworker, application)

    assert (response.status_code, response.json()["status"]) == (200, "rejected")
    assert not Recovery.objects.exists()
    with pytest.raises(DomainError) as refused:
        services.batch_create(round_=application.round, actor=batch.prepared_by)
    assert refused.value.code == "nothing_to_pay"


def test_the_services_check_the_role_whoever_calls_them(recovery, caseworker, finance1):
    from django.core.exceptions import PermissionDenied

    from benefits.training_end import application_training_end
    from payments.recoveries import (
        recovery_repayment_record,
        recovery_waiver_approve,
        recovery_waiver_request,
    )

    with pytest.raises(PermissionDenied):
        recovery_repayment_record(
            recovery=recovery, actor=caseworker.user, amount=1_000, paid_on=TODAY
        )
    with pytest.raises(PermissionDenied):
        recovery_waiver_request(recovery=recovery, actor=caseworker.user, reason="면제")
    with pytest.raises(PermissionDenied):
        application_training_end(
            application=paid(), actor=finance1.user, ended_on=ENDED, reason="수강 포기"
        )
    recovery_waiver_request(recovery=recovery, actor=finance1.user, reason="상환 불능")
    with pytest.raises(PermissionDenied):
        recovery_waiver_approve(recovery=recovery, actor=caseworker.user)
    recovery.refresh_from_db()
    assert (recovery.status, recovery.repaid) == (Recovery.Status.OPEN, 0)
    assert Recovery.objects.count() == 1
