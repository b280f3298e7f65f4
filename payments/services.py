"""Writes on disbursement batches: create and build, submit, approve, disburse, cancel, hold.

Lock order everywhere: round, then batch, then applications, then payments. Payments change
state in sets through core.fsm.bulk_transition, which obeys the Payment FSM's transitions.
"""

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_fsm import can_proceed, has_transition_perm

from benefits.models import Application, Notification, Round
from benefits.notifications import notification_enqueue_many
from core.audit import audit_record
from core.exceptions import Conflict, DomainError, InvalidTransition
from core.fsm import bulk_transition
from payments.models import DisbursementBatch, Payment

BUILD_CHUNK = 2000
PAYABLE_ROUND_STATES = (Round.Status.SELECTED, Round.Status.DISBURSING)


class MakerChecker(DomainError):
    status_code = 403
    default_code = "maker_checker"


def _require(bound_method, actor, *, what: str) -> None:
    batch = bound_method.__self__
    if not can_proceed(bound_method, check_conditions=False):
        raise InvalidTransition(f"A batch that is {batch.status} cannot be {what}.")
    if actor is not None and not has_transition_perm(bound_method, actor):
        raise PermissionDenied
    if not can_proceed(bound_method):
        raise InvalidTransition(
            f"Batch #{batch.pk} is still being built; wait for it to finish.",
            code="batch_building",
        )


PAYABLE_SQL = """
    FROM benefits_application a
    JOIN benefits_applicant p ON p.id = a.applicant_id
    WHERE a.round_id = %s AND a.status = 'selected' AND a.id > %s AND a.id <= %s
      /*account*/
      AND NOT EXISTS (
        SELECT 1 FROM payments_payment x
        WHERE x.application_id = a.id AND x.status IN ('pending', 'sent', 'paid'))
      AND NOT EXISTS (
        SELECT 1 FROM payments_payment f
        WHERE f.application_id = a.id AND f.status = 'failed'
          AND f.account_fingerprint = p.account_fingerprint)
"""


def _payable_sql(*, bank: bool) -> str:
    """Selected applications of a round with no live payment, within an id range.

    A failed payment is reissued only once the citizen has given another account: paying
    the same account again would fail again. A bank round needs an account to pay.
    """
    account = "AND p.account_number <> '' AND p.bank_code <> ''" if bank else ""
    return PAYABLE_SQL.replace("/*account*/", account)


def _payable_count(round_: Round, *, bank: bool) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) {_payable_sql(bank=bank)}",
            [round_.pk, 0, 2**63 - 1],
        )
        return cursor.fetchone()[0]


