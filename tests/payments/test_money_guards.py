"""Each guard on the money path, held by a test that fails the moment the guard is weakened."""

import csv
import io
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from benefits.models import Applicant, Application, Notification, Round
from benefits.selection import round_select
from core.exceptions import Conflict, DomainError, InvalidTransition
from core.files import stored_file_chunks
from core.models import AuditEvent
from core.roles import Role
from payments import services, settlement
from payments.audit import batch_audit, payment_flags
from payments.bankfiles import parse_result_file
from payments.exports import bank_file_generate
from payments.imports import ResultFileRejected, bank_results_import
from payments.models import DisbursementBatch, Payment, VoucherAccount, VoucherEntry
from payments.selectors import round_budget_ledger
from payments.vouchers import voucher_balance, voucher_redeem, voucher_top_up, vouchers_lapse
from tests.factories import (
    ApplicantFactory,
    ApplicationFactory,
    RoundFactory,
    UserFactory,
    approved_applications,
)
from tests.payments.test_vouchers import AMOUNT, issue_vouchers, make_provider, redeem

pytestmark = pytest.mark.django_db


@pytest.fixture
def maker(db):
    return UserFactory(role=Role.FINANCE)


@pytest.fixture
def checker(db):
    return UserFactory(role=Role.FINANCE)


@pytest.fixture
def pm(db):
    return UserFactory(role=Role.PROGRAM_MANAGER)


def selected_round(n: int = 2, **fields) -> Round:
    round_ = RoundFactory(status=Round.Status.SELECTED, capacity=n, **fields)
    for _ in range(n):
        ApplicationFactory(round=round_, status=Application.Status.SELECTED)
    return round_


def built_batch(round_: Round, maker) -> DisbursementBatch:
    batch = services.batch_create(round_=round_, actor=maker)
    return services.batch_build(batch_id=batch.pk)


def sent_batch(round_: Round, maker, checker) -> DisbursementBatch:
    batch = services.batch_submit(batch=built_batch(round_, maker), actor=maker)
    batch = services.batch_approve(batch=batch, actor=checker)
    bank_file_generate(batch_id=batch.pk, fmt="csv")
    batch.files.update(downloaded_at=timezone.now(), downloaded_by=maker)
    return services.batch_disburse(batch=batch, actor=maker)


def lower_budget_behind_the_services(round_: Round, *, by_seats: int) -> None:
    """Cut capacity and budget with a plain UPDATE, as a direct database edit would."""
    Round.objects.filter(pk=round_.pk).update(
        capacity=round_.capacity - by_seats, budget=(round_.capacity - by_seats) * round_.amount
    )


def spend_and_complete(provider, account, amount=AMOUNT) -> int:
    redemption = redeem(provider, account.code, amount).json()
    provider.post(f"/api/v1/vouchers/redemptions/{redemption['id']}/complete/")
    return redemption["id"]


# One live payment per entitlement, and maker-checker, as database constraints.


