"""Reads on batches and payments: totals, the round's budget ledger, the pre-release audit,
recoveries."""

from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Prefetch,
    Q,
    Sum,
)
from django.db.models.expressions import RawSQL
from django.shortcuts import get_object_or_404

from benefits.models import Applicant, Application, ApplicationFlag, Round
from core.roles import Role, user_has_role
from payments.models import DisbursementBatch, Payment, Recovery, Repayment
from payments.vouchers import voucher_round_totals

# Staff who read every recovery; a citizen reads her own.
RECOVERY_READERS = (Role.CASEWORKER, Role.PROGRAM_MANAGER, Role.FINANCE, Role.AUDITOR)

AUDIT_FLAGS = (
    "shared_account",
    "account_changed",
    "amount_anomaly",
    "application_changed",
    "eligibility_changed",
)


@dataclass(frozen=True)
class BudgetLedger:
    """Where a round's money stands.

    committed = awaiting_batch + in_batches + paid + failed + top_ups: every won promised
    to someone. returned is what lapsed vouchers gave back, and available what is left:
    budget - committed + returned.

    recovered is what recipients whose training ended early repaid, to_recover what their
    open recoveries still claim. Neither goes back to available: repaid money returns to
    the city's accounts, not to the round, which paid it out already.
    """

    budget: int
    committed: int
    awaiting_batch: int
    in_batches: int
    paid: int
    failed: int
    top_ups: int
    returned: int
    available: int
    recovered: int
    to_recover: int

    def as_dict(self) -> dict:
        return asdict(self)


def round_budget_ledger(round_: Round) -> BudgetLedger:
    """The round's ledger, read from the payments and vouchers themselves so it cannot drift."""
    by_status = dict(
        Payment.objects.filter(round=round_, application__isnull=False)
        .values_list("status")
        .annotate(total=Sum("amount"))
        .values_list("status", "total")
    )
    selected = Application.objects.filter(round=round_, status=Application.Status.SELECTED)
    awaiting = selected.exclude(
        Exists(
            Payment.objects.filter(
                application=OuterRef("pk"),
                status__in=[*Payment.LIVE_STATES, Payment.Status.FAILED],
            )
        )
    ).count()
    in_batches = by_status.get(Payment.Status.PENDING, 0) + by_status.get(Payment.Status.SENT, 0)
    paid = by_status.get(Payment.Status.PAID, 0)
    failed = by_status.get(Payment.Status.FAILED, 0)
    awaiting_batch = awaiting * round_.amount
    top_ups, returned = voucher_round_totals(round_.pk)
    committed = awaiting_batch + in_batches + paid + failed + top_ups
    recovered, to_recover = round_recovery_totals(round_)
    return BudgetLedger(
        budget=round_.budget,
        committed=committed,
        awaiting_batch=awaiting_batch,
        in_batches=in_batches,
        paid=paid,
        failed=failed,
        top_ups=top_ups,
        returned=returned,
        available=round_.budget - committed + returned,
        recovered=recovered,
        to_recover=to_recover,
    )


def round_recovery_totals(round_: Round) -> tuple[int, int]:
    """What the round's recoveries got back (the repayments), and what the open ones still
    claim."""
    totals = Recovery.objects.filter(round=round_).aggregate(
        recovered=Sum("repaid"),
        to_recover=Sum(F("amount") - F("repaid"), filter=Q(status=Recovery.Status.OPEN)),
    )
    return totals["recovered"] or 0, totals["to_recover"] or 0


def recovery_list(*, user):
    """The recoveries the user may read: a citizen her own, staff every one; newest first,
    with their repayments, in a fixed number of queries."""
    recoveries = Recovery.objects.select_related(
        "application__applicant", "created_by", "waiver_requested_by", "waiver_approved_by"
    ).prefetch_related(
        Prefetch(
            "repayments",
            queryset=Repayment.objects.select_related("recorded_by").order_by("paid_on", "id"),
        )
    )
    if not user_has_role(user, *RECOVERY_READERS) and not user.is_superuser:
        recoveries = recoveries.filter(application__applicant__user=user)
    return recoveries.order_by("-created_at", "-id")


