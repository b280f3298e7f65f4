"""Reads on batches and payments: totals, the round's budget ledger, the pre-release audit,
recoveries."""

from dataclasses import asdict, dataclass

from django.db.models import (
    Count,
    Exists,
    F,
    OuterRef,
    Prefetch,
    Q,
    Sum,
)
from django.shortcuts import get_object_or_404

from benefits.models import Application, Round
from core.roles import Role, user_has_role
from payments.models import DisbursementBatch, Payment, Recovery, Repayment
from payments.vouchers import voucher_round_totals

# Staff who read every recovery; a citizen reads her own.
RECOVERY_READERS = (Role.CASEWORKER, Role.PROGRAM_MANAGER, Role.FINANCE, Role.AUDITOR)


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


def payments_for_citizen(application: Application) -> list[Payment]:
    """An application's payment attempts as its citizen sees them (held-out ones are internal)."""
    cached = getattr(application, "_prefetched_objects_cache", {}).get("payments")
    payments = cached if cached is not None else application.payments.order_by("id")
    return [p for p in payments if p.status != Payment.Status.CANCELLED]
