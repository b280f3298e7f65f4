"""Units of work rolled back whole, whose inner service transactions need no savepoints.

A service opens its own atomic block so that it is all-or-nothing wherever it is called;
inside a caller's transaction Django makes that block a savepoint (two more statements),
so that the caller may catch the service's error and carry on. A caller that never does
(the API's Idempotency-Key block: any error rolls back all of it, then propagates) says
so with all_or_nothing(), and the services it calls that are marked with
@service_atomic open their block without a savepoint.

Inside all_or_nothing(), an error out of such a service leaves the transaction unusable
until the all_or_nothing() block ends (Django refuses any further query): catching it
and carrying on fails loudly, never silently. Outside it, @service_atomic is
transaction.atomic.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps

from django.db import connection, transaction

_ALL_OR_NOTHING: ContextVar[bool] = ContextVar("baeum_all_or_nothing", default=False)


@contextmanager
def all_or_nothing() -> Iterator[None]:
    """transaction.atomic() for a unit of work that no one inside it recovers from."""
    with transaction.atomic():
        token = _ALL_OR_NOTHING.set(True)
        try:
            yield
        finally:
            _ALL_OR_NOTHING.reset(token)


def service_atomic(func: Callable) -> Callable:
    """transaction.atomic, without its savepoint inside all_or_nothing()."""

    @wraps(func)
    def inner(*args, **kwargs):
        with transaction.atomic(savepoint=not _ALL_OR_NOTHING.get()):
            return func(*args, **kwargs)

    return inner


def insert_unless_conflict(record, fields, *, async_commit: bool = False) -> bool:
    """INSERT the record with `fields` … ON CONFLICT DO NOTHING; set its pk and return True,
    or return False when a row with the same unique values was there already.

    One statement, where a plain INSERT would need a savepoint around it to survive the
    duplicate (an IntegrityError aborts a PostgreSQL transaction). Values are prepared as
    Model.save() prepares them (defaults, auto_now_add, database adaptation).
    `async_commit` (PostgreSQL) lets the statement's own commit, when it autocommits, return
    without waiting for the disk: for rows a later synchronous commit flushes anyway.
    """
    meta = record._meta
    values = [f.get_db_prep_save(f.pre_save(record, add=True), connection) for f in fields]
    quote = connection.ops.quote_name
    placeholders = ", ".join(["%s"] * len(fields))
    source = (
        f"SELECT {placeholders} "  # noqa: S608 - placeholders only
        "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit"
        if async_commit
        else f"VALUES ({placeholders})"
    )
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"{source} ON CONFLICT DO NOTHING RETURNING {quote(meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    record.pk = row[0]
    record._state.adding = False
    record._state.db = connection.alias
    return True
