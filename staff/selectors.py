"""Reads the staff pages need beyond the API's selectors, each in a fixed number of queries."""

from django.db.models import (
    Count,
    Q,
    QuerySet,
    Sum,
)

from benefits import selectors as benefit_selectors
from benefits.models import Applicant, Application, ApplicationFlag, Round
from core.models import AuditEvent
from eligibility.models import RegistryImportJob, RegistrySnapshot
from payments import selectors as payment_selectors
from payments.audit import BatchAudit, payments_with_flags
from payments.models import DisbursementBatch, Payment, Provider, reference_to_pk


def _filtered(applications: QuerySet, filters: dict) -> QuerySet:
    if filters.get("round_id"):
        applications = applications.filter(round_id=filters["round_id"])
    if filters.get("status"):
        applications = applications.filter(status=filters["status"])
    if filters.get("district"):
        applications = applications.filter(applicant__district=filters["district"])
    if filters.get("flag"):
        applications = benefit_selectors.filter_by_review_flag(applications, filters["flag"])
    q = (filters.get("q") or "").strip().lstrip("#")
    if q.isdigit():
        applications = applications.filter(pk=int(q)) if len(q) <= 18 else applications.none()
    elif q:
        applications = applications.filter(applicant__legal_name__icontains=q)
    if filters.get("birth_dates"):
        applications = applications.filter(applicant__birth_date__in=filters["birth_dates"])
    return applications


def review_queue(*, filters: dict) -> QuerySet[Application]:
    """The review API's queue (oldest submission first) narrowed by the page's filters."""
    return _filtered(benefit_selectors.application_list_for_reviewer(), filters)


def next_in_queue(*, filters: dict, after: Application) -> int | None:
    """The id of the application after `after` in the filtered queue, from the top if none.

    The appeals come in the order of their filing, as the queue lists them.
    """
    queue = _filtered(
        Application.objects.exclude(status=Application.Status.DRAFT), filters
    ).exclude(pk=after.pk)
    if filters.get("flag") == "appeal":
        ids = queue.values_list("id", flat=True)  # ordered by the appeal's filing
        appeal = benefit_selectors.open_appeal(after)
        if appeal is not None:
            later = ids.filter(
                Q(appeal_filed_at__gt=appeal.filed_at)
                | Q(appeal_filed_at=appeal.filed_at, id__gt=after.pk)
            ).first()
            if later is not None:
                return later
        return ids.first()
    ids = queue.order_by("submitted_at", "id").values_list("id", flat=True)
    if after.submitted_at is not None:
        later = ids.filter(
            Q(submitted_at__gt=after.submitted_at)
            | Q(submitted_at=after.submitted_at, id__gt=after.pk)
        ).first()
        if later is not None:
            return later
    return ids.first()


def application_history(application: Application) -> QuerySet[AuditEvent]:
    """The application's audit trail with its applicant's (an RRN revealed), oldest first."""
    return (
        AuditEvent.objects.filter(
            Q(object_type=Application._meta.label_lower, object_id=str(application.pk))
            | Q(object_type=Applicant._meta.label_lower, object_id=str(application.applicant_id))
        )
        .select_related("actor")
        .order_by("at", "id")
    )


def application_flags(application: Application) -> QuerySet[ApplicationFlag]:
    """Every flag of the application, open and cleared, oldest first."""
    return application.flags.select_related("cleared_by").order_by("raised_at", "id")


def application_payment_exists(application: Application) -> bool:
    """Whether a payment for the application is pending, sent or paid (no revoking then)."""
    return Payment.objects.filter(
        application_id=application.pk, status__in=Payment.LIVE_STATES
    ).exists()


def batch_eligibility_holds(batch: DisbursementBatch) -> QuerySet[Payment]:
    """The batch's payments held out because the applicant's eligibility changed after the
    decision (the build holds them, naming the flag in the hold reason)."""
    return (
        Payment.objects.filter(
            batch=batch,
            status=Payment.Status.CANCELLED,
            hold_reason__startswith=f"{ApplicationFlag.Kind.ELIGIBILITY_CHANGED}:",
        )
        .select_related("application__applicant")
        .order_by("id")
    )


def latest_flags(application_ids, *, kind: str) -> dict[int, ApplicationFlag]:
    """The latest flag of `kind` of each application, in one query: what a payment held or
    flagged for it is about. An open flag is always the latest (one is open at a time)."""
    flags = ApplicationFlag.objects.filter(
        application_id__in=list(application_ids), kind=kind
    ).select_related("cleared_by")
    return {flag.application_id: flag for flag in flags.order_by("raised_at", "id")}


