"""Writes on disbursement batches: create and build, submit, approve, disburse, cancel, hold.

Lock order everywhere: round, then batch, then applications, then payments. Payments change
state in sets through core.fsm.bulk_transition, which obeys the Payment FSM's transitions.
"""

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Subquery, Sum, TextField, Value
from django.db.models.functions import Concat
from django.utils import timezone
from django_fsm import can_proceed

from benefits.models import Applicant, Application, ApplicationFlag, Notification, Round
from benefits.notifications import notification_enqueue_many
from core.audit import audit_record
from core.exceptions import Conflict, DomainError, InvalidTransition
from core.fsm import bulk_transition, require_transition
from core.outbox import outbox_enqueue, outbox_heartbeat
from payments.exports import bank_files_key
from payments.models import DisbursementBatch, Payment, VoucherEntry
from payments.selectors import round_budget_ledger
from payments.vouchers import voucher_accounts_issue

BUILD_CHUNK = 5000
PAYABLE_ROUND_STATES = (Round.Status.SELECTED, Round.Status.DISBURSING)


class MakerChecker(DomainError):
    status_code = 403
    default_code = "maker_checker"


def _require(bound_method, actor, *, action: str) -> None:
    batch = bound_method.__self__
    # A draft still gathering its payments is the one case the FSM condition refuses.
    if can_proceed(bound_method, check_conditions=False) and not can_proceed(bound_method):
        raise InvalidTransition(
            f"Batch #{batch.pk} is still being built; wait for it to finish.",
            code="batch_building",
        )
    require_transition(bound_method, actor, action=action)


def _tables() -> dict[str, str]:
    quote = connection.ops.quote_name
    return {
        "app": quote(Application._meta.db_table),
        "person": quote(Applicant._meta.db_table),
        "payment": quote(Payment._meta.db_table),
    }


def _status_params() -> dict[str, str]:
    """The states the payable query names, bound by name: %(selected)s, %(live0)s…"""
    return {
        "selected": Application.Status.SELECTED,
        "failed": Payment.Status.FAILED,
        "pending": Payment.Status.PENDING,
        **{f"live{i}": state for i, state in enumerate(Payment.LIVE_STATES)},
    }


def _payable_sql(*, bank: bool, ids: list[int] | None = None) -> str:
    """Selected applications of a round with no live payment (all, or those of `ids`).

    A failed payment is reissued only once the citizen has given another account: paying
    the same account again would fail again. A bank round needs an account to pay.
    NOT IN over this round's payments: PostgreSQL hashes the subquery once, whatever its
    (possibly stale, during a build) statistics say, so the cost stays linear.
    """
    t = _tables()
    live = ", ".join(f"%(live{i})s" for i in range(len(Payment.LIVE_STATES)))
    account = "AND p.account_number <> '' AND p.bank_code <> ''" if bank else ""
    # A chunk names its ids in every subquery too, so that the planner probes the index
    # for them rather than scanning every payment (whose statistics lag a growing batch).
    scope = ",".join(str(int(i)) for i in ids) if ids else None

    def only(column: str) -> str:
        return f"AND {column} IN ({scope})" if scope else ""

    # Quoted table names and integer ids only; every value is bound.
    return f"""
    FROM {t["app"]} a
    JOIN {t["person"]} p ON p.id = a.applicant_id
    WHERE a.round_id = %(round)s AND a.status = %(selected)s {only("a.id")} {account}
      AND a.id NOT IN (
        SELECT x.application_id FROM {t["payment"]} x
        WHERE x.round_id = %(round)s {only("x.application_id")} AND x.status IN ({live}))
      AND (a.id, p.account_fingerprint) NOT IN (
        SELECT f.application_id, f.account_fingerprint FROM {t["payment"]} f
        WHERE f.round_id = %(round)s {only("f.application_id")} AND f.status = %(failed)s)
"""  # noqa: S608


def _payable_count(round_: Round, *, bank: bool) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) {_payable_sql(bank=bank)}",
            {"round": round_.pk, **_status_params()},
        )
        return cursor.fetchone()[0]


def _require_within_budget(round_: Round, *, refused: str) -> None:
    """Refuse when what the round has committed (payments, top-ups) exceeds its budget."""
    ledger = round_budget_ledger(round_)
    if ledger.available < 0:
        raise Conflict(
            f"{refused}: round #{round_.pk} has committed {ledger.committed:,} KRW against a "
            f"budget of {ledger.budget:,} KRW (returned {ledger.returned:,} KRW).",
            code="over_budget",
            field="round",
        )


