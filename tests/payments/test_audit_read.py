"""The pre-release audit read once for a whole page or answer: each payment counted and
listed once, whatever number of others share its account, and payees told apart."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from benefits.models import Applicant, Application
from core.exceptions import Conflict
from core.roles import Role
from payments import services
from payments.audit import (
    batch_audit,
    batch_audit_current,
    batch_audit_keep,
    batch_audit_read,
    batch_audit_summary,
    batch_audit_unseen,
    payment_flags,
    payments_with_flags,
)
from payments.models import BatchAuditReading, DisbursementBatch, Payment
from tests.factories import ApplicantFactory, UserFactory
from tests.payments.test_money_guards import built_batch, selected_round, settle
from tests.payments.test_vouchers import issue_vouchers, make_provider, redeem

pytestmark = pytest.mark.django_db


@pytest.fixture
def maker(db):
    return UserFactory(role=Role.FINANCE)


@pytest.fixture
def checker(db):
    return UserFactory(role=Role.FINANCE)


def give_account(applicants, fingerprint: str) -> None:
    Applicant.objects.filter(pk__in=[a.pk for a in applicants]).update(
        account_fingerprint=fingerprint
    )


def test_three_payees_and_an_outsider_on_one_account_are_three_flagged_payments(maker):
    round_ = selected_round(4)
    payees = [a.applicant for a in Application.objects.filter(round=round_).order_by("id")]
    give_account(payees[:3], "one-account")
    ApplicantFactory(account_fingerprint="one-account")  # gives it too, outside the batch
    batch = built_batch(round_, maker)

    summary = batch_audit_summary(batch)
    assert summary["shared_account"] == summary["any"] == 3
    listed = list(batch_audit(batch))
    assert len(listed) == len({p.pk for p in listed}) == 3
    assert {p.application.applicant_id for p in listed} == {p.pk for p in payees[:3]}
    assert {tuple(payment_flags(p)) for p in listed} == {("shared_account",)}


def test_a_payment_shared_and_changed_carries_both_flags_once(maker):
    round_ = selected_round(3)
    first, second, third = (
        a.applicant for a in Application.objects.filter(round=round_).order_by("id")
    )
    give_account([first, second, third], "family-account")
    batch = built_batch(round_, maker)
    # The third payee gives another account now; two others are still paid to the old one.
    give_account([third], "new-account")
    flags = {p.application.applicant_id: payment_flags(p) for p in payments_with_flags(batch)}
    assert flags == {
        first.pk: ["shared_account"],
        second.pk: ["shared_account"],
        third.pk: ["shared_account", "account_changed"],
    }
    assert batch_audit_summary(batch) == {
        "shared_account": 3,
        "account_changed": 1,
        "amount_anomaly": 0,
        "application_changed": 0,
        "eligibility_changed": 0,
        "any": 3,
    }


def test_a_provider_and_an_applicant_with_the_same_id_are_two_payees(maker):
    accounts = issue_vouchers(1)
    provider = make_provider()
    redeem(provider, accounts[0].code, 10_000)
    batch = settle(accounts[0].round, maker)
    paid_to = provider.provider
    # The applicant whose id is the provider's gives the provider's account: someone else.
    holder = Applicant.objects.filter(pk=paid_to.pk).first() or ApplicantFactory(pk=paid_to.pk)
    give_account([holder], paid_to.account_fingerprint)
    assert [payment_flags(p) for p in batch_audit(batch)] == [["shared_account"]]


def test_a_held_out_payment_keeps_its_flags_in_the_list_but_leaves_the_audit(maker, checker):
    round_ = selected_round(3)
    payees = [a.applicant for a in Application.objects.filter(round=round_).order_by("id")]
    give_account(payees[:2], "shared")
    ApplicantFactory(account_fingerprint="shared")
    batch = built_batch(round_, maker)
    held = batch.payments.get(application__applicant=payees[0])
    services.payment_hold(batch=batch, payment_id=held.pk, actor=checker, reason="계좌 확인")
    read = batch_audit_read(batch)
    assert {p.pk for p in batch_audit(batch, audit=read)} == {
        batch.payments.get(application__applicant=payees[1]).pk
    }
    assert batch_audit_summary(batch, audit=read)["shared_account"] == 1
    shown = {p.pk: payment_flags(p) for p in payments_with_flags(batch, audit=read)}
    assert shown[held.pk] == ["shared_account"]


def test_one_reading_answers_the_summary_the_list_and_the_badges(maker):
    round_ = selected_round(3)
    payees = [a.applicant for a in Application.objects.filter(round=round_).order_by("id")]
    give_account(payees[:2], "shared")
    batch = built_batch(round_, maker)
    read = batch_audit_read(batch)
    with CaptureQueriesContext(connection) as queries:
        summary = batch_audit_summary(batch, audit=read)
        listed = list(batch_audit(batch, audit=read))
        flagged = list(payments_with_flags(batch, audit=read).filter(shared_account=True))
    assert len(queries) == 2  # the two lists; the summary is counted from the reading
    assert summary["shared_account"] == len(listed) == len(flagged) == 2


def test_an_audit_read_for_another_batch_is_refused(maker):
    first = built_batch(selected_round(1), maker)
    second = built_batch(selected_round(1), maker)
    with pytest.raises(ValueError, match="not #"):
        batch_audit_summary(second, audit=batch_audit_read(first))


def test_an_approval_from_a_reading_is_refused_for_a_new_flag_even_on_a_flagged_payment(
    maker, checker
):
    round_ = selected_round(2)
    first, second = (a.applicant for a in Application.objects.filter(round=round_).order_by("id"))
    batch = services.batch_submit(batch=built_batch(round_, maker), actor=maker)
    Payment.objects.filter(application__applicant=first).update(amount=1)  # amount_anomaly
    seen = batch_audit_keep(batch=batch, actor=checker)
    assert seen.flags == {Payment.objects.get(application__applicant=first).pk: ("amount_anomaly",)}
    assert batch_audit_unseen(batch, seen=seen) == {}

    # The same payment, already flagged, now also goes to an account another payee gives.
    give_account([second], first.account_fingerprint)
    paid_to_first = Payment.objects.get(application__applicant=first).pk
    assert batch_audit_unseen(batch, seen=seen)[paid_to_first] == ("shared_account",)
    with pytest.raises(Conflict) as refused:
        services.batch_approve(batch=batch, actor=checker, audit_seen=seen.reading_id)
    assert refused.value.code == "audit_changed"
    batch.refresh_from_db()
    assert batch.status == DisbursementBatch.Status.PENDING_APPROVAL

    again = batch_audit_keep(batch=batch, actor=checker)
    approved = services.batch_approve(batch=batch, actor=checker, audit_seen=again.reading_id)
    assert approved.status == DisbursementBatch.Status.APPROVED


def test_the_build_keeps_the_first_reading_of_the_audit(maker):
    round_ = selected_round(2)
    payees = [a.applicant for a in Application.objects.filter(round=round_).order_by("id")]
    give_account(payees, "one-account")
    batch = built_batch(round_, maker)
    reading = BatchAuditReading.objects.get(batch=batch)
    assert reading.read_by is None
    assert sorted(reading.flags.values()) == [["shared_account"], ["shared_account"]]
    assert batch_audit_current(batch=batch).reading_id == reading.pk
