"""Re-screening a round: its applications under review judged again (on a new registry
snapshot, say), their runs replaced (benefits.screening_record.runs_record), their state
unchanged.

A round is cut into chunks by application id (BAEUM_RESCREEN_CHUNK applications under
review each): `round_rescreen_dispatch` records one outbox entry per chunk, which the
workers on the `long` queue share; `round_rescreen` runs every chunk in this process.
A chunk screens only the applications not yet screened for the trigger, under their
row locks, and commits every BAEUM_RESCREEN_COMMIT applications: run again, or taken over
after its worker died, it goes on where the last commit left it, and the unique
(application, trigger) constraint refuses a second run of one application whatever
happens.
"""

import logging
from collections import defaultdict

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from benefits.models import Application, Round
from benefits.screening_record import runs_record
from core.audit import audit_record
from core.outbox import outbox_enqueue, outbox_heartbeat
from eligibility import screening
from eligibility.models import ScreeningRun

logger = logging.getLogger(__name__)


def _rescreen_chunk(
    round_: Round,
    trigger_key: str,
    snapshot_ids: dict[str, int],
    after_pk: int,
    chunk_size: int,
    upto: int | None = None,
) -> dict:
    """Screen the applications under review among the next `chunk_size` after `after_pk`
    (up to id `upto`) and not yet screened for this trigger; `last_pk` is where the next
    chunk starts, None when no application is left."""
    under_review = Application.objects.filter(
        round_id=round_.pk, status=Application.Status.UNDER_REVIEW, pk__gt=after_pk
    )
    if upto is not None:
        under_review = under_review.filter(pk__lte=upto)
    # A chunk is a range of ids, found first: the locking query then reads one range, and
    # the runs it checks for are looked up in that range, not among every run stored so far.
    end = list(
        under_review.order_by("pk").values_list("pk", flat=True)[chunk_size - 1 : chunk_size]
    )
    already = ScreeningRun.objects.filter(
        application=OuterRef("pk"), trigger_key=trigger_key, application_id__gt=after_pk
    )
    if end:
        under_review = under_review.filter(pk__lte=end[0])
        already = already.filter(application_id__lte=end[0])
    elif upto is not None:
        already = already.filter(application_id__lte=upto)
    with transaction.atomic():
        # Progress renews the job's lease, and holds it until this chunk commits: a run
        # taken over meanwhile rolls its chunk back, so no application is screened twice.
        outbox_heartbeat()
        applying = screening.applying_rows(
            under_review.select_for_update().exclude(Exists(already)), chunk_size
        )
        if not applying:
            # Screened for this trigger already: a resumed job passes over the range.
            return {"screened": 0, "last_pk": end[0] if end else None, "outcomes": {}}
        outcomes: dict[str, int] = defaultdict(int)

        def counted(verdicts):
            for verdict in verdicts:
                outcomes[verdict.outcome] += 1
                yield verdict

        verdicts = screening.chunk_verdicts(round_, applying, snapshot_ids)
        runs_record(
            [a.pk for a in applying],
            counted(verdicts),
            trigger_key=trigger_key,
            now=timezone.now(),
        )
        audit_record(
            actor=None,
            obj=round_,
            action="round.rescreened_chunk",
            data={
                "trigger_key": trigger_key,
                "screened": len(applying),
                "first_application": applying[0].pk,
                "last_application": applying[-1].pk,
                "outcomes": dict(outcomes),
            },
        )
    # Past the range, unless more of it came under review meanwhile than a chunk holds.
    last_pk = end[0] if end and len(applying) < chunk_size else applying[-1].pk
    return {"screened": len(applying), "last_pk": last_pk, "outcomes": outcomes}


def _rescreen_range(
    round_: Round,
    trigger_key: str,
    snapshot_ids: dict[str, int],
    *,
    first: int,
    last: int | None,
    commit_size: int,
) -> dict:
    """Screen the range's applications in transactions of `commit_size`, inside a
    round_facts() that holds their facts; the counts summed."""
    totals: dict = {"screened": 0, "chunks": 0, "outcomes": defaultdict(int)}
    after_pk = first - 1
    while True:
        chunk = _rescreen_chunk(round_, trigger_key, snapshot_ids, after_pk, commit_size, upto=last)
        if chunk["last_pk"] is None:
            break
        after_pk = chunk["last_pk"]
        if not chunk["screened"]:
            continue
        totals["screened"] += chunk["screened"]
        totals["chunks"] += 1
        for outcome, n in chunk["outcomes"].items():
            totals["outcomes"][outcome] += n
    totals["outcomes"] = dict(totals["outcomes"])
    return totals


