"""The task outbox: work that a committed state waits on is never lost to a broker outage.

`outbox_enqueue` records the work in the caller's transaction and sends it to Celery once
that commits. A broker that is down at that moment costs nothing but time: the entry
waits, and `outbox_sweep` (Celery beat, or `manage.py outbox_sweep`) sends it again.
Messages lost inside the broker, or runs whose worker died, are sent again the same way.

A run holds a lease on its entry. Long work renews it from each chunk's transaction
(`outbox_heartbeat`), which also holds the entry's row lock until the chunk commits: a
run that made no progress for longer than the lease is taken over by the next dispatch,
and the run it replaced, should it wake up, fails its next heartbeat and rolls that chunk
back. Every task sent through here must be safe to run twice.
"""

import logging
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import CharField, F, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone

from core.models import TaskOutbox
from core.transactions import insert_unless_conflict

logger = logging.getLogger("baeum.outbox")

SWEEP_BATCH = 1000
# A sweep publishes for at most this long, then hands the rest to a fresh sweep.
SWEEP_SECONDS = 30
_ABANDON_HANDLERS: dict[str, Callable] = {}


class LeaseLost(Exception):
    """Another run took this entry over: the current chunk must not commit."""


@dataclass(frozen=True)
class _Lease:
    entry_id: int
    owner: str


_lease: ContextVar[_Lease | None] = ContextVar("baeum_outbox_lease", default=None)


def _lease_length() -> timedelta:
    return settings.BAEUM_OUTBOX_LEASE


def _redispatch_after(dispatches: int) -> timedelta:
    """How long a sent entry may wait for a worker before it is sent again, doubling with
    each send so that a long queue is not flooded with copies."""
    base = settings.BAEUM_OUTBOX_REDISPATCH_AFTER
    return min(base * 2 ** max(dispatches - 1, 0), max(base, timedelta(hours=1)))


def _eager() -> bool:
    return bool(current_app.conf.task_always_eager)


def _task_name(task) -> str:
    return task if isinstance(task, str) else task.name