@transaction.atomic
def batch_create(*, round_: Round, actor) -> DisbursementBatch:
    """Open a draft batch for every selected application without a live payment.

    The payments are gathered afterwards, in committed chunks, by batch_build (a task).
    """
    if not actor.has_perm("payments.prepare_batch"):
        raise PermissionDenied
    round_ = Round.objects.select_for_update().select_related("program").get(pk=round_.pk)
    if round_.status not in PAYABLE_ROUND_STATES:
        raise DomainError(
            f"Round #{round_.pk} is {round_.status}: run the selection before paying it.",
            code="round_not_selected",
            field="round",
        )
    _require_within_budget(round_, refused="Nothing can be paid")
    bank = round_.program.code != "VOUCHER"
    expected = _payable_count(round_, bank=bank)
    if expected == 0:
        raise DomainError(
            "Nothing to pay: every selected application of this round already has a payment "
            "(or awaits a corrected bank account).",
            code="nothing_to_pay",
            field="round",
        )
    try:
        with transaction.atomic():
            batch = DisbursementBatch.objects.create(
                round=round_, prepared_by=actor, build_expected=expected
            )
    except IntegrityError:
        raise Conflict(
            "Another batch of this round is still being built; wait for it to finish.",
            code="batch_building",
            field="round",
        ) from None
    if round_.status == Round.Status.SELECTED:
        round_.start_disbursing()
        round_.save()
    audit_record(
        actor=actor,
        obj=batch,
        action="batch.created",
        to_state=batch.status,
        data={"round": round_.pk, "expected": expected},
    )
    from payments.tasks import batch_build_task

    # Recorded with the batch: a broker that is down now delays the build, never loses it.
    outbox_enqueue(batch_build_task, batch.pk, key=f"batch_build:{batch.pk}")
    return batch


def _build_chunk(batch_id: int, chunk_size: int) -> bool:
    """Add the next chunk of payments to a batch in its own transaction; False when done."""
    with transaction.atomic():
        # Progress renews the build's lease; a build taken over stops here.
        outbox_heartbeat()
        round_id = DisbursementBatch.objects.values_list("round_id", flat=True).get(pk=batch_id)
        round_ = Round.objects.select_for_update().select_related("program").get(pk=round_id)
        batch = DisbursementBatch.objects.select_for_update().get(pk=batch_id)
        if batch.is_ready or batch.status == DisbursementBatch.Status.CANCELLED:
            return False
        ids = list(
            Application.objects.filter(
                round_id=round_id, status=Application.Status.SELECTED, id__gt=batch.build_cursor
            )
            .order_by("id")
            .values_list("id", flat=True)[:chunk_size]
        )
        if not ids:
            return _build_finish(batch, round_)
        bank = round_.program.code != "VOUCHER"
        scope = ",".join(str(i) for i in ids)
        payment_table = _tables()["payment"]
        with connection.cursor() as cursor:
            # ON CONFLICT: the one-live-payment index is the last word if anything raced us.
            cursor.execute(
                f"""
                INSERT INTO {payment_table} (
                    batch_id, round_id, application_id, amount, status, bank_code,
                    account_number, account_holder, account_fingerprint, reissue_of_id,
                    hold_reason, failure_reason, created_at)
                SELECT %(batch)s, a.round_id, a.id, %(amount)s, %(pending)s, p.bank_code,
                    p.account_number, p.account_holder, p.account_fingerprint,
                    (SELECT MAX(r.id) FROM {payment_table} r
                     WHERE r.application_id = a.id AND r.application_id IN ({scope})
                       AND r.status = %(failed)s),
                    '', '', %(now)s
                {_payable_sql(bank=bank, ids=ids)}
                ON CONFLICT DO NOTHING
                """,  # noqa: S608 - quoted names and integer ids only; values bound
                {
                    "batch": batch.pk,
                    "amount": round_.amount,
                    "now": timezone.now(),
                    "round": round_id,
                    **_status_params(),
                },
            )
        _hold_flagged(batch, ids)
        # The failed attempts these payments replace are now reissued.
        replaced = Payment.objects.filter(
            batch=batch,
            reissue_of__isnull=False,
            application_id__in=ids,
            status=Payment.Status.PENDING,
        ).values("reissue_of_id")
        bulk_transition(Payment.objects.filter(pk__in=replaced), "reissue")
        batch.build_cursor = ids[-1]
        batch.save(update_fields=["build_cursor"])
        return True