def _statistics_fresh() -> None:
    """ANALYZE what the facts query reads (PostgreSQL): without fresh statistics, as after a
    bulk load, the planner once chose a plan that grew with the square of the round."""
    if connection.vendor != "postgresql":
        return
    from eligibility.facts import FACTS_MODELS

    with connection.cursor() as cursor:
        for model in (*FACTS_MODELS, ScreeningRun):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def _chunk_ranges(round_id: int, size: int) -> list[tuple[int, int | None]]:
    """The round's applications under review cut into ranges of `size` by id: [(first id,
    last id)], the first one open below and the last one above (1 and None), for those
    that come under review later.

    The same round cuts the same way whichever of its applications are screened already,
    so a dispatch run twice records the same chunks (their keys name the first id).
    """
    table = connection.ops.quote_name(Application._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM (SELECT a.id, row_number() OVER (ORDER BY a.id) AS n "  # noqa: S608
            f"FROM {table} a WHERE a.round_id = %s AND a.status = %s) t "
            "WHERE (t.n - 1) %% %s = 0 ORDER BY id",
            [round_id, Application.Status.UNDER_REVIEW, size],
        )
        starts = [row[0] for row in cursor.fetchall()]
    return [
        (1 if i == 0 else start, starts[i + 1] - 1 if i + 1 < len(starts) else None)
        for i, start in enumerate(starts)
    ]


def rescreen_chunk_key(round_id: int, job_key: str, first: int | str) -> str:
    """The outbox key of a re-screen's chunk (with first="", the prefix of them all)."""
    return f"rescreen:{round_id}:{job_key}:{first}"


def round_rescreen_dispatch(*, round_id: int, job_key: str, chunk_size: int | None = None) -> dict:
    """Record the round's re-screen as one outbox entry per chunk of applications under
    review (sent after the commit, to the `long` queue), each judged on the snapshots
    active now; return the number of chunks. Safe to run twice."""
    from eligibility.screening_tasks import round_rescreen_chunk_task

    size = chunk_size or settings.BAEUM_RESCREEN_CHUNK
    _statistics_fresh()
    with transaction.atomic():
        snapshot_ids = screening.active_snapshot_ids()
        ranges = _chunk_ranges(round_id, size)
        for first, last in ranges:
            outbox_enqueue(
                round_rescreen_chunk_task,
                round_id,
                job_key,
                first,
                last,
                snapshot_ids,
                key=rescreen_chunk_key(round_id, job_key, first),
            )
    logger.info("rescreen %s of round %s: %s chunks", job_key, round_id, len(ranges))
    return {"chunks": len(ranges)}


def round_rescreen_chunk(
    *, round_id: int, job_key: str, first: int, last: int | None, snapshot_ids: dict[str, int]
) -> dict:
    """Re-screen one chunk of a round (applications under review with ids first..last)
    on the snapshots the dispatch named; a rerun screens only what is left."""
    round_ = Round.objects.select_related("program").get(pk=round_id)
    trigger_key = f"rescreen:{job_key}"
    with screening.round_facts(round_, trigger_key, snapshot_ids, first=first, last=last):
        totals = _rescreen_range(
            round_,
            trigger_key,
            snapshot_ids,
            first=first,
            last=last,
            commit_size=settings.BAEUM_RESCREEN_COMMIT,
        )
    logger.info(
        "rescreen %s of round %s: chunk %s-%s, %s screened",
        job_key,
        round_id,
        first,
        "" if last is None else last,
        totals["screened"],
    )
    return totals


def round_rescreen(*, round_id: int, job_key: str, chunk_size: int | None = None) -> dict:
    """Re-screen a round's applications under review in this process, committing every
    `chunk_size` (BAEUM_RESCREEN_COMMIT); what round_rescreen_dispatch spreads over workers.

    The whole round is judged on the registry snapshots active when it begins; a newer
    snapshot queues its own job.
    """
    round_ = Round.objects.select_related("program").get(pk=round_id)
    trigger_key = f"rescreen:{job_key}"
    already_done = ScreeningRun.objects.filter(
        application__round_id=round_id, trigger_key=trigger_key
    ).count()
    snapshot_ids = screening.active_snapshot_ids()
    _statistics_fresh()
    with screening.round_facts(round_, trigger_key, snapshot_ids):
        totals = _rescreen_range(
            round_,
            trigger_key,
            snapshot_ids,
            first=1,
            last=None,
            commit_size=chunk_size or settings.BAEUM_RESCREEN_COMMIT,
        )
    logger.info("rescreen %s of round %s: %s screened", job_key, round_id, totals["screened"])
    return {**totals, "already_done": already_done}
