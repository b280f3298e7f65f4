"""Vouchers: issue on disbursement, redeem, refund, lapse, top-up, settle providers."""

from datetime import date, timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from benefits.models import Round
from core.crypto import account_fingerprint
from core.exceptions import DomainError
from core.roles import Role
from payments import services, settlement
from payments.models import (
    DisbursementBatch,
    Payment,
    Provider,
    ProviderUser,
    VoucherAccount,
    VoucherEntry,
)
from payments.selectors import round_budget_ledger
from payments.vouchers import voucher_balance, voucher_top_up, vouchers_lapse
from tests.conftest import client_for
from tests.factories import ApplicationFactory, ProgramFactory, RoundFactory, UserFactory

AMOUNT = 350_000


def make_provider(name="서울평생교육원", brn="1348672683", status="active"):
    provider = Provider.objects.create(
        name=name,
        business_registration_number=brn,
        status=status,
        bank_code="020",
        account_number="1002123456789",
        account_holder=name,
        account_fingerprint=account_fingerprint("020", "1002123456789"),
    )
    user = UserFactory(role=Role.PROVIDER)
    ProviderUser.objects.create(user=user, provider=provider)
    client = client_for(user)
    client.user, client.provider = user, provider
    return client


@pytest.fixture
def provider(db):
    return make_provider()


def issue_vouchers(n: int, **round_fields) -> list[VoucherAccount]:
    """A voucher round paid through the real batch path: each recipient gets an account."""
    round_ = RoundFactory(
        program=ProgramFactory(code="VOUCHER"),
        status=Round.Status.SELECTED,
        capacity=n,
        amount=AMOUNT,
        **round_fields,
    )
    for _ in range(n):
        ApplicationFactory(round=round_, status="selected")
    maker, checker = UserFactory(role=Role.FINANCE), UserFactory(role=Role.FINANCE)
    batch = services.batch_create(round_=round_, actor=maker)
    batch = services.batch_build(batch_id=batch.pk)
    batch = services.batch_submit(batch=batch, actor=maker)
    batch = services.batch_approve(batch=batch, actor=checker)
    services.batch_disburse(batch=batch, actor=maker)
    return list(VoucherAccount.objects.filter(round=round_).order_by("id"))


