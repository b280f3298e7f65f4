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
    Value,
)
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


def _audit_sql(batch: DisbursementBatch) -> tuple[str, dict]:
    """The batch's flagged payments: id, status, then a column per AUDIT_FLAGS entry.

    - shared_account: someone else gives the payment's account now (another applicant),
      or is paid to it (another payee's live payment, a citizen's or a provider's, in this
      batch or any other);
    - account_changed: the payee changed accounts shortly before the batch, or since the
      payment copied it;
    - amount_anomaly: not the round's amount; application_changed: no longer selected;
    - eligibility_changed: a registry now says otherwise than when the application was
      approved (an open flag).

    One set-based statement whatever the batch's size, where a probe per payment took
    seconds for 50,000: the batch's payments hash-joined once to their applications and
    payees, once to the applicants and once to the live payments on the account's
    fingerprint. A payee is an integer, the applicant's id or a provider's id negated, so
    comparing two costs nothing. The second arm names the payments shared with another
    payment, and a payment comes back once for each other holder or payment of its
    account (batch_audit_read merges the rows): n payments on one account make n² rows,
    as two arms rather than one join so that they never make n³.
    """
    q = connection.ops.quote_name
    payment, application = q(Payment._meta.db_table), q(Application._meta.db_table)
    applicant, round_ = q(Applicant._meta.db_table), q(Round._meta.db_table)
    flag = q(ApplicationFlag._meta.db_table)
    live = ", ".join(f"%(live{i})s" for i in range(len(Payment.LIVE_STATES)))
    reasons = {
        "shared_account": "(o.id IS NOT NULL)",
        "account_changed": """(p.application_id IS NOT NULL AND (
            ap.account_changed_at >= %(since)s OR ap.account_fingerprint IS NULL
            OR ap.account_fingerprint <> p.account_fingerprint))""",
        "amount_anomaly": "(p.application_id IS NOT NULL AND p.amount <> r.amount)",
        "application_changed": """(p.application_id IS NOT NULL
            AND (a.status IS NULL OR a.status <> %(selected)s))""",
        "eligibility_changed": f"""(p.application_id IN (
            SELECT f.application_id FROM {flag} f
            WHERE f.kind = %(eligibility)s AND f.cleared_at IS NULL))""",  # noqa: S608
    }
    shared_only = ", ".join("TRUE" if name == "shared_account" else "FALSE" for name in AUDIT_FLAGS)
    # Quoted table names; every value is bound.
    sql = f"""
        SELECT p.id, p.status, {", ".join(reasons[name] for name in AUDIT_FLAGS)}
        FROM {payment} p
        JOIN {round_} r ON r.id = p.round_id
        LEFT JOIN {application} a ON a.id = p.application_id
        LEFT JOIN {applicant} ap ON ap.id = a.applicant_id
        LEFT JOIN {applicant} o ON o.account_fingerprint = p.account_fingerprint
            AND p.account_fingerprint <> '' AND o.id <> COALESCE(a.applicant_id, -p.provider_id)
        WHERE p.batch_id = %(batch)s AND ({" OR ".join(reasons.values())})
        UNION ALL
        SELECT p.id, p.status, {shared_only}
        FROM {payment} p
        JOIN {payment} x ON x.account_fingerprint = p.account_fingerprint AND x.id <> p.id
        LEFT JOIN {application} a ON a.id = p.application_id
        LEFT JOIN {application} xa ON xa.id = x.application_id
        WHERE p.batch_id = %(batch)s AND p.account_fingerprint <> '' AND x.status IN ({live})
          AND COALESCE(xa.applicant_id, -x.provider_id) <> COALESCE(a.applicant_id, -p.provider_id)
    """  # noqa: S608
    since = batch.created_at - settings.BAEUM_ACCOUNT_CHANGE_WINDOW
    return sql, {
        "batch": batch.pk,
        "since": connection.ops.adapt_datetimefield_value(since),
        "selected": Application.Status.SELECTED,
        "eligibility": ApplicationFlag.Kind.ELIGIBILITY_CHANGED,
        **{f"live{i}": state for i, state in enumerate(Payment.LIVE_STATES)},
    }