def test_two_live_payments_for_one_entitlement_are_refused_across_batches(maker):
    round_ = selected_round(1)
    first = built_batch(round_, maker)
    payment = first.payments.get()
    other = DisbursementBatch.objects.create(
        round=round_, prepared_by=maker, build_status=DisbursementBatch.BuildStatus.READY
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.create(
            batch=other, round=round_, application=payment.application, amount=payment.amount
        )


def test_the_database_refuses_an_approver_who_prepared_the_batch(maker):
    batch = built_batch(selected_round(1), maker)
    with pytest.raises(IntegrityError), transaction.atomic():
        DisbursementBatch.objects.filter(pk=batch.pk).update(approved_by=maker)


# The budget, at batch creation, at the end of the build and at approval.


def test_no_batch_is_opened_for_a_round_committed_beyond_its_budget(maker):
    round_ = selected_round(2)
    lower_budget_behind_the_services(round_, by_seats=1)
    with pytest.raises(Conflict) as refused:
        services.batch_create(round_=round_, actor=maker)
    assert refused.value.code == "over_budget"
    assert not DisbursementBatch.objects.exists()


def test_a_batch_whose_round_loses_its_budget_while_building_pays_nothing(
    maker, django_capture_on_commit_callbacks
):
    round_ = selected_round(2)
    with django_capture_on_commit_callbacks(execute=False) as build:
        batch = services.batch_create(round_=round_, actor=maker)
    assert len(build) == 1  # the build task, queued for after the commit
    lower_budget_behind_the_services(round_, by_seats=1)
    batch = services.batch_build(batch_id=batch.pk)
    assert batch.status == DisbursementBatch.Status.CANCELLED
    assert set(batch.payments.values_list("status", flat=True)) == {Payment.Status.CANCELLED}


def test_a_batch_is_not_approved_once_the_round_is_over_its_budget(maker, checker):
    round_ = selected_round(2)
    batch = services.batch_submit(batch=built_batch(round_, maker), actor=maker)
    lower_budget_behind_the_services(round_, by_seats=1)
    with pytest.raises(Conflict) as refused:
        services.batch_approve(batch=batch, actor=checker)
    assert refused.value.code == "over_budget"
    batch.refresh_from_db()
    assert batch.status == DisbursementBatch.Status.PENDING_APPROVAL


def test_top_ups_that_used_the_budget_up_stop_the_next_batch(maker, pm):
    accounts = issue_vouchers(2, top_up_amount=AMOUNT, top_up_share=50, budget=3 * AMOUNT)
    provider = make_provider()
    spend_and_complete(provider, accounts[0])
    voucher_top_up(round_=accounts[0].round, actor=pm)  # takes the last 350,000 KRW
    round_ = Round.objects.get(pk=accounts[0].round_id)
    # A late recipient added behind the services: nothing is left to pay them with.
    ApplicationFactory(round=round_, status=Application.Status.SELECTED)
    with pytest.raises(Conflict) as refused:
        services.batch_create(round_=round_, actor=maker)
    assert refused.value.code == "over_budget"


def test_selection_leaves_the_money_that_top_ups_committed(pm):
    accounts = issue_vouchers(2, top_up_amount=100_000, top_up_share=100, budget=4 * AMOUNT)
    round_ = Round.objects.get(pk=accounts[0].round_id)
    Round.objects.filter(pk=round_.pk).update(capacity=4)
    provider = make_provider()
    for account in accounts:
        spend_and_complete(provider, account)
    assert voucher_top_up(round_=round_, actor=pm)["granted"] == 2
    late = approved_applications(round_, 2)
    result = round_select(round_=Round.objects.get(pk=round_.pk), actor=pm)
    # Two seats are free, but 1,400,000 - 700,000 paid - 200,000 of top-ups leaves one.
    assert (result.selected, result.waitlisted) == (1, 1)
    assert {a.status for a in Application.objects.filter(pk__in=[a.pk for a in late])} == {
        Application.Status.SELECTED,
        Application.Status.WAITLISTED,
    }


# Holding a payment out, and what the bank's result file may name.


def test_a_fresh_payment_cannot_be_held_out_once_the_batch_is_approved(maker, checker):
    batch = services.batch_submit(batch=built_batch(selected_round(2), maker), actor=maker)
    batch = services.batch_approve(batch=batch, actor=checker)
    payment = batch.payments.first()
    with pytest.raises(InvalidTransition):
        services.payment_hold(batch=batch, payment_id=payment.pk, actor=checker, reason="late")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert payment.hold_reason == ""


@pytest.mark.parametrize("foreign", ["ACME-1", "BAEUM-P12"])
def test_a_well_formed_reference_that_is_not_ours_rejects_the_whole_file(maker, checker, foreign):
    batch = sent_batch(selected_round(2), maker, checker)
    known = batch.payments.first().reference
    data = f"reference,result,reason\n{known},paid,\n{foreign},paid,\n".encode()
    assert [line.reference for line in parse_result_file(data)] == [known, foreign]
    with pytest.raises(ResultFileRejected) as rejected:
        bank_results_import(batch=batch, actor=maker, data=data)
    assert rejected.value.details[0] == (
        "Line 3: The reference on this line is not a Baeum payment reference.",
        "unknown_reference",
    )
    assert set(batch.payments.values_list("status", flat=True)) == {Payment.Status.SENT}


# Provider settlement: what a failed or held-out payment leaves is paid by the next, once.


def settle(round_, actor) -> DisbursementBatch:
    today = timezone.localdate()
    return settlement.settlement_batch_create(
        round_=round_, actor=actor, period_starts_on=today, period_ends_on=today
    )


def test_a_failed_settlement_payment_releases_its_redemptions_to_the_next_settlement(
    maker, checker
):
    accounts = issue_vouchers(1)
    provider = make_provider()
    redeem(provider, accounts[0].code, 100_000)
    first = settle(accounts[0].round, maker)
    first = services.batch_approve(
        batch=services.batch_submit(batch=first, actor=maker), actor=checker
    )
    bank_file_generate(batch_id=first.pk, fmt="csv")
    first.files.update(downloaded_at=timezone.now(), downloaded_by=maker)
    first = services.batch_disburse(batch=first, actor=maker)
    reference = first.payments.get().reference
    data = f"reference,result,reason\n{reference},failed,account closed\n".encode()
    bank_results_import(batch=first, actor=maker, data=data)
    assert not VoucherEntry.objects.filter(settlement__isnull=False).exists()
    second = settle(accounts[0].round, maker)
    assert second.payments.get().amount == 100_000
    with pytest.raises(DomainError) as nothing_left:
        settle(accounts[0].round, maker)
    assert nothing_left.value.code == "nothing_to_pay"


def test_a_held_out_settlement_payment_releases_its_redemptions_to_the_next_settlement(
    maker, checker
):
    accounts = issue_vouchers(1)
    provider = make_provider()
    redeem(provider, accounts[0].code, 70_000)
    first = settle(accounts[0].round, maker)
    payment = first.payments.get()
    services.payment_hold(batch=first, payment_id=payment.pk, actor=checker, reason="확인 중")
    assert not VoucherEntry.objects.filter(settlement__isnull=False).exists()
    second = settle(accounts[0].round, maker)
    assert second.payments.get().amount == 70_000
    assert VoucherEntry.objects.get(kind=VoucherEntry.Kind.REDEMPTION).settlement.batch == second


# Redemptions.


def test_a_redemption_key_belongs_to_its_provider(db):
    account = issue_vouchers(1)[0]
    first, second = make_provider(), make_provider(name="다른 학원", brn="2208162517")
    assert redeem(first, account.code, 50_000, key="pos-1").status_code == 201
    response = redeem(second, account.code, 30_000, key="pos-1")
    assert response.status_code == 201
    assert response.json()["balance_after"] == AMOUNT - 80_000
    assert voucher_balance(account) == AMOUNT - 80_000


def test_an_entry_the_database_refuses_is_never_answered_with_an_earlier_redemption(db):
    account = issue_vouchers(1)[0]
    provider = make_provider()
    earlier = redeem(provider, account.code, 10_000)  # no Idempotency-Key
    assert earlier.status_code == 201
    # A caller that skips the API's amount check: the entry's sign check refuses it.
    with pytest.raises(IntegrityError):
        voucher_redeem(actor=provider.user, voucher_code=account.code, amount=-5, course="요가")
    assert voucher_balance(account) == AMOUNT - 10_000


def test_a_voucher_is_valid_through_its_expiry_date(db):
    account = issue_vouchers(1)[0]
    today = timezone.localdate()
    VoucherAccount.objects.filter(pk=account.pk).update(expires_on=today)
    provider = make_provider()
    assert redeem(provider, account.code, 1_000).status_code == 201
    assert vouchers_lapse(today=today) == 0
    assert vouchers_lapse(today=today + timedelta(days=1)) == 1
    assert voucher_balance(account) == 0


# Top-ups: a budgeted commitment, to excellent users only, never beyond the share.


def test_a_top_up_the_budget_cannot_cover_grants_nothing(pm):
    accounts = issue_vouchers(2, top_up_amount=200_000, top_up_share=100)
    provider = make_provider()
    spend_and_complete(provider, accounts[0])
    with pytest.raises(Conflict) as refused:
        voucher_top_up(round_=accounts[0].round, actor=pm)
    assert refused.value.code == "over_budget"
    assert not VoucherEntry.objects.filter(kind=VoucherEntry.Kind.TOP_UP).exists()


def test_a_refused_top_up_answers_409_through_the_api(manager):
    accounts = issue_vouchers(1, top_up_amount=200_000, top_up_share=100)
    spend_and_complete(make_provider(), accounts[0])
    response = manager.post(f"/api/v1/rounds/{accounts[0].round_id}/voucher-top-up/")
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "over_budget"


def test_granted_top_ups_are_committed_and_only_the_unspent_part_returns(pm):
    accounts = issue_vouchers(
        2, top_up_amount=100_000, top_up_share=50, budget=2 * AMOUNT + 100_000
    )
    round_ = accounts[0].round
    provider = make_provider()
    spend_and_complete(provider, accounts[0])
    before = round_budget_ledger(round_)
    assert before.available == 100_000
    assert voucher_top_up(round_=round_, actor=pm)["granted"] == 1
    granted = round_budget_ledger(round_)
    assert granted.top_ups == 100_000
    assert granted.committed == before.committed + 100_000
    assert granted.available == 0
    redeem(provider, accounts[0].code, 30_000)  # of the top-up, 70,000 is left unspent
    vouchers_lapse(today=accounts[0].expires_on + timedelta(days=1))
    lapsed = round_budget_ledger(round_)
    # Returned: the other recipient's untouched voucher and the unspent part of the top-up.
    assert lapsed.returned == AMOUNT + 70_000
    assert lapsed.available == AMOUNT + 70_000
    assert lapsed.available == lapsed.budget - lapsed.committed + lapsed.returned


def test_top_up_recipients_are_told(pm):
    accounts = issue_vouchers(2, top_up_amount=100_000, top_up_share=100, budget=3 * AMOUNT)
    spend_and_complete(make_provider(), accounts[0])
    voucher_top_up(round_=accounts[0].round, actor=pm)
    told = Notification.objects.filter(kind=Notification.Kind.TOP_UP_GRANTED)
    assert list(told.values_list("user_id", "application_id")) == [
        (accounts[0].applicant.user_id, accounts[0].application_id)
    ]


def test_a_recipient_who_had_any_refund_gets_no_top_up(pm):
    accounts = issue_vouchers(1, top_up_amount=100_000, top_up_share=100, budget=2 * AMOUNT)
    provider = make_provider()
    redemption = spend_and_complete(provider, accounts[0], amount=AMOUNT - 1_000)
    provider.post(f"/api/v1/vouchers/redemptions/{redemption}/refund/", {"amount": 1_000})
    redeem(provider, accounts[0].code, 2_000)  # spent to zero again, with a refund behind it
    assert voucher_balance(accounts[0]) == 0
    assert voucher_top_up(round_=accounts[0].round, actor=pm)["granted"] == 0


def test_a_second_top_up_run_never_goes_beyond_the_share(pm):
    accounts = issue_vouchers(4, top_up_amount=10_000, top_up_share=50, budget=5 * AMOUNT)
    round_ = accounts[0].round
    provider = make_provider()
    spend_and_complete(provider, accounts[0])
    assert voucher_top_up(round_=round_, actor=pm) == {"eligible": 1, "granted": 1, "limit": 2}
    for account in accounts[1:]:
        spend_and_complete(provider, account)
    assert voucher_top_up(round_=round_, actor=pm)["granted"] == 1
    assert VoucherEntry.objects.filter(kind=VoucherEntry.Kind.TOP_UP).count() == 2


# The pre-release audit.


def test_an_account_paid_to_someone_outside_this_batch_is_flagged(maker, checker):
    earlier_round = selected_round(1)
    earlier = sent_batch(earlier_round, maker, checker)
    paid_to = earlier.payments.get().application.applicant
    round_ = selected_round(2)
    payee = Application.objects.filter(round=round_).order_by("id").first().applicant
    # This payee now gives the account an earlier round paid; the earlier payee moved on.
    payee.account_number, payee.account_fingerprint = (
        paid_to.account_number,
        paid_to.account_fingerprint,
    )
    payee.save()
    paid_to.account_number, paid_to.account_fingerprint = "9999888877", "moved-away"
    paid_to.save()
    batch = built_batch(round_, maker)
    flagged = {p.application.applicant_id: payment_flags(p) for p in batch_audit(batch)}
    assert flagged == {payee.pk: ["shared_account"]}


def test_an_account_another_applicant_gives_is_flagged_though_they_are_not_in_the_batch(maker):
    round_ = selected_round(1)
    payee = Application.objects.get(round=round_).applicant
    ApplicantFactory(
        account_number=payee.account_number, account_fingerprint=payee.account_fingerprint
    )
    batch = built_batch(round_, maker)
    assert [payment_flags(p) for p in batch_audit(batch)] == [["shared_account"]]


# A bank file never carries a held payment.


def test_a_held_payment_stays_out_of_the_bank_file(maker, checker):
    batch = built_batch(selected_round(2), maker)
    held = batch.payments.first()
    services.payment_hold(batch=batch, payment_id=held.pk, actor=checker, reason="계좌 확인")
    batch = services.batch_approve(
        batch=services.batch_submit(batch=batch, actor=maker), actor=checker
    )
    bank_file = bank_file_generate(batch_id=batch.pk, fmt="csv")
    text = b"".join(stored_file_chunks(bank_file.file, purpose=bank_file.FILE_PURPOSE)).decode()
    references = {row["reference"] for row in csv.DictReader(io.StringIO(text))}
    assert held.reference not in references
    assert len(references) == 1
    assert AuditEvent.objects.filter(action="batch.payment_held", reason="계좌 확인").exists()


def flags_by_applicant(batch) -> dict[int, list[str]]:
    return {p.application.applicant_id: payment_flags(p) for p in batch_audit(batch)}


def test_two_payments_of_the_batch_to_one_account_are_flagged_though_one_payee_moved_on(maker):
    round_ = selected_round(2)
    first, second = (a.applicant for a in Application.objects.filter(round=round_).order_by("id"))
    second.account_number, second.account_fingerprint = first.account_number, "shared-fp"
    first.account_fingerprint = "shared-fp"
    first.save()
    second.save()
    batch = built_batch(round_, maker)
    # The second payee gives another account now; the batch still pays "shared-fp" twice.
    second.account_fingerprint = "new-fp"
    second.save()
    flagged = flags_by_applicant(batch)
    assert "shared_account" in flagged[first.pk]
    assert flagged[second.pk] == ["shared_account", "account_changed"]


def test_an_account_the_payee_left_for_someone_else_is_flagged(maker):
    round_ = selected_round(1)
    payee = Application.objects.get(round=round_).applicant
    batch = built_batch(round_, maker)
    paid_to = batch.payments.get().account_fingerprint
    Applicant.objects.filter(pk=payee.pk).update(
        account_fingerprint="moved", account_changed_at=None
    )
    ApplicantFactory(account_fingerprint=paid_to)  # the account now belongs to someone else
    assert flags_by_applicant(batch) == {payee.pk: ["shared_account", "account_changed"]}


def test_the_payees_own_earlier_payment_is_no_shared_account(maker, checker):
    earlier = sent_batch(selected_round(1), maker, checker)
    payee = earlier.payments.get().application.applicant
    round_ = RoundFactory(status=Round.Status.SELECTED, capacity=1)
    ApplicationFactory(round=round_, applicant=payee, status=Application.Status.SELECTED)
    batch = built_batch(round_, maker)
    assert flags_by_applicant(batch) == {}


def test_payments_without_an_account_are_not_one_shared_account(maker):
    round_ = selected_round(2)
    batch = built_batch(round_, maker)
    # As voucher credits: no bank account, blank fingerprints.
    batch.payments.update(account_fingerprint="")
    Applicant.objects.filter(applications__round=round_).update(account_fingerprint="")
    assert flags_by_applicant(batch) == {}


def test_a_held_out_twin_no_longer_makes_the_account_shared(maker, checker):
    round_ = selected_round(2)
    first, second = (a.applicant for a in Application.objects.filter(round=round_).order_by("id"))
    Applicant.objects.filter(pk=second.pk).update(account_fingerprint=first.account_fingerprint)
    batch = built_batch(round_, maker)
    held = batch.payments.get(application__applicant=second)
    services.payment_hold(batch=batch, payment_id=held.pk, actor=checker, reason="계좌 확인")
    # The held payee gives another account since: the first is the only one paid to theirs.
    Applicant.objects.filter(pk=second.pk).update(account_fingerprint="new-fp")
    assert flags_by_applicant(batch) == {}


def test_two_providers_paid_to_one_account_are_flagged_in_their_settlement(maker):
    accounts = issue_vouchers(2)
    first = make_provider()
    second = make_provider(name="같은 계좌 학원", brn="2208162517")
    redeem(first, accounts[0].code, 10_000)
    redeem(second, accounts[1].code, 20_000)
    batch = settle(accounts[0].round, maker)
    assert first.provider.account_fingerprint == second.provider.account_fingerprint
    assert {payment_flags(p) == ["shared_account"] for p in batch_audit(batch)} == {True}
    assert batch_audit(batch).count() == 2


@pytest.mark.postgres
def test_a_built_batch_leaves_the_planner_counting_its_payments(maker):
    # The pre-release audit is read right after the build: planned on statistics that
    # predate the build, its shared-account test ran once per payment (minutes at 70,000).
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the planner's statistics are PostgreSQL's")
    batch = built_batch(selected_round(37), maker)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [Payment._meta.db_table]
        )
        counted = cursor.fetchone()[0]
    assert counted == Payment.objects.count() == batch.payments.count() == 37