def redeem(client, code, amount, course="바리스타 자격 과정", key=None, **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    body = {"voucher_code": code, "amount": amount, "course": course, **extra}
    return client.post("/api/v1/vouchers/redemptions/", body, format="json", **headers)


@pytest.mark.django_db
def test_disbursing_a_voucher_round_issues_one_account_per_recipient():
    accounts = issue_vouchers(3)
    assert len(accounts) == 3
    assert len({a.code for a in accounts}) == 3
    for account in accounts:
        assert len(account.code) == 19  # XXXX-XXXX-XXXX-XXXX
        assert account.expires_on == date(account.round.year, 12, 31)
        assert voucher_balance(account) == AMOUNT
    assert set(Payment.objects.values_list("status", flat=True)) == {"paid"}


@pytest.mark.django_db
def test_the_citizen_sees_code_balance_expiry_and_ledger(provider):
    account = issue_vouchers(1)[0]
    citizen = client_for(account.applicant.user)
    assert redeem(provider, account.code.lower().replace("-", ""), 100_000).status_code == 201
    body = citizen.get("/api/v1/me/voucher/").json()
    assert body["code"] == account.code
    assert body["balance"] == AMOUNT - 100_000
    assert body["expires_on"] == account.expires_on.isoformat()
    assert [(e["kind"], e["amount"]) for e in body["entries"]] == [
        ("credit", AMOUNT),
        ("redemption", -100_000),
    ]


@pytest.mark.django_db
def test_a_citizen_without_a_voucher_gets_404(citizen):
    response = citizen.get("/api/v1/me/voucher/")
    assert response.status_code == 404


@pytest.mark.django_db
def test_redemption_never_goes_beyond_the_balance(provider):
    account = issue_vouchers(1)[0]
    response = redeem(provider, account.code, AMOUNT + 1)
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert (error["attr"], error["code"]) == ("amount", "insufficient_balance")
    response = redeem(provider, account.code, AMOUNT)
    assert response.status_code == 201
    assert response.json()["balance_after"] == 0
    assert redeem(provider, account.code, 1).status_code == 400
    assert voucher_balance(account) == 0


@pytest.mark.django_db
def test_an_idempotent_replay_does_not_charge_twice(provider):
    account = issue_vouchers(1)[0]
    first = redeem(provider, account.code, 50_000, key="pos-7781")
    again = redeem(provider, account.code, 50_000, key="pos-7781")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert voucher_balance(account) == AMOUNT - 50_000
    other_body = redeem(provider, account.code, 60_000, key="pos-7781")
    assert other_body.status_code == 422


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "code", "attr"),
    [
        ({"purpose": "textbooks"}, "not_a_course", "purpose"),
        ({"purpose": "materials"}, "not_a_course", "purpose"),
        ({"course": " "}, "blank", "course"),
        ({"amount": 0}, "min_value", "amount"),
        ({"amount": "ten"}, "invalid", "amount"),
        ({"voucher_code": "ZZZZ-ZZZZ-ZZZZ-ZZZZ"}, "unknown_voucher", "voucher_code"),
        ({"tip": 1}, "unknown_field", "tip"),
    ],
)
def test_bad_redemptions_are_refused_and_charge_nothing(provider, change, code, attr):
    account = issue_vouchers(1)[0]
    body = {"voucher_code": account.code, "amount": 10_000, "course": "요가 지도자 과정", **change}
    response = provider.post("/api/v1/vouchers/redemptions/", body, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["errors"][0]
    assert (error["attr"], error["code"]) == (attr, code)
    assert voucher_balance(account) == AMOUNT


@pytest.mark.django_db
def test_no_redemption_after_expiry_or_by_a_suspended_provider(provider):
    account = issue_vouchers(1)[0]
    VoucherAccount.objects.filter(pk=account.pk).update(
        expires_on=timezone.localdate() - timedelta(days=1)
    )
    response = redeem(provider, account.code, 1_000)
    assert response.json()["errors"][0]["code"] == "voucher_expired"
    fresh = issue_vouchers(1)[0]
    suspended = make_provider(name="정지된 학원", brn="2208162517", status="suspended")
    response = redeem(suspended, fresh.code, 1_000)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "provider_suspended"
    assert voucher_balance(fresh) == AMOUNT


@pytest.mark.django_db
def test_citizens_and_caseworkers_cannot_redeem(citizen, caseworker):
    account = issue_vouchers(1)[0]
    for client in (citizen, caseworker):
        assert redeem(client, account.code, 1_000).status_code == 403
    assert voucher_balance(account) == AMOUNT


@pytest.mark.django_db
def test_refunds_partial_then_whole_by_the_same_provider_only(provider):
    account = issue_vouchers(1)[0]
    redemption = redeem(provider, account.code, 200_000).json()
    url = f"/api/v1/vouchers/redemptions/{redemption['id']}/refund/"
    other = make_provider(name="다른 학원", brn="2208162517")
    assert other.post(url, {"amount": 1}, format="json").status_code == 404
    response = provider.post(url, {"amount": 50_000}, format="json")
    assert response.status_code == 201
    assert response.json()["balance_after"] == AMOUNT - 150_000
    assert provider.post(url, {"amount": 150_001}, format="json").status_code == 400
    response = provider.post(url, {}, format="json")  # the rest
    assert response.json()["amount"] == 150_000
    assert response.json()["balance_after"] == AMOUNT
    assert provider.post(url, {}, format="json").status_code == 409
    entries = VoucherEntry.objects.filter(account=account)
    assert entries.aggregate(s=Sum("amount"))["s"] == voucher_balance(account) == AMOUNT
    # Each entry carries the balance after it, and they chain.
    running = 0
    for entry in entries.order_by("id"):
        running += entry.amount
        assert entry.balance_after == running


@pytest.mark.django_db
def test_lapse_returns_the_unspent_balance_once(provider):
    accounts = issue_vouchers(3)
    round_ = accounts[0].round
    redeem(provider, accounts[0].code, 100_000)
    redeem(provider, accounts[1].code, AMOUNT)
    before = round_budget_ledger(round_)
    after_expiry = accounts[0].expires_on + timedelta(days=1)
    assert vouchers_lapse(today=after_expiry) == 3
    assert vouchers_lapse(today=after_expiry) == 0
    lapses = VoucherEntry.objects.filter(kind="lapse")
    assert sorted(lapses.values_list("amount", flat=True)) == [-AMOUNT, -(AMOUNT - 100_000)]
    for account in accounts:
        assert voucher_balance(account) == 0
    ledger = round_budget_ledger(round_)
    assert ledger.returned == 2 * AMOUNT - 100_000
    assert ledger.available == before.available + ledger.returned
    assert ledger.paid == 3 * AMOUNT


@pytest.mark.django_db
def test_top_up_goes_to_excellent_users_up_to_the_share(provider, manager):
    accounts = issue_vouchers(
        4,
        top_up_amount=100_000,
        top_up_share=50,
        selection_seed="s33d",
        budget=4 * AMOUNT + 200_000,  # room for the two top-ups
    )
    url = f"/api/v1/rounds/{accounts[0].round_id}/voucher-top-up/"
    spent = []
    for account in accounts[:3]:
        redemption = redeem(provider, account.code, AMOUNT).json()
        spent.append(redemption)
        provider.post(f"/api/v1/vouchers/redemptions/{redemption['id']}/complete/")
    # The third refunded part of it: no longer an excellent user.
    provider.post(f"/api/v1/vouchers/redemptions/{spent[2]['id']}/refund/", {"amount": 1})
    response = manager.post(url)
    assert response.status_code == 200, response.json()
    assert response.json() == {"eligible": 2, "granted": 2, "limit": 2}
    topped = set(VoucherEntry.objects.filter(kind="top_up").values_list("account_id", flat=True))
    assert topped == {accounts[0].pk, accounts[1].pk}
    assert manager.post(url).json()["granted"] == 0
    assert voucher_balance(accounts[0]) == 100_000


@pytest.mark.django_db
def test_top_up_needs_a_configured_round(manager):
    accounts = issue_vouchers(1)
    with pytest.raises(DomainError, match="no top-up"):
        voucher_top_up(round_=accounts[0].round, actor=manager.user)


@pytest.mark.django_db
def test_a_settlement_pays_each_provider_its_redemptions_net_of_refunds_once(provider):
    accounts = issue_vouchers(2)
    other = make_provider(name="마포평생학습관", brn="2208162517")
    r1 = redeem(provider, accounts[0].code, 100_000).json()
    redeem(provider, accounts[1].code, 30_000)
    redeem(other, accounts[1].code, 70_000)
    provider.post(f"/api/v1/vouchers/redemptions/{r1['id']}/refund/", {"amount": 20_000})
    finance1, finance2 = (client_for(UserFactory(role=Role.FINANCE)) for _ in range(2))
    today = timezone.localdate().isoformat()
    body = {
        "round": accounts[0].round_id,
        "kind": "settlement",
        "period_starts_on": today,
        "period_ends_on": today,
    }
    response = finance1.post("/api/v1/disbursements/", body, format="json")
    assert response.status_code == 201, response.json()
    batch = response.json()
    assert batch["kind"] == "settlement"
    assert batch["total_amount"] == 180_000
    owed = dict(Payment.objects.filter(batch_id=batch["id"]).values_list("provider", "amount"))
    assert owed == {provider.provider.pk: 110_000, other.provider.pk: 70_000}
    again = finance1.post("/api/v1/disbursements/", body, format="json")
    assert again.status_code == 400
    assert again.json()["errors"][0]["code"] == "nothing_to_pay"
    assert not VoucherEntry.objects.filter(
        kind__in=["redemption", "refund"], settlement__isnull=True
    ).exists()
    # Through the same machinery: maker-checker, bank file, results.
    finance1.post(f"/api/v1/disbursements/{batch['id']}/submit/")
    assert finance1.post(f"/api/v1/disbursements/{batch['id']}/approve/").status_code == 403
    assert finance2.post(f"/api/v1/disbursements/{batch['id']}/approve/").status_code == 200
    batch_obj = DisbursementBatch.objects.get(pk=batch["id"])
    from payments.exports import bank_file_generate

    bank_file_generate(batch_id=batch_obj.pk, fmt="csv")
    csv_text = b"".join(
        finance1.get(f"/api/v1/disbursements/{batch['id']}/export/?format=csv").streaming_content
    ).decode()
    assert "1002123456789" in csv_text  # the provider's account, decrypted for the bank only
    assert finance1.post(f"/api/v1/disbursements/{batch['id']}/disburse/").status_code == 200


@pytest.mark.django_db
def test_a_cancelled_settlement_frees_its_redemptions_for_the_next(provider):
    accounts = issue_vouchers(1)
    redeem(provider, accounts[0].code, 100_000)
    finance = UserFactory(role=Role.FINANCE)
    today = timezone.localdate()
    batch = settlement.settlement_batch_create(
        round_=accounts[0].round, actor=finance, period_starts_on=today, period_ends_on=today
    )
    services.batch_cancel(batch=batch, actor=finance)
    assert not VoucherEntry.objects.filter(settlement__isnull=False).exists()
    again = settlement.settlement_batch_create(
        round_=accounts[0].round, actor=finance, period_starts_on=today, period_ends_on=today
    )
    assert again.payments.get().amount == 100_000