def recovery_get(*, user, pk: int) -> Recovery:
    """One recovery the user may read, or 404 (a citizen never learns of another's)."""
    return get_object_or_404(recovery_list(user=user), pk=pk)


def _batch_counts(batch: DisbursementBatch) -> dict:
    rows = batch.payments.values("status").annotate(n=Count("id"), total=Sum("amount"))
    counts = dict.fromkeys(Payment.Status.values, 0)
    total = count = 0
    for row in rows:
        counts[row["status"]] = row["n"]
        if row["status"] != Payment.Status.CANCELLED:
            total += row["total"] or 0
            count += row["n"]
    return {"counts": counts, "payments_count": count, "total_amount": total}


def batch_list_for_finance():
    """Batches with their counts by payment state in the same query (no query per batch)."""
    live = ~Q(payments__status=Payment.Status.CANCELLED)
    return (
        DisbursementBatch.objects.select_related("round", "prepared_by", "approved_by")
        .annotate(
            n_payments=Count("payments", filter=live),
            n_total=Sum("payments__amount", filter=live),
            **{
                f"n_{state}": Count("payments", filter=Q(payments__status=state))
                for state in Payment.Status.values
            },
        )
        .order_by("-created_at", "-id")
    )  # Meta.ordering is dropped from GROUP BY queries


def batch_counts(batch: DisbursementBatch) -> dict:
    """Counts and sums of a batch's payments by state (from batch_list_for_finance if there)."""
    if hasattr(batch, "n_payments"):
        return {
            "counts": {state: getattr(batch, f"n_{state}") for state in Payment.Status.values},
            "payments_count": batch.n_payments,
            "total_amount": batch.n_total or 0,
        }
    return _batch_counts(batch)


def batch_get(*, pk: int) -> DisbursementBatch:
    return get_object_or_404(
        DisbursementBatch.objects.select_related("round__program", "prepared_by", "approved_by"),
        pk=pk,
    )


def _flag(condition) -> ExpressionWrapper:
    return ExpressionWrapper(condition, output_field=BooleanField())


def _shared_account_sql(batch: DisbursementBatch) -> RawSQL:
    """The ids of the batch's payments whose account someone else is paid to or gives.

    Someone else: another applicant who gives the account now, or another payee's payment
    (a citizen's or a provider's), made or on its way, in this batch or any other. One
    set-based statement whatever the batch's size: the accounts the batch pays are grouped
    once against each source, where a probe per payment took seconds for 50,000.
    """
    q = connection.ops.quote_name
    payment, application = q(Payment._meta.db_table), q(Application._meta.db_table)
    applicant = q(Applicant._meta.db_table)
    live = ", ".join(["%s"] * len(Payment.LIVE_STATES))

    def payee(alias: str, application_alias: str) -> str:
        # A payee as text, a citizen's applicant or a provider: "a12", "p3".
        return (
            f"CASE WHEN {application_alias}.applicant_id IS NOT NULL "
            f"THEN 'a' || CAST({application_alias}.applicant_id AS TEXT) "
            f"ELSE 'p' || CAST({alias}.provider_id AS TEXT) END"
        )

    # Quoted table names; every value is bound.
    sql = f"""
        WITH paid_here AS (
            SELECT p.id, p.account_fingerprint AS fp, {payee("p", "a")} AS payee
            FROM {payment} p LEFT JOIN {application} a ON a.id = p.application_id
            WHERE p.batch_id = %s AND p.account_fingerprint <> ''),
        holders AS (
            SELECT account_fingerprint AS fp, MIN('a' || CAST(id AS TEXT)) AS lo,
                   MAX('a' || CAST(id AS TEXT)) AS hi
            FROM {applicant} WHERE account_fingerprint IN (SELECT fp FROM paid_here)
            GROUP BY account_fingerprint),
        paid AS (
            SELECT x.account_fingerprint AS fp, MIN({payee("x", "xa")}) AS lo,
                   MAX({payee("x", "xa")}) AS hi
            FROM {payment} x LEFT JOIN {application} xa ON xa.id = x.application_id
            WHERE x.status IN ({live}) AND x.account_fingerprint IN (SELECT fp FROM paid_here)
            GROUP BY x.account_fingerprint)
        SELECT h.id FROM paid_here h
        LEFT JOIN holders o ON o.fp = h.fp
        LEFT JOIN paid e ON e.fp = h.fp
        WHERE o.lo <> o.hi OR o.lo <> h.payee OR e.lo <> e.hi OR e.lo <> h.payee
    """  # noqa: S608
    return RawSQL(sql, [batch.pk, *Payment.LIVE_STATES])  # noqa: S611 - names quoted, values bound