def recovery_list(*, user, filters: dict):
    """The recoveries (newest first) narrowed by state, overdue and round."""
    from django.utils import timezone

    from payments.models import Recovery

    recoveries = payment_selectors.recovery_list(user=user)
    status = filters.get("status")
    if status == "overdue":
        recoveries = recoveries.filter(status=Recovery.Status.OPEN, due_on__lt=timezone.localdate())
    elif status:
        recoveries = recoveries.filter(status=status)
    if filters.get("round"):
        recoveries = recoveries.filter(round=filters["round"])
    return recoveries


def object_history(obj) -> QuerySet[AuditEvent]:
    """An object's audit trail, oldest first."""
    return (
        AuditEvent.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk))
        .select_related("actor")
        .order_by("at", "id")
    )


def batch_list(*, filters: dict) -> QuerySet[DisbursementBatch]:
    batches = payment_selectors.batch_list_for_finance()
    if filters.get("round"):
        batches = batches.filter(round=filters["round"])
    if filters.get("status"):
        batches = batches.filter(status=filters["status"])
    if filters.get("kind"):
        batches = batches.filter(kind=filters["kind"])
    return batches


def batch_payments(
    batch: DisbursementBatch, *, filters: dict, audit: BatchAudit | None = None
) -> QuerySet[Payment]:
    """The batch's payments with their audit flags (from `audit` if the page read it
    already), narrowed by state, flag and a search."""
    payments = payments_with_flags(batch, audit=audit)
    if filters.get("status"):
        payments = payments.filter(status=filters["status"])
    if filters.get("flag"):
        payments = payments.filter(**{filters["flag"]: True})
    q = (filters.get("q") or "").strip()
    if q:
        pk = reference_to_pk(q.upper())
        digits = q.lstrip("#")
        if pk is not None:
            payments = payments.filter(pk=pk)
        elif digits.isdigit() and len(digits) <= 18:
            payments = payments.filter(Q(pk=int(digits)) | Q(application_id=int(digits)))
        else:
            # As semi-joins, not outer joins of every payment to its payee: the count of a
            # batch of 50,000 found by name reads the matching names once.
            payments = payments.filter(
                Q(
                    application_id__in=Application.objects.filter(
                        applicant__legal_name__icontains=q
                    ).values("pk")
                )
                | Q(provider_id__in=Provider.objects.filter(name__icontains=q).values("pk"))
                | Q(account_holder__icontains=q)
            )
    return payments


def batch_result_imports(batch: DisbursementBatch):
    return batch.result_imports.select_related("imported_by").order_by("-created_at", "-id")


def round_list() -> QuerySet[Round]:
    """Rounds with their number of applications past the draft stage, in one query."""
    return (
        Round.objects.select_related("program")
        .annotate(
            n_applications=Count(
                "applications", filter=~Q(applications__status=Application.Status.DRAFT)
            ),
            n_selected=Count(
                "applications", filter=Q(applications__status=Application.Status.SELECTED)
            ),
        )
        .order_by("-applications_open_at", "-id")
    )


def round_status_counts(round_: Round) -> dict[str, int]:
    rows = (
        Application.objects.filter(round=round_)
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
        .order_by()
    )
    counts = dict.fromkeys(Application.Status.values, 0)
    counts.update(dict(rows))
    return counts


def round_voucher_summary(round_: Round) -> dict:
    """How many vouchers a voucher round issued, and what its top-ups granted."""
    from payments.models import VoucherAccount, VoucherEntry

    return {
        "accounts": VoucherAccount.objects.filter(round=round_).count(),
        **VoucherEntry.objects.filter(
            account__round=round_, kind=VoucherEntry.Kind.TOP_UP
        ).aggregate(top_ups=Count("id"), top_up_total=Sum("amount")),
    }


def registry_jobs() -> QuerySet[RegistryImportJob]:
    return RegistryImportJob.objects.select_related("created_by", "snapshot").order_by(
        "-created_at", "-id"
    )


def active_snapshots() -> dict[str, RegistrySnapshot]:
    return {
        s.kind: s for s in RegistrySnapshot.objects.filter(status=RegistrySnapshot.Status.ACTIVE)
    }