def _ids_flag(ids) -> ExpressionWrapper:
    # Flagged payments are few; a batch whose every payment is flagged binds a long list,
    # which PostgreSQL hashes (psycopg binds it on the client) and SQLite takes up to 250,000.
    return _flag(Q(pk__in=sorted(ids)) if ids else Value(False))


@dataclass(frozen=True)
class BatchAudit:
    """A batch's pre-release audit as read at one moment: each flagged payment's flags.

    Read once per request (batch_audit_read) and handed to the selectors below, so that a
    page's summary, its list of flagged payments and its payments' badges cost one
    reading of the batch and agree with each other.
    """

    batch_id: int
    flags: dict[int, tuple[str, ...]]  # payment id -> its flags; unflagged payments left out
    pending: frozenset[int]  # the flagged payments that are pending

    def ids(self, flag: str | None = None, *, pending: bool = False) -> set[int]:
        """The payments carrying `flag` (or any flag), only the pending ones if asked."""
        return {
            pk
            for pk, flags in self.flags.items()
            if (flag is None or flag in flags) and (not pending or pk in self.pending)
        }


def batch_audit_read(batch: DisbursementBatch) -> BatchAudit:
    """Read the batch's pre-release audit now, in one set-based statement (_audit_sql)."""
    sql, params = _audit_sql(batch)
    flags: dict[int, set[str]] = {}
    pending = set()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for pk, status, *marks in cursor.fetchall():
            found = flags.setdefault(pk, set())
            found.update(name for name, mark in zip(AUDIT_FLAGS, marks, strict=True) if mark)
            if status == Payment.Status.PENDING:
                pending.add(pk)
    return BatchAudit(
        batch_id=batch.pk,
        flags={pk: tuple(f for f in AUDIT_FLAGS if f in found) for pk, found in flags.items()},
        pending=frozenset(pending),
    )


def _audit_of(batch: DisbursementBatch, audit: BatchAudit | None) -> BatchAudit:
    if audit is None:
        return batch_audit_read(batch)
    if audit.batch_id != batch.pk:
        raise ValueError(f"The audit read is batch #{audit.batch_id}'s, not #{batch.pk}'s.")
    return audit


def payments_with_flags(batch: DisbursementBatch, *, audit: BatchAudit | None = None):
    """The batch's payments, each annotated with the pre-release audit flags (read now, or
    the `audit` read already for this request)."""
    audit = _audit_of(batch, audit)
    return (
        Payment.objects.filter(batch=batch)
        .select_related("application__applicant", "provider")
        .annotate(**{flag: _ids_flag(audit.ids(flag)) for flag in AUDIT_FLAGS})
        .order_by("id")
    )


def payment_flags(payment: Payment) -> list[str]:
    return [flag for flag in AUDIT_FLAGS if getattr(payment, flag, False)]


def batch_audit(
    batch: DisbursementBatch, *, flag: str | None = None, audit: BatchAudit | None = None
):
    """Payments the checker should look at before approving: any flag, or the one asked for."""
    audit = _audit_of(batch, audit)
    return payments_with_flags(batch, audit=audit).filter(
        status=Payment.Status.PENDING, pk__in=sorted(audit.ids(flag, pending=True))
    )


def batch_audit_summary(batch: DisbursementBatch, *, audit: BatchAudit | None = None) -> dict:
    """How many pending payments carry each audit flag, and under "any" how many carry at
    least one (the length of batch_audit's list)."""
    audit = _audit_of(batch, audit)
    return {
        **{flag: len(audit.ids(flag, pending=True)) for flag in AUDIT_FLAGS},
        "any": len(audit.pending),
    }


def payments_for_citizen(application: Application) -> list[Payment]:
    """An application's payment attempts as its citizen sees them (held-out ones are internal)."""
    cached = getattr(application, "_prefetched_objects_cache", {}).get("payments")
    payments = cached if cached is not None else application.payments.order_by("id")
    return [p for p in payments if p.status != Payment.Status.CANCELLED]