def _live_total(round_id: int) -> int:
    from django.db.models import Sum

    return (
        Payment.objects.filter(round_id=round_id, status__in=Payment.LIVE_STATES).aggregate(
            total=Sum("amount")
        )["total"]
        or 0
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

    transaction.on_commit(lambda: batch_build_task.delay(batch.pk))
    return batch


def _build_chunk(batch_id: int, chunk_size: int) -> bool:
    """Add the next chunk of payments to a batch in its own transaction; False when done."""
    with transaction.atomic():
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
            batch.build_status = DisbursementBatch.BuildStatus.READY
            batch.save(update_fields=["build_status"])
            count = batch.payments.count()
            audit_record(
                actor=None,
                obj=batch,
                action="batch.built",
                data={"payments": count, "total": batch_total(batch)},
            )
            return False
        bank = round_.program.code != "VOUCHER"
        now = timezone.now()
        with connection.cursor() as cursor:
            # ON CONFLICT: the one-live-payment index is the last word if anything raced us.
            cursor.execute(
                f"""
                INSERT INTO payments_payment (
                    batch_id, round_id, application_id, amount, status, bank_code,
                    account_number, account_holder, account_fingerprint, reissue_of_id,
                    hold_reason, failure_reason, created_at)
                SELECT %s, a.round_id, a.id, %s, 'pending', p.bank_code,
                    p.account_number, p.account_holder, p.account_fingerprint,
                    (SELECT MAX(f.id) FROM payments_payment f
                     WHERE f.application_id = a.id AND f.status = 'failed'),
                    '', '', %s
                {_payable_sql(bank=bank)}
                ON CONFLICT DO NOTHING
                """,  # noqa: S608 - no user text in the SQL
                [batch.pk, round_.amount, now, round_id, batch.build_cursor, ids[-1]],
            )
        # The failed attempts these payments replace are now reissued.
        bulk_transition(
            Payment.objects.filter(
                pk__in=Payment.objects.filter(
                    batch=batch, reissue_of__isnull=False, application_id__in=ids
                ).values("reissue_of_id")
            ),
            "reissue",
        )
        if _live_total(round_id) > round_.budget:
            raise Conflict(f"Paying round #{round_id} would exceed its budget.", code="over_budget")
        batch.build_cursor = ids[-1]
        batch.save(update_fields=["build_cursor"])
        return True


def batch_build(*, batch_id: int, chunk_size: int = BUILD_CHUNK) -> DisbursementBatch:
    """Gather a batch's payments chunk by chunk; safe to rerun after a crash at any point."""
    while _build_chunk(batch_id, chunk_size):
        pass
    return DisbursementBatch.objects.get(pk=batch_id)


def batch_total(batch: DisbursementBatch) -> int:
    from django.db.models import Sum

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


def _transition(batch, actor, *, name: str, what: str, reason: str = "", **data):
    method = getattr(batch, name)
    _require(method, actor, what=what)
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
    return _transition(batch, actor, name="submit", what="submitted")


@transaction.atomic
def batch_approve(*, batch: DisbursementBatch, actor, reason: str = "") -> DisbursementBatch:
    """Approve a submitted batch: only a finance user other than its preparer may."""
    batch = _lock_batch(batch)
    if actor.pk == batch.prepared_by_id:
        raise MakerChecker(
            "You prepared this batch: another finance user must approve it.", field="approved_by"
        )
    if _live_total(batch.round_id) > batch.round.budget:
        raise Conflict("This batch would take the round over its budget.", code="over_budget")
    batch = _transition(
        batch, actor, name="approve", what="approved", reason=reason, total=batch_total(batch)
    )
    if batch.pays_by_bank:
        from payments.tasks import bank_files_generate_task

        transaction.on_commit(lambda: bank_files_generate_task.delay(batch.pk))
    return batch


@transaction.atomic
def batch_disburse(*, batch: DisbursementBatch, actor) -> DisbursementBatch:
    """Record that the bank file went to the bank, or credit a voucher round's recipients."""
    batch = _lock_batch(batch)
    approved = batch.status == DisbursementBatch.Status.APPROVED
    if batch.pays_by_bank and approved and not batch.files.exists():
        raise Conflict(
            "Export the bank file before marking the batch as sent.", code="export_missing"
        )
    batch = _transition(batch, actor, name="disburse", what="disbursed")
    now = timezone.now()
    pending = Payment.objects.filter(batch=batch, status=Payment.Status.PENDING)
    if batch.pays_by_bank:
        bulk_transition(pending, "send", sent_at=now)
        return batch
    # A voucher round needs no bank: the credit is the payment.
    credited = list(pending.values_list("application_id", flat=True))
    bulk_transition(pending, "credit", sent_at=now, paid_at=now)
    notification_enqueue_many(
        applications=Application.objects.filter(pk__in=credited),
        kind=Notification.Kind.PAID,
        event_key=f"batch{batch.pk}",
    )
    return _transition(batch, None, name="reconcile", what="reconciled")


@transaction.atomic
def batch_cancel(*, batch: DisbursementBatch, actor, reason: str = "") -> DisbursementBatch:
    """Cancel a batch before it is sent; its payments are freed for a later batch."""
    batch = _lock_batch(batch)
    batch = _transition(batch, actor, name="cancel", what="cancelled", reason=reason)
    freed = bulk_transition(Payment.objects.filter(batch=batch), "cancel")
    batch.build_status = DisbursementBatch.BuildStatus.READY
    batch.save(update_fields=["build_status"])
    audit_record(actor=actor, obj=batch, action="batch.payments_freed", data={"payments": freed})
    return batch


@transaction.atomic
def batch_close(*, batch: DisbursementBatch, actor) -> DisbursementBatch:
    """Close a reconciled batch: nothing more is expected from the bank."""
    return _transition(_lock_batch(batch), actor, name="close", what="closed")


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
    if not can_proceed(payment.cancel):
        raise InvalidTransition(f"This payment is {payment.status}; it cannot be held out.")
    payment.cancel()
    payment.hold_reason = reason
    payment.save(update_fields=["status", "hold_reason"])
    audit_record(
        actor=actor,
        obj=batch,
        action="batch.payment_held",
        reason=reason,
        data={"payment": payment.pk, "application": payment.application_id},
    )
    return payment
