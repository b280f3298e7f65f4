"""Voucher accounts: issue on disbursement, redeem and refund by providers, lapse, top-up.

The balance of an account is the sum of its ledger; every entry is written while the
account's row is locked, carries the balance after it, and the database refuses a
negative one. Lock order: round, then voucher accounts (by id), then entries.
"""

import secrets
from datetime import date

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from benefits.models import Notification, Round
from benefits.notifications import notification_enqueue_many
from benefits.selection import lottery_key
from core.audit import audit_record
from core.exceptions import Conflict, DomainError
from payments.models import Provider, ProviderUser, VoucherAccount, VoucherEntry

CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O or 1/I to misread
CODE_GROUPS = 4
LAPSE_CHUNK = 5000
NOT_A_COURSE = ("materials", "textbooks")


def new_voucher_code() -> str:
    """An unguessable code: 16 characters from 32, 80 random bits, grouped for reading aloud."""
    chars = "".join(secrets.choice(CODE_ALPHABET) for _ in range(4 * CODE_GROUPS))
    return "-".join(chars[i : i + 4] for i in range(0, len(chars), 4))


def normalize_code(code: str) -> str:
    chars = "".join(ch for ch in str(code).upper() if ch.isalnum())
    return "-".join(chars[i : i + 4] for i in range(0, len(chars), 4))


def voucher_expiry(round_: Round) -> date:
    return round_.voucher_expires_on or date(round_.year, 12, 31)


def voucher_balance(account: VoucherAccount) -> int:
    return account.entries.aggregate(total=Sum("amount"))["total"] or 0


def voucher_accounts_issue(*, payments) -> int:
    """Open one account per credited payment, with its credit entry; return how many."""
    created = 0
    rows = list(
        payments.exclude(Exists(VoucherAccount.objects.filter(application=OuterRef("application"))))
        .order_by("id")
        .values_list("application_id", "application__applicant_id", "round_id", "amount")
    )
    expiry: dict[int, date] = {}
    for start in range(0, len(rows), 2000):
        chunk = rows[start : start + 2000]
        accounts = []
        for application_id, applicant_id, round_id, _amount in chunk:
            if round_id not in expiry:
                expiry[round_id] = voucher_expiry(Round.objects.get(pk=round_id))
            accounts.append(
                VoucherAccount(
                    code=new_voucher_code(),
                    application_id=application_id,
                    applicant_id=applicant_id,
                    round_id=round_id,
                    expires_on=expiry[round_id],
                )
            )
        VoucherAccount.objects.bulk_create(accounts)
        by_application = dict(
            VoucherAccount.objects.filter(application_id__in=[row[0] for row in chunk]).values_list(
                "application_id", "id"
            )
        )
        VoucherEntry.objects.bulk_create(
            VoucherEntry(
                account_id=by_application[application_id],
                kind=VoucherEntry.Kind.CREDIT,
                amount=amount,
                balance_after=amount,
            )
            for application_id, _applicant, _round, amount in chunk
        )
        created += len(accounts)
    return created


def _provider_of(user) -> Provider:
    membership = ProviderUser.objects.select_related("provider").filter(user=user).first()
    if membership is None:
        raise PermissionDenied
    return membership.provider


def _lock_account(code: str) -> VoucherAccount:
    account = VoucherAccount.objects.select_for_update().filter(code=normalize_code(code)).first()
    if account is None:
        raise DomainError("No voucher has this code.", code="unknown_voucher", field="voucher_code")
    return account


def _require_unexpired(account: VoucherAccount) -> None:
    if account.lapsed_at is not None or account.expires_on < timezone.localdate():
        raise DomainError(
            f"This voucher expired on {account.expires_on.isoformat()}.",
            code="voucher_expired",
            field="voucher_code",
        )


