"""Vouchers under real concurrency on PostgreSQL: the account lock and the constraints decide."""

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from core.roles import Role
from payments import settlement
from payments.models import Payment, VoucherAccount, VoucherEntry
from payments.vouchers import voucher_balance, voucher_refund, voucher_top_up
from tests.factories import UserFactory
from tests.integration.test_concurrency import run_together
from tests.payments.test_vouchers import AMOUNT, issue_vouchers, make_provider, redeem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture(autouse=True)
def _needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("voucher races are tested on PostgreSQL: set DATABASE_URL")


def test_twenty_threads_spend_exactly_the_balance_and_never_below_zero():
    account = issue_vouchers(1)[0]
    provider = make_provider()
    # 20 × 20,000 = 400,000 asked for against 350,000: exactly 17 fit, 3 are refused.
    responses = run_together(20, lambda i: redeem(provider, account.code, 20_000))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == AMOUNT // 20_000
    assert all(c == 400 for c in codes if c != 201)
    assert voucher_balance(account) == AMOUNT - (AMOUNT // 20_000) * 20_000
    balances = list(
        VoucherEntry.objects.filter(account=account)
        .order_by("id")
        .values_list("amount", "balance_after")
    )
    running = 0
    for amount, after in balances:
        running += amount
        assert after == running >= 0


def test_the_same_idempotency_key_from_two_threads_charges_once():
    account = issue_vouchers(1)[0]
    provider = make_provider()
    responses = run_together(
        2, lambda i: redeem(provider, account.code, 10_000, key="terminal-3-receipt-991")
    )
    assert sorted(r.status_code for r in responses) in ([201, 201], [201, 409])
    assert VoucherEntry.objects.filter(kind="redemption").count() == 1
    assert voucher_balance(account) == AMOUNT - 10_000


def test_two_settlements_at_once_pay_each_redemption_once():
    accounts = issue_vouchers(3)
    provider = make_provider()
    for account in accounts:
        redeem(provider, account.code, 50_000)
    finance = UserFactory(role=Role.FINANCE)
    today = timezone.localdate()

    def settle(_):
        try:
            return settlement.settlement_batch_create(
                round_=accounts[0].round,
                actor=finance,
                period_starts_on=today,
                period_ends_on=today,
            ).pk
        except Exception as exc:  # noqa: BLE001 - the loser's refusal is the point
            return exc

    results = run_together(2, settle)
    made = [r for r in results if isinstance(r, int)]
    assert len(made) == 1
    assert Payment.objects.get(batch_id=made[0]).amount == 150_000
    settled = VoucherEntry.objects.filter(kind="redemption").values_list("settlement", flat=True)
    assert len(set(settled)) == 1 and None not in set(settled)


def wait_for_a_lock_wait(timeout: float = 20.0) -> None:
    """Return once another backend waits on a row lock (it reached the contended FOR UPDATE)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            # Inside a transaction pg_stat_activity is read once and kept: read it afresh.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError("nobody waited on the lock")


def test_a_refund_made_while_the_top_up_waits_for_the_account_keeps_it_from_the_top_up():
    account = issue_vouchers(1, top_up_amount=100_000, top_up_share=100, budget=2 * AMOUNT)[0]
    provider = make_provider()
    redemption = redeem(provider, account.code, AMOUNT).json()["id"]
    VoucherEntry.objects.filter(pk=redemption).update(completed=True)
    manager = UserFactory(role=Role.PROGRAM_MANAGER)
    locked, refund_now = threading.Event(), threading.Event()
    results = {}

    def refund_while_holding_the_account():
        try:
            with transaction.atomic():
                list(VoucherAccount.objects.select_for_update().filter(pk=account.pk))
                locked.set()
                refund_now.wait(20)
                voucher_refund(actor=provider.user, redemption_id=redemption, amount=50_000)
        finally:
            connections.close_all()

    def top_up():
        try:
            results["top_up"] = voucher_top_up(round_=account.round, actor=manager)
        finally:
            connections.close_all()

    holder = threading.Thread(target=refund_while_holding_the_account)
    holder.start()
    assert locked.wait(20)
    granting = threading.Thread(target=top_up)
    granting.start()
    wait_for_a_lock_wait()  # the top-up found the account eligible and waits for its lock
    refund_now.set()
    holder.join(30)
    granting.join(30)
    assert results["top_up"]["granted"] == 0
    assert not VoucherEntry.objects.filter(kind=VoucherEntry.Kind.TOP_UP).exists()
    assert voucher_balance(account) == 50_000