def _hold_flagged(batch: DisbursementBatch, application_ids: list[int]) -> int:
    """Hold out the new payments of applications a caseworker must look at again (an open
    flag, e.g. eligibility that changed since the approval), with the flag as the reason."""
    open_flags = ApplicationFlag.objects.filter(
        application_id=OuterRef("application_id"), cleared_at__isnull=True
    )
    held = bulk_transition(
        Payment.objects.filter(batch=batch, application_id__in=application_ids).filter(
            Exists(open_flags)
        ),
        "cancel",
        hold_reason=Concat(
            Subquery(open_flags.values("kind")[:1]),
            Value(": "),
            Subquery(open_flags.values("summary")[:1]),
            output_field=TextField(),
        ),
    )
    if held:
        audit_record(actor=None, obj=batch, action="batch.flagged_held", data={"held": held})
    return held


def _build_finish(batch: DisbursementBatch, round_: Round) -> bool:
    """Mark a gathered batch ready, or cancel it if the round's budget would not hold it."""
    batch.build_status = DisbursementBatch.BuildStatus.READY
    batch.save(update_fields=["build_status"])
    totals = {"payments": batch.payments.count(), "total": batch_total(batch)}
    audit_record(actor=None, obj=batch, action="batch.built", data=totals)
    if round_budget_ledger(round_).available < 0:
        # Selection and top-ups respect the budget, and it is never lowered below what is
        # committed (benefits.rounds.round_money_change); if it happens all the same, a
        # batch that would carry the round over its budget pays nothing.
        bulk_transition(Payment.objects.filter(batch=batch), "cancel")
        batch.cancel()
        batch.cancelled_at = timezone.now()
        batch.save(update_fields=["status", "cancelled_at"])
        audit_record(
            actor=None,
            obj=batch,
            action="batch.cancel",
            from_state=DisbursementBatch.Status.DRAFT,
            to_state=batch.status,
            reason=f"Paying round #{round_.pk} would exceed its budget.",
        )
    return False


def batch_build(*, batch_id: int, chunk_size: int = BUILD_CHUNK) -> DisbursementBatch:
    """Gather a batch's payments chunk by chunk; safe to rerun after a crash at any point."""
    while _build_chunk(batch_id, chunk_size):
        pass
    _refresh_payment_statistics()
    return DisbursementBatch.objects.get(pk=batch_id)


def _refresh_payment_statistics() -> None:
    """Tell PostgreSQL's planner about the payments a build has just written.

    The checker reads the pre-release audit seconds after the build, long before
    autovacuum's ANALYZE: planned for the one payment the old statistics promised, its
    shared-account test ran once per payment (quadratic: minutes at 70,000 payments).
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {_tables()['payment']}")  # a quoted table name


def _release_settled_entries(payments) -> int:
    """Free the voucher entries of provider payments that will not be made (a later one will)."""
    return VoucherEntry.objects.filter(settlement__in=payments).update(settlement=None)


def batch_total(batch: DisbursementBatch) -> int:
    return (
        batch.payments.exclude(status=Payment.Status.CANCELLED).aggregate(t=Sum("amount"))["t"] or 0
    )


def _lock_batch(batch: DisbursementBatch) -> DisbursementBatch:
    Round.objects.select_for_update().filter(pk=batch.round_id).first()
    return (
        DisbursementBatch.objects.select_for_update(of=("self",))
        .select_related("round__program")
        .get(pk=batch.pk)
    )


def _transition(batch, actor, *, name: str, reason: str = "", **data):
    method = getattr(batch, name)
    _require(method, actor, action=name)
    from_state = batch.status
    method()
    now = timezone.now()
    stamp = {
        "submit": "submitted_at",
        "approve": "approved_at",
        "disburse": "sent_at",
        "reconcile": "reconciled_at",
        "close": "closed_at",
        "cancel": "cancelled_at",
    }[name]
    setattr(batch, stamp, now)
    fields = ["status", stamp]
    if name == "approve":
        batch.approved_by = actor
        fields.append("approved_by")
    batch.save(update_fields=fields)
    audit_record(
        actor=actor,
        obj=batch,
        action=f"batch.{name}",
        from_state=from_state,
        to_state=batch.status,
        reason=reason,
        data=data,
    )
    return batch


@transaction.atomic
def batch_submit(*, batch: DisbursementBatch, actor) -> DisbursementBatch:
    """Hand a built draft batch to a second finance user for approval."""
    batch = _lock_batch(batch)
    if batch.is_ready and not batch.payments.filter(status=Payment.Status.PENDING).exists():
        raise DomainError(
            "Every payment of this batch is held out: there is nothing to submit.",
            code="nothing_to_pay",
        )
    return _transition(batch, actor, name="submit")


@transaction.atomic
def batch_approve(*, batch: DisbursementBatch, actor, reason: str = "") -> DisbursementBatch:
    """Approve a submitted batch: only a finance user other than its preparer may."""
    batch = _lock_batch(batch)
    if actor.pk == batch.prepared_by_id:
        raise MakerChecker(
            "You prepared this batch: another finance user must approve it.", field="approved_by"
        )
    _require_within_budget(batch.round, refused="This batch cannot be approved")
    batch = _transition(batch, actor, name="approve", reason=reason, total=batch_total(batch))
    if batch.pays_by_bank:
        from payments.tasks import bank_files_generate_task

        outbox_enqueue(bank_files_generate_task, batch.pk, key=bank_files_key(batch))
    return batch


@transaction.atomic
def batch_disburse(*, batch: DisbursementBatch, actor) -> DisbursementBatch:
    """Record that the bank file went to the bank, or credit a voucher round's recipients."""
    batch = _lock_batch(batch)
    approved = batch.status == DisbursementBatch.Status.APPROVED
    downloaded = batch.files.filter(downloaded_at__isnull=False).exists()
    if batch.pays_by_bank and approved and not downloaded:
        raise Conflict(
            "Download the bank file (export) before marking the batch as sent.",
            code="export_missing",
        )
    batch = _transition(batch, actor, name="disburse")
    now = timezone.now()
    pending = Payment.objects.filter(batch=batch, status=Payment.Status.PENDING)
    if batch.pays_by_bank:
        bulk_transition(pending, "send", sent_at=now)
        return batch
    # A voucher round needs no bank: the credit is the payment.
    bulk_transition(pending, "credit", sent_at=now, paid_at=now)
    voucher_accounts_issue(payments=Payment.objects.filter(batch=batch, status=Payment.Status.PAID))
    notification_enqueue_many(
        rows=Payment.objects.filter(batch=batch, status=Payment.Status.PAID),
        kind=Notification.Kind.PAID,
        event_key=f"batch{batch.pk}",
        application_field="application_id",
        user_field="application__applicant__user_id",
    )
    return _transition(batch, None, name="reconcile")


