"""Re-checking decided applications when a registry snapshot is activated.

A round's approved, selected and waitlisted applications not yet paid are judged again,
set-based like the review re-screen, on the snapshots now active. A rule that now fails,
or a match the round's policy blocks, that the decision did not already weigh raises an
`eligibility_changed` flag naming it; the flag holds the payment out of batches until a
caseworker clears it or revokes the approval. The re-check never changes a decision.
"""

import logging

import orjson
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from benefits.after_decision import application_flags_raise
from benefits.models import Application, ApplicationFlag, Round
from core.outbox import outbox_enqueue, outbox_heartbeat
from eligibility import rules
from eligibility.models import ScreeningRun
from eligibility.screening import active_snapshot_ids, applying_rows, chunk_verdicts, facts_table

logger = logging.getLogger(__name__)


def _paid():
    from payments.models import Payment

    return Payment.objects.filter(application=OuterRef("pk"), status=Payment.Status.PAID)


def recheck_candidates(round_id: int):
    """The round's decided-in-favour applications that no payment has paid yet."""
    return Application.objects.filter(
        round_id=round_id, status__in=Application.APPROVED_STATES
    ).exclude(Exists(_paid()))


def _where() -> tuple[str, list]:
    from payments.models import Payment

    payments = connection.ops.quote_name(Payment._meta.db_table)
    states = ", ".join(["%s"] * len(Application.APPROVED_STATES))
    where = (
        f"a.round_id = %s AND a.status IN ({states}) AND NOT EXISTS "  # noqa: S608
        f"(SELECT 1 FROM {payments} p WHERE p.application_id = a.id AND p.status = %s)"
    )
    return where, [*Application.APPROVED_STATES, Payment.Status.PAID]


def _weighed(application_ids: list[int]) -> dict[int, set[str]]:
    """The rule codes that already failed when each application was decided (its current
    run): the caseworker decided knowing them, so they raise nothing now."""
    weighed: dict[int, set[str]] = {}
    runs = ScreeningRun.objects.filter(application_id__in=application_ids, is_current=True)
    for application_id, stored in runs.values_list("application_id", "rules"):
        weighed[application_id] = {r["code"] for r in stored if r.get("outcome") == rules.FAIL}
    return weighed


def _signature(causes: list[dict]) -> set[bytes]:
    return {orjson.dumps([c["code"], c["evidence"]], option=orjson.OPT_SORT_KEYS) for c in causes}


def _cleared(application_ids: list[int]) -> dict[int, set[bytes]]:
    """What caseworkers cleared before, per application: the same causes raise nothing."""
    cleared: dict[int, set[bytes]] = {}
    flags = ApplicationFlag.objects.filter(
        application_id__in=application_ids,
        kind=ApplicationFlag.Kind.ELIGIBILITY_CHANGED,
        cleared_at__isnull=False,
    )
    for application_id, causes in flags.values_list("application_id", "causes"):
        cleared.setdefault(application_id, set()).update(_signature(causes))
    return cleared


def _recheck_chunk(round_: Round, applying: list, snapshot_ids: dict, trigger_key: str) -> dict:
    ids = [a.pk for a in applying]
    weighed, cleared = _weighed(ids), _cleared(ids)
    # Judged as of today: a status that has since ended no longer counts.
    today = timezone.localdate()
    as_of_today = [a._replace(applied_on=today) for a in applying]
    verdicts = chunk_verdicts(round_, as_of_today, snapshot_ids)
    changed: dict[int, list[dict]] = {}
    for verdict in verdicts:
        known = weighed.get(verdict.application_id, set())
        causes = [
            r.as_record()
            for r in verdict.rule_results
            if r.outcome == rules.FAIL and r.code not in known
        ]
        if causes and not _signature(causes) <= cleared.get(verdict.application_id, set()):
            changed[verdict.application_id] = causes
    with transaction.atomic():
        # Progress renews the job's lease (see benefits.rescreen._rescreen_chunk).
        outbox_heartbeat()
        raised = application_flags_raise(
            round_=round_,
            kind=ApplicationFlag.Kind.ELIGIBILITY_CHANGED,
            causes=changed,
            trigger_key=trigger_key,
        )
    return {"checked": len(applying), "flagged": raised}


def round_recheck(*, round_id: int, job_key: str, chunk_size: int = 5000) -> dict:
    """Re-check a round's approved applications not yet paid; flag those that changed.

    Safe to run twice: an application keeps one open flag, and the same causes that a
    caseworker cleared are not raised again.
    """
    round_ = Round.objects.select_related("program").get(pk=round_id)
    trigger_key = f"recheck:{job_key}"
    snapshot_ids = active_snapshot_ids()
    totals = {"checked": 0, "flagged": 0, "chunks": 0}
    where, params = _where()
    after = 0
    with facts_table(where, [round_id, *params], snapshot_ids):
        while True:
            applying = applying_rows(recheck_candidates(round_id).filter(pk__gt=after), chunk_size)
            if not applying:
                break
            chunk = _recheck_chunk(round_, applying, snapshot_ids, trigger_key)
            totals["checked"] += chunk["checked"]
            totals["flagged"] += chunk["flagged"]
            totals["chunks"] += 1
            after = applying[-1].pk
    logger.info("recheck %s of round %s: %s", job_key, round_id, totals)
    return totals


def recheck_after_snapshot(*, snapshot_id: int) -> list[int]:
    """Queue a re-check of every round with approved applications not yet paid."""
    from eligibility.screening_tasks import round_recheck_task

    round_ids = list(
        Application.objects.filter(status__in=Application.APPROVED_STATES)
        .exclude(Exists(_paid()))
        .values_list("round_id", flat=True)
        .distinct()
        .order_by("round_id")
    )
    for round_id in round_ids:
        job_key = f"snapshot-{snapshot_id}"
        outbox_enqueue(round_recheck_task, round_id, job_key, key=f"recheck:{round_id}:{job_key}")
    return round_ids
