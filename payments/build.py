"""Building a disbursement batch: its round's payable applications cut into chunks by id,
each gathered by a task that any worker on the `long` queue may run, in one transaction.

`batch_build_dispatch` records the chunks (BuildChunk) and one outbox entry each;
`batch_build_chunk` gathers one, marks it built in the same transaction (a rerun writes
nothing twice, and the one-live-payment index refuses a second live payment whatever
happens), and the last chunk to commit finishes the build: the budget checked under the
round's lock, the batch marked ready. `batch_build` runs every chunk in this process.

Lock order: round, then batch, then chunk, then applications, then payments. The chunks
hold the round and the batch FOR SHARE, side by side; a cancel, a revocation or the
finish, which take them for update, wait for the chunks under way.
"""

import logging

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Subquery, Sum, TextField, Value
from django.db.models.functions import Concat
from django.utils import timezone

from benefits.models import Applicant, Application, ApplicationFlag, Round
from core.audit import audit_record
from core.fsm import bulk_transition
from core.outbox import outbox_enqueue, outbox_heartbeat
from payments.audit import batch_audit_keep
from payments.models import BuildChunk, DisbursementBatch, Payment
from payments.selectors import round_budget_ledger

logger = logging.getLogger(__name__)


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


def _payable_sql(
    *, bank: bool, ids: list[int] | None = None, span: tuple[int, int | None] | None = None
) -> str:
    """Selected applications of a round with no live payment (all, those of `ids`, or
    those with ids in `span`, first..last, open above when last is None).

    A failed payment is reissued only once the citizen has given another account: paying
    the same account again would fail again. A bank round needs an account to pay.
    NOT IN over this round's payments: PostgreSQL hashes the subquery once, whatever its
    (possibly stale, during a build) statistics say, so the cost stays linear.
    """
    t = _tables()
    live = ", ".join(f"%(live{i})s" for i in range(len(Payment.LIVE_STATES)))
    account = "AND p.account_number <> '' AND p.bank_code <> ''" if bank else ""
    # A chunk names its ids (or their range) in every subquery too, so that the planner
    # probes the index for them rather than scanning every payment (whose statistics lag
    # a growing batch).
    scope = ",".join(str(int(i)) for i in ids) if ids else None

    def only(column: str) -> str:
        if scope:
            return f"AND {column} IN ({scope})"
        if span:
            first, last = span
            upto = f" AND {column} <= {int(last)}" if last is not None else ""
            return f"AND {column} >= {int(first)}{upto}"
        return ""

    # Quoted table names and integers only; every value is bound.
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


def batch_build_key(batch_id: int) -> str:
    """The outbox key of the task that cuts a batch's build into chunk tasks."""
    return f"batch_build:{batch_id}"


def _chunk_ranges(round_: Round, size: int) -> list[tuple[int, int | None]]:
    """The round's payable applications cut into ranges of `size` by id: [(first id, last
    id)], the first open below and the last above (1 and None), for latecomers; one
    range (1, None) when nothing is payable (the build then finishes at once)."""
    bank = round_.program.code != "VOUCHER"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM (SELECT a.id, row_number() OVER (ORDER BY a.id) AS n "  # noqa: S608
            f"{_payable_sql(bank=bank)}) t WHERE (t.n - 1) %% %(size)s = 0 ORDER BY id",
            {"round": round_.pk, "size": size, **_status_params()},
        )
        starts = [row[0] for row in cursor.fetchall()]
    return [
        (1 if i == 0 else start, starts[i + 1] - 1 if i + 1 < len(starts) else None)
        for i, start in enumerate(starts)
    ] or [(1, None)]


def batch_build_chunk_key(batch_id: int, first: int | str) -> str:
    """The outbox key of one chunk task of a batch's build (first="": their prefix)."""
    return f"batch_build:{batch_id}:{first}"


def _build_chunks_record(batch_id: int, chunk_size: int | None) -> list[BuildChunk]:
    """The batch's chunks not yet built, recorded first if the batch has none."""
    size = chunk_size or settings.BAEUM_BUILD_CHUNK
    with transaction.atomic():
        batch = (
            DisbursementBatch.objects.select_for_update(of=("self",))
            .select_related("round__program")
            .get(pk=batch_id)
        )
        if batch.is_ready or batch.status == DisbursementBatch.Status.CANCELLED:
            return []
        if not batch.build_chunks.exists():
            BuildChunk.objects.bulk_create(
                BuildChunk(batch=batch, first=first, last=last)
                for first, last in _chunk_ranges(batch.round, size)
            )
        return list(batch.build_chunks.filter(built_at__isnull=True).order_by("first"))


def batch_build_dispatch(*, batch_id: int, chunk_size: int | None = None) -> int:
    """Record a batch's build as one outbox entry per chunk of its payable applications
    (BAEUM_BUILD_CHUNK each, by id), sent after the commit to the workers on the `long`
    queue; return the number of chunks sent. Safe to run twice: a rerun sends only the
    chunks not yet built, once each."""
    from payments.tasks import batch_build_task

    with transaction.atomic():
        sent = [
            chunk
            for chunk in _build_chunks_record(batch_id, chunk_size)
            if outbox_enqueue(
                batch_build_task,
                batch_id,
                chunk.first,
                chunk.last,
                key=batch_build_chunk_key(batch_id, chunk.first),
            )
        ]
    logger.info("batch build %s: %s chunks sent", batch_id, len(sent))
    return len(sent)


