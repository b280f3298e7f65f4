"""Selection: fill a round's capacity from approved applications by priority and a lottery.

The order is public and reproducible: priority tier first (basic livelihood, near-poor,
others), then the lottery key SHA-256("<seed>:<application id>") as lowercase hex, then the
id. Anyone given the round's seed and the list of application ids can recompute it.
"""

import hashlib
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from django.db import connection, transaction
from django.db.models import Case, CharField, QuerySet, Value, When
from django.db.models.functions import SHA256, Cast, Concat
from django.utils import timezone

from benefits.models import Application, Notification, Round
from benefits.notifications import notification_enqueue, notification_enqueue_many
from core.audit import audit_record
from core.fsm import bulk_transition, require_transition, transition_states
from core.models import AuditEvent

PRIORITY_TIERS = {
    Application.IncomeCategory.BASIC_LIVELIHOOD: 1,
    Application.IncomeCategory.NEAR_POOR: 2,
    Application.IncomeCategory.NONE: 3,
}
SELECTION_ORDER = ("priority_tier", "lottery_key", "id")
CANDIDATE_STATUSES = (Application.Status.APPROVED, Application.Status.WAITLISTED)
RUN_ACTION = "round.select"
# Candidates read, locked and written per statement.
CHUNK = 2000
# How a candidate moves: the message it gets, the audit action, the state it ends in.
MOVES = {
    move: (kind, f"application.{action}", transition_states(Application, move)[1])
    for move, kind, action in (
        ("select", Notification.Kind.SELECTED, "selected"),
        ("promote", Notification.Kind.SELECTED, "selected"),
        ("waitlist", Notification.Kind.WAITLISTED, "waitlisted"),
    )
}


def lottery_key(seed: str, application_id: int) -> str:
    """Return the published lottery key of one application under the round's seed."""
    return hashlib.sha256(f"{seed}:{application_id}".encode()).hexdigest()


@dataclass(frozen=True)
class SelectionResult:
    round: Round
    selected: int
    waitlisted: int
    seats_left: int


def _seats_taken(round_: Round) -> int:
    return Application.objects.filter(round=round_, status=Application.Status.SELECTED).count()


def _chunks(iterable: Iterable, size: int) -> Iterator[list]:
    iterator = iter(iterable)
    while chunk := list(islice(iterator, size)):
        yield chunk


class _LotteryHash(SHA256):
    """Django's SHA256 (lowercase hex), on PostgreSQL with its built-in sha256() rather than
    pgcrypto's digest(), which a plain database does not have."""

    def as_postgresql(self, compiler, connection, **extra):
        template = "ENCODE(SHA256(CONVERT_TO(%(expressions)s, 'UTF8')), 'hex')"
        return self.as_sql(compiler, connection, template=template, **extra)


def _assign_lottery_keys(candidates: QuerySet, seed: str) -> None:
    """Give each candidate without one its tier and lottery key, in one statement: the
    database computes lottery_key() itself (SHA-256 of "<seed>:<id>", lowercase hex)."""
    candidates.filter(lottery_key="").update(
        priority_tier=Case(
            *(
                When(income_category=category, then=Value(tier))
                for category, tier in PRIORITY_TIERS.items()
            )
        ),
        lottery_key=_LotteryHash(Concat(Value(f"{seed}:"), Cast("pk", CharField()))),
    )


# The database's function that builds a JSON object (the only two the project runs on).
JSON_OBJECT = {"postgresql": "JSONB_BUILD_OBJECT", "sqlite": "JSON_OBJECT"}