@transaction.atomic
def batch_cancel(*, batch: DisbursementBatch, actor, reason: str = "") -> DisbursementBatch:
    """Cancel a batch before it is sent; its payments are freed for a later batch."""
    batch = _lock_batch(batch)
    batch = _transition(batch, actor, name="cancel", reason=reason)
    freed = bulk_transition(Payment.objects.filter(batch=batch), "cancel")
    _release_settled_entries(Payment.objects.filter(batch=batch, status=Payment.Status.CANCELLED))
    batch.build_status = DisbursementBatch.BuildStatus.READY
    batch.save(update_fields=["build_status"])
    audit_record(actor=actor, obj=batch, action="batch.payments_freed", data={"payments": freed})
    return batch


@transaction.atomic
def batch_close(*, batch: DisbursementBatch, actor) -> DisbursementBatch:
    """Close a reconciled batch: nothing more is expected from the bank."""
    return _transition(_lock_batch(batch), actor, name="close")


@transaction.atomic
def payment_hold(*, batch: DisbursementBatch, payment_id: int, actor, reason: str) -> Payment:
    """Hold one payment out of a batch before approval (it can go in a later batch)."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("A reason is required.", code="required", field="reason")
    batch = _lock_batch(batch)
    if not actor.has_perm("payments.prepare_batch") and not actor.has_perm(
        "payments.approve_batch"
    ):
        raise PermissionDenied
    if batch.status not in (
        DisbursementBatch.Status.DRAFT,
        DisbursementBatch.Status.PENDING_APPROVAL,
    ):
        raise InvalidTransition(
            f"A payment can be held out only before approval; this batch is {batch.status}."
        )
    payment = Payment.objects.select_for_update().filter(batch=batch, pk=payment_id).first()
    if payment is None:
        from django.http import Http404

        raise Http404
    require_transition(payment.cancel, None, action="hold out")
    payment.cancel()
    payment.hold_reason = reason
    payment.save(update_fields=["status", "hold_reason"])
    _release_settled_entries(Payment.objects.filter(pk=payment.pk))
    audit_record(
        actor=actor,
        obj=batch,
        action="batch.payment_held",
        reason=reason,
        data={"payment": payment.pk, "application": payment.application_id},
    )
    return payment


def batch_open(*, round, actor, kind: str = "benefit", period_starts_on=None, period_ends_on=None):
    """Open a batch of the kind asked for: a round's entitlements, or a providers' settlement."""
    if kind == DisbursementBatch.Kind.SETTLEMENT:
        from payments.settlement import settlement_batch_create

        return settlement_batch_create(
            round_=round,
            actor=actor,
            period_starts_on=period_starts_on,
            period_ends_on=period_ends_on,
        )
    return batch_create(round_=round, actor=actor)