@transaction.atomic
def voucher_redeem(
    *,
    actor,
    voucher_code: str,
    amount: int,
    course: str,
    purpose: str = "course",
    idempotency_key: str = "",
) -> VoucherEntry:
    """Charge a course to a voucher; never beyond its balance, after expiry or when suspended."""
    provider = _provider_of(actor)
    if not provider.is_active:
        raise DomainError(
            "Your institution is suspended: it cannot redeem vouchers.",
            code="provider_suspended",
        )
    if purpose in NOT_A_COURSE:
        raise DomainError(
            "Vouchers pay for courses, not for materials or textbooks alone.",
            code="not_a_course",
            field="purpose",
        )
    course = (course or "").strip()
    if not course:
        raise DomainError("Name the course being paid for.", code="required", field="course")
    if idempotency_key:
        earlier = VoucherEntry.objects.filter(
            provider=provider, idempotency_key=idempotency_key
        ).first()
        if earlier is not None:
            return earlier
    account = _lock_account(voucher_code)
    _require_unexpired(account)
    balance = voucher_balance(account)
    if amount > balance:
        raise DomainError(
            f"The voucher's balance is {balance:,} KRW: {amount:,} KRW cannot be charged.",
            code="insufficient_balance",
            field="amount",
        )
    try:
        with transaction.atomic():
            return VoucherEntry.objects.create(
                account=account,
                kind=VoucherEntry.Kind.REDEMPTION,
                amount=-amount,
                balance_after=balance - amount,
                provider=provider,
                course=course[:200],
                idempotency_key=idempotency_key,
                actor=actor,
            )
    except IntegrityError:
        # The same key raced in from another request: its entry is the answer. Without a
        # key, or when no entry holds it, the database refused this entry for another
        # reason (the never-negative balance, say): that is an error, never a success.
        earlier = (
            VoucherEntry.objects.filter(provider=provider, idempotency_key=idempotency_key).first()
            if idempotency_key
            else None
        )
        if earlier is None:
            raise
        return earlier


def _redemption_for(actor, pk: int) -> VoucherEntry:
    provider = _provider_of(actor)
    redemption = VoucherEntry.objects.filter(
        pk=pk, kind=VoucherEntry.Kind.REDEMPTION, provider=provider
    ).first()
    if redemption is None:
        from django.http import Http404

        raise Http404  # another provider's redemption does not exist for this one
    return redemption


def redemption_refunded(redemption: VoucherEntry) -> int:
    return redemption.refunds.aggregate(total=Sum("amount"))["total"] or 0


@transaction.atomic
def voucher_refund(*, actor, redemption_id: int, amount: int | None = None) -> VoucherEntry:
    """Give back part or all of a redemption to the voucher, by the provider who charged it."""
    redemption = _redemption_for(actor, redemption_id)
    account = VoucherAccount.objects.select_for_update().get(pk=redemption.account_id)
    _require_unexpired(account)
    remaining = -redemption.amount - redemption_refunded(redemption)
    amount = remaining if amount is None else amount
    if remaining <= 0:
        raise Conflict("This redemption has been refunded in full already.", code="refunded")
    if amount <= 0 or amount > remaining:
        raise DomainError(
            f"A refund of this redemption is between 1 and {remaining:,} KRW.",
            code="invalid_amount",
            field="amount",
        )
    balance = voucher_balance(account)
    return VoucherEntry.objects.create(
        account=account,
        kind=VoucherEntry.Kind.REFUND,
        amount=amount,
        balance_after=balance + amount,
        provider=redemption.provider,
        course=redemption.course,
        redemption=redemption,
        actor=actor,
    )


@transaction.atomic
def voucher_course_complete(*, actor, redemption_id: int) -> VoucherEntry:
    """Record that the course a redemption paid for was completed (for the top-up)."""
    redemption = _redemption_for(actor, redemption_id)
    if not redemption.completed:
        VoucherEntry.objects.filter(pk=redemption.pk).update(completed=True)
        redemption.completed = True
    return redemption


def vouchers_lapse(*, today: date | None = None, chunk_size: int = LAPSE_CHUNK) -> int:
    """Lapse the unspent balance of every voucher past its expiry; safe to run twice.

    Works in committed chunks of accounts; each lapse entry returns its amount to the
    round's budget ledger. Returns the number of accounts lapsed in this run.
    """
    today = today or timezone.localdate()
    lapsed = 0
    after = 0
    while True:
        with transaction.atomic():
            ids = list(
                VoucherAccount.objects.select_for_update()
                .filter(expires_on__lt=today, lapsed_at__isnull=True, id__gt=after)
                .order_by("id")
                .values_list("id", flat=True)[:chunk_size]
            )
            if not ids:
                return lapsed
            scope = ",".join(str(int(i)) for i in ids)
            now = timezone.now()
            entries = connection.ops.quote_name(VoucherEntry._meta.db_table)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"""
                    INSERT INTO {entries} (account_id, kind, amount, balance_after,
                        course, completed, idempotency_key, at)
                    SELECT e.account_id, %s, -SUM(e.amount), 0, '', false, '', %s
                    FROM {entries} e
                    WHERE e.account_id IN ({scope})
                    GROUP BY e.account_id
                    HAVING SUM(e.amount) > 0
                    ON CONFLICT DO NOTHING
                    """,  # noqa: S608 - a quoted table name and integer ids only
                    [VoucherEntry.Kind.LAPSE, now],
                )
            VoucherAccount.objects.filter(pk__in=ids, lapsed_at__isnull=True).update(lapsed_at=now)
            lapsed += len(ids)
            after = ids[-1]


