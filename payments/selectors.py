"""Reads on batches and payments: totals, the round's budget ledger, the pre-release audit."""

from dataclasses import asdict, dataclass

from django.conf import settings
from django.db.models import BooleanField, Count, Exists, ExpressionWrapper, F, OuterRef, Q, Sum
from django.shortcuts import get_object_or_404

from benefits.models import Applicant, Application, Round
from payments.models import DisbursementBatch, Payment
from payments.vouchers import voucher_round_totals

AUDIT_FLAGS = ("shared_account", "account_changed", "amount_anomaly", "application_changed")


@dataclass(frozen=True)
class BudgetLedger:
    """Where a round's money stands.

    committed = awaiting_batch + in_batches + paid + failed + top_ups: every won promised
    to someone. returned is what lapsed vouchers gave back, and available what is left:
    budget - committed + returned.
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
    )


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


def _flag_expressions(batch: DisbursementBatch) -> dict:
    """The pre-release audit's reasons to hold a payment out, as SQL expressions."""
    since = batch.created_at - settings.BAEUM_ACCOUNT_CHANGE_WINDOW
    same_account_in_batch = (
        Payment.objects.filter(batch=batch, account_fingerprint=OuterRef("account_fingerprint"))
        .exclude(pk=OuterRef("pk"))
        .exclude(status=Payment.Status.CANCELLED)
    )
    # Outside this batch: another applicant who gives this account now, or another
    # applicant's payment to it, made or on its way (an earlier batch, another round).
    same_account_elsewhere = (
        Applicant.objects.filter(account_fingerprint=OuterRef("account_fingerprint"))
        .exclude(pk=OuterRef("application__applicant_id"))
        .exclude(account_fingerprint="")
    )
    same_account_paid_elsewhere = (
        Payment.objects.filter(
            account_fingerprint=OuterRef("account_fingerprint"),
            status__in=Payment.LIVE_STATES,
            application__isnull=False,
        )
        .exclude(batch=batch)
        .exclude(application__applicant_id=OuterRef("application__applicant_id"))
        .exclude(account_fingerprint="")
    )
    # Changed shortly before the batch, or since the payment copied it.
    account_changed = Applicant.objects.filter(pk=OuterRef("application__applicant_id")).filter(
        Q(account_changed_at__gte=since) | ~Q(account_fingerprint=OuterRef("account_fingerprint"))
    )
    return {
        "shared_account": _flag(
            Exists(same_account_in_batch)
            | Exists(same_account_elsewhere)
            | Exists(same_account_paid_elsewhere)
        ),
        "account_changed": _flag(Exists(account_changed)),
        "amount_anomaly": _flag(Q(application__isnull=False) & ~Q(amount=F("round__amount"))),
        "application_changed": _flag(~Q(application__status=Application.Status.SELECTED)),
    }


def payments_with_flags(batch: DisbursementBatch):
    """The batch's payments, each annotated with the pre-release audit flags."""
    return (
        Payment.objects.filter(batch=batch)
        .select_related("application__applicant")
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
    """How many pending payments carry each audit flag."""
    # Counted on the expressions themselves: Django drops annotations inside aggregate().
    return Payment.objects.filter(batch=batch, status=Payment.Status.PENDING).aggregate(
        **{name: Count("id", filter=expr) for name, expr in _flag_expressions(batch).items()}
    )


def payments_for_citizen(application: Application) -> list[Payment]:
    """An application's payment attempts as its citizen sees them (held-out ones are internal)."""
    cached = getattr(application, "_prefetched_objects_cache", {}).get("payments")
    payments = cached if cached is not None else application.payments.order_by("id")
    return [p for p in payments if p.status != Payment.Status.CANCELLED]