def _audit_moves(*, actor, move: str, placed: list[tuple[int, int]], at) -> None:
    """Audit the candidates of a chunk that `move` moved, in one INSERT … SELECT: each
    event names the move's source and target states and holds the candidate's tier (read
    from its locked row; selection does not change it) and its position in the order.

    The same events as AuditEvent.objects.bulk_create would write, without building an
    object and its JSON per candidate in Python (72,000 of them at 100,000 applicants).
    """
    _kind, action, to_state = MOVES[move]
    (from_state,) = transition_states(Application, move)[0]
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    applications = connection.ops.quote_name(Application._meta.db_table)
    build = JSON_OBJECT[connection.vendor]
    values = ", ".join(["(%s, %s)"] * len(placed))
    sql = f"""
        INSERT INTO {table} (actor_id, at, action, object_type, object_id, from_state,
                             to_state, reason, data)
        SELECT %s, %s, %s, %s, CAST(a.id AS TEXT), %s, %s, '',
               {build}('priority_tier', a.priority_tier, 'position', p.column2)
        FROM {applications} a
        JOIN (VALUES {values}) p ON a.id = p.column1
        ORDER BY p.column2
    """  # noqa: S608 - table names quoted, values bound
    params = [getattr(actor, "pk", None), at, action, Application._meta.label_lower]
    params += [from_state, to_state, *(v for pair in placed for v in pair)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@transaction.atomic
def round_select(*, round_: Round, actor) -> SelectionResult:
    """Rank the approved applications and fill the remaining capacity; waitlist the rest.

    Running it again later places newly approved applications without displacing anyone
    already selected; waitlisted applications compete again in the same published order.
    The candidates are read in that order a chunk at a time (memory does not grow with
    the round), each chunk locked, moved, audited and told in one go.
    """
    # Lock order everywhere: round, then applications, then payments.
    round_ = Round.objects.select_for_update().select_related("program").get(pk=round_.pk)
    require_transition(round_.select, actor, action="run the selection")
    from_state = round_.status
    if not round_.selection_seed:
        round_.selection_seed = secrets.token_hex(16)
    round_.select()
    round_.save()
    # Names this run in its messages' dedupe keys: the same run never tells anyone twice,
    # a later run (newly approved applications) tells the ones it places.
    run_number = (
        1
        + AuditEvent.objects.filter(
            object_type=Round._meta.label_lower, object_id=str(round_.pk), action=RUN_ACTION
        ).count()
    )
    event_key = f"select{round_.pk}.{run_number}"

    candidates = Application.objects.filter(round=round_, status__in=CANDIDATE_STATUSES)
    _assign_lottery_keys(candidates, round_.selection_seed)

    seats = max(round_.capacity - _seats_taken(round_), 0)
    # Money as well as seats: selection never commits more than what the budget has left
    # (what selected recipients, payments and top-ups hold already is counted there).
    from payments.selectors import round_budget_ledger

    seats = min(seats, max(round_budget_ledger(round_).available, 0) // round_.amount)

    now = timezone.now()
    selected = waitlisted = position = 0
    order = candidates.order_by(*SELECTION_ORDER).values_list("pk", flat=True)
    for ids in _chunks(order.iterator(chunk_size=CHUNK), CHUNK):
        # Locked here, a chunk at a time; one that left the candidates since is passed over.
        locked = dict(candidates.select_for_update().filter(pk__in=ids).values_list("pk", "status"))
        # Each move's candidates, with their positions in the order.
        moves: dict[str, list[tuple[int, int]]] = {name: [] for name in MOVES}
        for pk in ids:
            if pk not in locked:
                continue
            position += 1
            from_app_state = locked[pk]
            if selected < seats:
                approved = from_app_state == Application.Status.APPROVED
                move = "select" if approved else "promote"
                selected += 1
            elif from_app_state == Application.Status.APPROVED:
                move = "waitlist"
                waitlisted += 1
            else:
                continue  # still waitlisted, in the same order as before
            moves[move].append((pk, position))
        for move, placed in moves.items():
            if not placed:
                continue
            moved = [pk for pk, _position in placed]
            fields = {"updated_at": now}
            if MOVES[move][0] == Notification.Kind.SELECTED:
                fields["selected_at"] = now
            bulk_transition(Application.objects.filter(pk__in=moved), move, **fields)
            notification_enqueue_many(
                rows=Application.objects.filter(pk__in=moved),
                kind=MOVES[move][0],
                event_key=event_key,
            )
            _audit_moves(actor=actor, move=move, placed=placed, at=now)
    audit_record(
        actor=actor,
        obj=round_,
        action=RUN_ACTION,
        from_state=from_state,
        to_state=round_.status,
        data={"seed": round_.selection_seed, "selected": selected, "waitlisted": waitlisted},
    )
    return SelectionResult(
        round=round_, selected=selected, waitlisted=waitlisted, seats_left=seats - selected
    )


def waitlist_promote_next(*, round_: Round, reason: str) -> Application | None:
    """Promote the first waitlisted application into a freed seat (the caller locks the round)."""
    if round_.status not in (Round.Status.SELECTED, Round.Status.DISBURSING):
        return None
    if _seats_taken(round_) >= round_.capacity:
        return None
    application = (
        Application.objects.select_for_update()
        .filter(round=round_, status=Application.Status.WAITLISTED)
        .order_by(*SELECTION_ORDER)
        .first()
    )
    if application is None:
        return None
    application.promote()
    application.selected_at = timezone.now()
    application.save(update_fields=["status", "selected_at", "updated_at"])
    event = audit_record(
        actor=None,
        obj=application,
        action="application.promoted",
        from_state=Application.Status.WAITLISTED,
        to_state=application.status,
        reason=reason,
    )
    notification_enqueue(
        application=application, kind=Notification.Kind.SELECTED, event_key=str(event.pk)
    )
    return application
