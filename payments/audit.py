"""A batch's pre-release audit: the payments a checker should look at twice, and why.

Read in one set-based statement (batch_audit_read) and kept as a reading
(BatchAuditReading): the batch page shows the newest reading younger than
BAEUM_AUDIT_MAX_AGE instead of recomputing the audit of every payment on each view, and an
approval from that page reads the audit again and is refused if a payment was flagged
since the reading its checker saw (batch_audit_unseen).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, ExpressionWrapper, Q, Value
from django.utils import timezone

from benefits.models import Applicant, Application, ApplicationFlag, Round
from payments.models import BatchAuditReading, DisbursementBatch, Payment

AUDIT_FLAGS = (
    "shared_account",
    "account_changed",
    "amount_anomaly",
    "application_changed",
    "eligibility_changed",
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
    read_at: datetime
    reading_id: int | None = None  # the stored reading it comes from, if any

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
        read_at=timezone.now(),
    )


def _from_reading(reading: BatchAuditReading) -> BatchAudit:
    """A kept reading, with the payments pending as they are now: one held out since the
    reading no longer counts as waiting for the checker."""
    flags = {
        int(pk): tuple(f for f in AUDIT_FLAGS if f in names) for pk, names in reading.flags.items()
    }
    pending = (
        Payment.objects.filter(
            batch_id=reading.batch_id, pk__in=sorted(flags), status=Payment.Status.PENDING
        ).values_list("pk", flat=True)
        if flags
        else ()
    )
    return BatchAudit(
        batch_id=reading.batch_id,
        flags=flags,
        pending=frozenset(pending),
        read_at=reading.read_at,
        reading_id=reading.pk,
    )


def batch_audit_keep(*, batch: DisbursementBatch, actor=None) -> BatchAudit:
    """Read the batch's audit now and keep the reading (the build's, or a finance user's)."""
    audit = batch_audit_read(batch)
    reading = BatchAuditReading.objects.create(
        batch=batch,
        read_at=audit.read_at,
        read_by=actor,
        flags={str(pk): list(flags) for pk, flags in audit.flags.items()},
    )
    return _from_reading(reading)


def batch_audit_current(
    *, batch: DisbursementBatch, actor=None, max_age: timedelta | None = None
) -> BatchAudit:
    """The batch's newest reading if younger than max_age (BAEUM_AUDIT_MAX_AGE), else a new
    one, kept."""
    max_age = settings.BAEUM_AUDIT_MAX_AGE if max_age is None else max_age
    reading = (
        BatchAuditReading.objects.filter(batch=batch, read_at__gt=timezone.now() - max_age)
        .order_by("-read_at", "-id")
        .first()
    )
    if reading is None:
        return batch_audit_keep(batch=batch, actor=actor)
    return _from_reading(reading)


def batch_audit_reading(*, batch: DisbursementBatch, reading_id: int) -> BatchAudit | None:
    """One kept reading of this batch's audit, or None."""
    reading = BatchAuditReading.objects.filter(batch=batch, pk=reading_id).first()
    return None if reading is None else _from_reading(reading)


def batch_audit_unseen(batch: DisbursementBatch, *, seen: BatchAudit) -> dict[int, tuple]:
    """The pending payments that the audit, read now, flags for a reason the reading `seen`
    did not show them with: what a checker who approves from that reading has not seen."""
    now = batch_audit_read(batch)
    unseen = {}
    for pk in now.pending:
        new = tuple(f for f in now.flags[pk] if f not in seen.flags.get(pk, ()))
        if new:
            unseen[pk] = new
    return unseen


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