def _lock_shared(model, pk: int) -> None:
    """Take a row FOR SHARE: the chunks of one build hold the round and the batch side by
    side, while whatever takes them for update (a cancel, a revocation, the build's finish)
    waits for the chunks under way. SQLite runs one writer at a time and needs none."""
    if connection.vendor != "postgresql":
        return
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR SHARE", [pk])  # noqa: S608


def _build_chunk(batch_id: int, first: int, last: int | None) -> int:
    """Add one chunk's payments to a batch in one transaction; return how many were added.

    The chunk is marked built in the same transaction: run again, it writes nothing.
    """
    with transaction.atomic():
        # The chunk's lease, held until it commits: a run taken over rolls back here.
        outbox_heartbeat()
        round_id = DisbursementBatch.objects.values_list("round_id", flat=True).get(pk=batch_id)
        _lock_shared(Round, round_id)
        _lock_shared(DisbursementBatch, batch_id)
        round_ = Round.objects.select_related("program").get(pk=round_id)
        batch = DisbursementBatch.objects.get(pk=batch_id)
        chunk = BuildChunk.objects.select_for_update().get(batch_id=batch_id, first=first)
        if chunk.built_at or batch.is_ready or batch.status == DisbursementBatch.Status.CANCELLED:
            return 0
        bank = round_.program.code != "VOUCHER"
        params = {"round": round_id, **_status_params()}
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT a.id {_payable_sql(bank=bank, span=(first, last))} ORDER BY a.id",
                params,
            )
            ids = [row[0] for row in cursor.fetchall()]
        if ids:
            _insert_payments(batch, round_, ids, bank=bank)
        chunk.payments = len(ids)
        chunk.built_at = timezone.now()
        chunk.save(update_fields=["payments", "built_at"])
        return len(ids)


def _insert_payments(batch: DisbursementBatch, round_: Round, ids: list[int], *, bank: bool):
    """Pending payments for the payable applications among `ids`, the flagged ones held."""
    payment_table = _tables()["payment"]
    with connection.cursor() as cursor:
        # ON CONFLICT: the one-live-payment index is the last word if anything raced us.
        # The failed attempt a payment reissues is looked up per application by its index
        # alone: naming the chunk's ids there too made each lookup test the whole list
        # (5,000 ids), or the planner scan another index instead, once per payment.
        cursor.execute(
            f"""
            INSERT INTO {payment_table} (
                batch_id, round_id, application_id, amount, status, bank_code,
                account_number, account_holder, account_fingerprint, reissue_of_id,
                hold_reason, failure_reason, created_at)
            SELECT %(batch)s, a.round_id, a.id, %(amount)s, %(pending)s, p.bank_code,
                p.account_number, p.account_holder, p.account_fingerprint,
                (SELECT MAX(r.id) FROM {payment_table} r
                 WHERE r.application_id = a.id AND r.status = %(failed)s),
                '', '', %(now)s
            {_payable_sql(bank=bank, ids=ids)}
            ON CONFLICT DO NOTHING
            """,  # noqa: S608 - quoted names and integer ids only; values bound
            {
                "batch": batch.pk,
                "amount": round_.amount,
                "now": timezone.now(),
                "round": round_.pk,
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


def _build_finish(batch: DisbursementBatch, round_: Round) -> None:
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
        return
    # The first reading of its audit, so that the batch page opens without reading it.
    batch_audit_keep(batch=batch)


def _build_finish_when_built(batch_id: int) -> bool:
    """Finish the build once every chunk of it is built; True for the one call that did.

    Each chunk asks after its own commit, so the last chunk to commit sees every chunk
    built; the batch's row lock lets one of any that ask together finish it.
    """
    unbuilt = BuildChunk.objects.filter(batch_id=batch_id, built_at__isnull=True)
    if unbuilt.exists():
        return False
    with transaction.atomic():
        round_id = DisbursementBatch.objects.values_list("round_id", flat=True).get(pk=batch_id)
        round_ = Round.objects.select_for_update().select_related("program").get(pk=round_id)
        batch = DisbursementBatch.objects.select_for_update().get(pk=batch_id)
        if batch.is_ready or batch.status == DisbursementBatch.Status.CANCELLED:
            return False
        if unbuilt.exists() or not batch.build_chunks.exists():
            return False
        _build_finish(batch, round_)
    _refresh_payment_statistics()
    return True


def batch_build_chunk(*, batch_id: int, first: int, last: int | None) -> int:
    """Gather the payments of one chunk of a batch (its applications first..last), then
    finish the build if no chunk is left; return the payments added. Safe to run twice."""
    added = _build_chunk(batch_id, first, last)
    finished = _build_finish_when_built(batch_id)
    logger.info(
        "batch build %s: chunk %s-%s, %s payments%s",
        batch_id,
        first,
        "" if last is None else last,
        added,
        ", batch built" if finished else "",
    )
    return added


def batch_build(*, batch_id: int, chunk_size: int | None = None) -> DisbursementBatch:
    """Gather a batch's payments in this process, chunk after chunk: what the chunk tasks
    of batch_build_dispatch spread over workers. Safe to rerun after a crash at any point."""
    for chunk in _build_chunks_record(batch_id, chunk_size):
        _build_chunk(batch_id, chunk.first, chunk.last)
    _build_finish_when_built(batch_id)
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


def batch_total(batch: DisbursementBatch) -> int:
    return (
        batch.payments.exclude(status=Payment.Status.CANCELLED).aggregate(t=Sum("amount"))["t"] or 0
    )
