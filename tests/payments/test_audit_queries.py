"""The pre-release audit finds shared accounts by index: a scan per payment grew with the
square of the batch (bench/RESULTS.md, simulate_round)."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from payments import selectors, services
from payments.models import Payment


def _plan(sql: str) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A table of five rows is read whole whatever the indexes; forbid that to see
            # which index the planner would take for a batch of any size.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {sql}")
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


def test_the_audit_looks_up_each_account_by_index(selected_round, finance1):
    batch = services.batch_create(round_=selected_round, actor=finance1.user)
    services.batch_build(batch_id=batch.pk)
    assert Payment.objects.filter(batch=batch).count() == 5

    with CaptureQueriesContext(connection) as queries:
        summary = selectors.batch_audit_summary(batch)

    assert summary["shared_account"] == 0
    plan = _plan(queries.captured_queries[-1]["sql"])
    # Both lookups among payments (this batch's, every live one) go through the index.
    assert plan.count("payment_account_in_batch") >= 2, plan