def outbox_enqueue(task, *args, key: str, then: list | None = None) -> TaskOutbox | None:
    """Record `task(*args)` as work the current transaction waits on, sent after the commit.

    The same key twice records it once (None the second time). `then` lists
    (task, args) sent, without an outbox, once the work is done: only for work that has a
    sweep of its own (the notification outbox).
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("outbox_enqueue must be called inside the transaction it serves")
    now = timezone.now()
    entry = TaskOutbox(
        key=key,
        task=_task_name(task),
        args=list(args),
        then=[[_task_name(t), list(a)] for t, a in (then or [])],
        # Counted as sent already: the commit sends it, and if the process dies before, the
        # sweeper finds it when this is due.
        dispatches=1,
        due_at=now + _redispatch_after(1),
    )
    fields = [f for f in TaskOutbox._meta.concrete_fields if not f.primary_key]
    if not insert_unless_conflict(entry, fields):
        return None
    transaction.on_commit(lambda: _send([(entry.pk, entry.task)]))
    return entry


def outbox_request(task, *args, key: str) -> None:
    """Make sure `task(*args)` waits to run: recorded unless it already waits; one that
    finished or was given up earlier is recorded afresh (its result has gone missing)."""
    with transaction.atomic():
        TaskOutbox.objects.filter(key=key).exclude(status__in=TaskOutbox.WAITING).delete()
        outbox_enqueue(task, *args, key=key)


def _queue(task_name: str) -> str:
    """The queue a task is routed to (CELERY_TASK_ROUTES), else the default queue."""
    route = (current_app.conf.task_routes or {}).get(task_name) or {}
    return route.get("queue") or current_app.conf.task_default_queue


def _send(entries: list[tuple[int, str]]) -> int:
    """Hand entries (id, task name) to the broker, each on its task's queue; return how
    many went. One that does not go is due now."""
    from core.tasks import outbox_run_task

    entry_ids = [pk for pk, _ in entries]
    for sent, (pk, task) in enumerate(entries):
        try:
            outbox_run_task.apply_async((pk,), queue=_queue(task))
        except Exception as exc:
            if _eager():
                raise  # the work itself failed, in this process: as any eager task
            # The broker is unreachable: the rest would fail alike. The sweeper retries.
            unsent = TaskOutbox.objects.filter(pk__in=entry_ids[sent:])
            unsent.filter(status__in=TaskOutbox.WAITING).update(due_at=timezone.now())
            logger.warning(
                "task outbox: broker unavailable (%s); %s entries wait for the sweeper",
                type(exc).__name__,
                len(entry_ids) - sent,
            )
            return sent
    return len(entry_ids)


def outbox_sweep(*, seconds: float = SWEEP_SECONDS) -> dict:
    """Send again the waiting work that is due: never sent, lost, or whose run stopped."""
    started = timezone.now()
    totals = {"sent": 0, "unsent": 0}
    deadline = started + timedelta(seconds=seconds)
    while timezone.now() < deadline:
        now = timezone.now()
        stale = now - _lease_length()
        with transaction.atomic():
            due = list(
                TaskOutbox.objects.select_for_update(skip_locked=True)
                .filter(status__in=TaskOutbox.WAITING, due_at__lte=now)
                .filter(Q(status=TaskOutbox.Status.PENDING) | Q(heartbeat_at__lt=stale))
                .order_by("due_at", "pk")
                .values_list("pk", "dispatches", "task")[:SWEEP_BATCH]
            )
            for dispatches in sorted({d for _, d, _ in due}):
                TaskOutbox.objects.filter(
                    pk__in=[pk for pk, d, _ in due if d == dispatches]
                ).update(dispatches=dispatches + 1, due_at=now + _redispatch_after(dispatches + 1))
        if not due:
            break
        ids = [(pk, task) for pk, _, task in due]
        sent = _send(ids)
        totals["sent"] += sent
        if sent < len(ids):
            totals["unsent"] += len(ids) - sent
            break
        if len(ids) < SWEEP_BATCH:
            break
    else:
        totals["more"] = True
    totals["purged"] = _purge_done()
    if totals["sent"] or totals["unsent"]:
        logger.info("task outbox sweep: %(sent)s sent again, %(unsent)s unsent", totals)
    return totals


def _purge_done() -> int:
    """Delete finished entries kept long enough to be looked at (a bounded batch a sweep)."""
    before = timezone.now() - settings.BAEUM_OUTBOX_KEEP_DONE
    old = TaskOutbox.objects.filter(status=TaskOutbox.Status.DONE, finished_at__lt=before)
    ids = list(old.order_by().values_list("pk", flat=True)[:SWEEP_BATCH])
    return TaskOutbox.objects.filter(pk__in=ids).delete()[0] if ids else 0


def outbox_run(*, entry_id: int) -> bool:
    """Run one entry's task under a lease; True when this run finished it.

    False when there is nothing to do here: the entry is finished, or a live run holds it.
    """
    owner = uuid.uuid4().hex
    now = timezone.now()
    waiting = TaskOutbox.objects.filter(pk=entry_id)
    claim = {
        "status": TaskOutbox.Status.RUNNING,
        "owner": owner,
        "runs": F("runs") + 1,
        "heartbeat_at": now,
        "due_at": now + _lease_length(),
    }
    # A run whose lease ran out counts as a failed one: a task that kills its worker every
    # time is given up like one that raises.
    taken_over = waiting.filter(
        status=TaskOutbox.Status.RUNNING, heartbeat_at__lt=now - _lease_length()
    ).update(failures=F("failures") + 1, last_error="lease expired", **claim)
    if not taken_over and not waiting.filter(status=TaskOutbox.Status.PENDING).update(**claim):
        return False
    entry = TaskOutbox.objects.get(pk=entry_id)
    if taken_over:
        logger.warning("task outbox #%s %s: lease expired, taken over", entry.pk, entry.task)
    if entry.failures >= settings.BAEUM_OUTBOX_MAX_FAILURES:
        _give_up(entry, owner)
        return False
    token = _lease.set(_Lease(entry.pk, owner))
    try:
        current_app.tasks[entry.task](*entry.args)
    except LeaseLost:
        logger.info("task outbox #%s %s: taken over by another run", entry.pk, entry.task)
        return False
    except Exception as exc:
        _failed(entry, owner, exc)
        if _eager():
            raise
        return False
    finally:
        _lease.reset(token)
    finished = TaskOutbox.objects.filter(pk=entry.pk, owner=owner).update(
        status=TaskOutbox.Status.DONE, finished_at=timezone.now(), owner=""
    )
    if finished:
        _then(entry)
    return bool(finished)


def _failed(entry: TaskOutbox, owner: str, exc: Exception) -> None:
    failures = entry.failures + 1
    # Only the class name: a message could quote personal data from a file or a row.
    logger.warning(
        "task outbox #%s %s failed (%s, failure %s)",
        entry.pk,
        entry.task,
        type(exc).__name__,
        failures,
    )
    retry_in = settings.BAEUM_OUTBOX_REDISPATCH_AFTER * 2 ** min(failures - 1, 6)
    TaskOutbox.objects.filter(pk=entry.pk, owner=owner).update(
        status=TaskOutbox.Status.PENDING,
        failures=failures,
        owner="",
        due_at=timezone.now() + retry_in,
        last_error=type(exc).__name__[:200],
    )
    if failures >= settings.BAEUM_OUTBOX_MAX_FAILURES:
        entry.refresh_from_db()
        _give_up(entry, "")


def _give_up(entry: TaskOutbox, owner: str) -> None:
    if not TaskOutbox.objects.filter(pk=entry.pk, owner=owner).update(
        status=TaskOutbox.Status.FAILED, finished_at=timezone.now(), owner=""
    ):
        return
    logger.error(
        "task outbox #%s %s given up after %s failures (%s)",
        entry.pk,
        entry.task,
        entry.failures,
        entry.last_error,
    )
    handler = _ABANDON_HANDLERS.get(entry.task)
    if handler is not None:
        handler(*entry.args)


def _then(entry: TaskOutbox) -> None:
    for name, args in entry.then:
        try:
            current_app.signature(name, args=args).delay()
        except Exception as exc:
            if _eager():
                raise
            logger.warning(
                "task outbox #%s: follow-up %s not sent (%s)", entry.pk, name, type(exc).__name__
            )


def outbox_heartbeat() -> None:
    """Renew the running entry's lease from inside a chunk's transaction, or raise LeaseLost.

    Outside a run of the outbox (a direct call, a test, a management command) it does
    nothing. Inside a transaction, the entry stays locked until the chunk commits, so a
    takeover waits for the chunk and then sees the renewed lease.
    """
    lease = _lease.get()
    if lease is None:
        return
    now = timezone.now()
    renewed = TaskOutbox.objects.filter(
        pk=lease.entry_id, owner=lease.owner, status=TaskOutbox.Status.RUNNING
    ).update(heartbeat_at=now, due_at=now + _lease_length())
    if not renewed:
        raise LeaseLost


def on_abandon(task):
    """Register what to do with a task's arguments once its entry is given up."""

    def register(handler: Callable) -> Callable:
        _ABANDON_HANDLERS[_task_name(task)] = handler
        return handler

    return register


def outbox_entries_about(task, objects: QuerySet) -> QuerySet:
    """The entries of a task whose first argument is the id of one of `objects`."""
    ids = objects.order_by().annotate(text_id=Cast("pk", CharField())).values("text_id")
    return TaskOutbox.objects.annotate(about=KT("args__0")).filter(
        task=_task_name(task), about__in=ids
    )


def outbox_retry(*, entry_ids: list[int]) -> int:
    """Put given-up entries back in the queue, due now; return how many."""
    return TaskOutbox.objects.filter(pk__in=entry_ids, status=TaskOutbox.Status.FAILED).update(
        status=TaskOutbox.Status.PENDING,
        failures=0,
        due_at=timezone.now(),
        finished_at=None,
    )