@transaction.atomic
def voucher_top_up(*, round_: Round, actor) -> dict:
    """Grant the round's top-up to excellent users: balance spent, a course completed, no refund.

    At most the round's share of its recipients, ranked by the round's published lottery
    (SHA-256 of "<seed>:<application id>"). Running it again grants nobody twice. A top-up
    is money committed from the round's budget: when what is left of the budget cannot
    cover every top-up due, nothing is granted.
    """
    from payments.selectors import round_budget_ledger

    if not actor.has_perm("benefits.manage_round"):
        raise PermissionDenied
    round_ = Round.objects.select_for_update().get(pk=round_.pk)
    if round_.top_up_amount <= 0 or round_.top_up_share <= 0:
        raise DomainError("This round has no top-up configured.", code="no_top_up")
    Kind = VoucherEntry.Kind
    accounts = VoucherAccount.objects.filter(round=round_)
    limit = accounts.count() * round_.top_up_share // 100
    already = VoucherEntry.objects.filter(account__round=round_, kind=Kind.TOP_UP).count()
    entries = VoucherEntry.objects.filter(account=OuterRef("pk"))
    eligible = list(
        accounts.filter(lapsed_at__isnull=True, expires_on__gte=timezone.localdate())
        .annotate(balance=Sum("entries__amount"))
        .filter(balance=0)
        .filter(Exists(entries.filter(kind=Kind.REDEMPTION, completed=True)))
        .exclude(Exists(entries.filter(kind__in=[Kind.REFUND, Kind.TOP_UP])))
        .values_list("id", "application_id")
    )
    seed = round_.selection_seed or ""
    eligible.sort(key=lambda row: (lottery_key(seed, row[1]), row[1]))
    chosen = [account_id for account_id, _ in eligible[: max(limit - already, 0)]]
    # Lock the chosen accounts, then re-check under the lock that nothing was spent meanwhile.
    list(VoucherAccount.objects.select_for_update().filter(pk__in=chosen).order_by("id"))
    balances = dict(
        VoucherEntry.objects.filter(account_id__in=chosen)
        .values("account")
        .annotate(total=Sum("amount"))
        .values_list("account", "total")
    )
    granting = [account_id for account_id in chosen if balances.get(account_id, 0) == 0]
    needed = len(granting) * round_.top_up_amount
    available = round_budget_ledger(round_).available
    if needed > available:
        raise Conflict(
            f"The top-up needs {needed:,} KRW for {len(granting)} recipients, but only "
            f"{max(available, 0):,} KRW of the round's budget is left: nothing was granted.",
            code="over_budget",
        )
    VoucherEntry.objects.bulk_create(
        VoucherEntry(
            account_id=account_id,
            kind=Kind.TOP_UP,
            amount=round_.top_up_amount,
            balance_after=round_.top_up_amount,
            actor=actor,
        )
        for account_id in granting
    )
    result = {"eligible": len(eligible), "granted": len(granting), "limit": limit}
    event = audit_record(actor=actor, obj=round_, action="round.voucher_top_up", data=result)
    notification_enqueue_many(
        rows=VoucherAccount.objects.filter(pk__in=granting),
        kind=Notification.Kind.TOP_UP_GRANTED,
        event_key=f"topup{event.pk}",
        application_field="application_id",
        user_field="applicant__user_id",
    )
    return result


def voucher_for_citizen(applicant) -> VoucherAccount | None:
    """The citizen's most recent voucher, if any, with its balance (the sum of its ledger)."""
    return (
        VoucherAccount.objects.filter(applicant=applicant)
        .annotate(balance=Coalesce(Sum("entries__amount"), 0))
        .order_by("-created_at", "-id")
        .first()
    )


def voucher_round_totals(round_id: int) -> tuple[int, int]:
    """What a round's vouchers were topped up with, and what lapsed back (positive KRW)."""
    Kind = VoucherEntry.Kind
    totals = dict(
        VoucherEntry.objects.filter(account__round_id=round_id, kind__in=[Kind.TOP_UP, Kind.LAPSE])
        .values_list("kind")
        .annotate(total=Sum("amount"))
        .values_list("kind", "total")
    )
    return totals.get(Kind.TOP_UP, 0), -totals.get(Kind.LAPSE, 0)