def _flag_expressions(batch: DisbursementBatch) -> dict:
    """The pre-release audit's reasons to hold a payment out, as SQL expressions that read
    the batch in one pass (see _shared_account_sql); the payee's own account through the
    join the payment makes anyway."""
    since = batch.created_at - settings.BAEUM_ACCOUNT_CHANGE_WINDOW
    payee = "application__applicant__"
    # Changed shortly before the batch, or since the payment copied it.
    account_changed = Q(application__isnull=False) & (
        Q(**{f"{payee}account_changed_at__gte": since})
        | ~Q(**{f"{payee}account_fingerprint": F("account_fingerprint")})
    )
    return {
        "shared_account": _flag(Q(pk__in=_shared_account_sql(batch))),
        "account_changed": _flag(account_changed),
        "amount_anomaly": _flag(Q(application__isnull=False) & ~Q(amount=F("round__amount"))),
        "application_changed": _flag(
            Q(application__isnull=False) & ~Q(application__status=Application.Status.SELECTED)
        ),
        # A registry now says otherwise than when the application was approved.
        "eligibility_changed": _flag(
            Exists(
                ApplicationFlag.objects.filter(
                    application_id=OuterRef("application_id"),
                    kind=ApplicationFlag.Kind.ELIGIBILITY_CHANGED,
                    cleared_at__isnull=True,
                )
            )
        ),
    }


def payments_with_flags(batch: DisbursementBatch):
    """The batch's payments, each annotated with the pre-release audit flags."""
    return (
        Payment.objects.filter(batch=batch)
        .select_related("application__applicant", "provider")
        .annotate(**_flag_expressions(batch))
        .order_by("id")
    )


def payment_flags(payment: Payment) -> list[str]:
    return [flag for flag in AUDIT_FLAGS if getattr(payment, flag, False)]


def batch_audit(batch: DisbursementBatch, *, flag: str | None = None):
    """Payments the checker should look at before approving: any flag, or the one asked for."""
    payments = payments_with_flags(batch).filter(status=Payment.Status.PENDING)
    if flag:
        return payments.filter(**{flag: True})
    query = Q()
    for name in AUDIT_FLAGS:
        query |= Q(**{name: True})
    return payments.filter(query)


def batch_audit_summary(batch: DisbursementBatch) -> dict:
    """How many pending payments carry each audit flag, and under "any" how many carry at
    least one (the length of batch_audit's list), in one pass."""
    # Counted on the expressions themselves: Django drops annotations inside aggregate().
    flags = _flag_expressions(batch)
    any_flag = Q()
    for expression in flags.values():
        any_flag |= Q(expression)
    return Payment.objects.filter(batch=batch, status=Payment.Status.PENDING).aggregate(
        **{name: Count("id", filter=expression) for name, expression in flags.items()},
        any=Count("id", filter=any_flag),
    )


def payments_for_citizen(application: Application) -> list[Payment]:
    """An application's payment attempts as its citizen sees them (held-out ones are internal)."""
    cached = getattr(application, "_prefetched_objects_cache", {}).get("payments")
    payments = cached if cached is not None else application.payments.order_by("id")
    return [p for p in payments if p.status != Payment.Status.CANCELLED]
