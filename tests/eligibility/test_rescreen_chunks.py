"""A round's re-screen cut into chunk tasks by application id: each chunk an outbox entry
that any worker may run, each safe to run again, the progress summed over them.
(Real workers sharing the chunks, and one killed mid-chunk: tests/integration/test_faults.py.)
"""

import pytest
from django.db.models import Count

from benefits.models import Application
from benefits.rescreen import round_rescreen_chunk
from benefits.selectors import round_rescreen_progress
from core.models import TaskOutbox
from eligibility.models import ScreeningRun
from eligibility.screening import active_snapshot_ids
from eligibility.screening_tasks import round_rescreen_task
from tests.eligibility.test_screening import ROUND_SIZE, big_round  # noqa: F401

pytestmark = pytest.mark.django_db


def runs_per_application(trigger_key: str) -> dict[int, int]:
    return dict(
        ScreeningRun.objects.filter(trigger_key=trigger_key)
        .values("application_id")
        .annotate(n=Count("id"))
        .values_list("application_id", "n")
    )


def test_a_rescreen_is_cut_into_chunks_by_id_each_application_screened_once(
    big_round,  # noqa: F811
    settings,
    django_capture_on_commit_callbacks,
):
    settings.BAEUM_RESCREEN_CHUNK = 120
    settings.BAEUM_RESCREEN_COMMIT = 50
    ids = sorted(big_round.applications.values_list("pk", flat=True))

    with django_capture_on_commit_callbacks(execute=True):
        round_rescreen_task.delay(big_round.pk, "cut")

    chunks = TaskOutbox.objects.filter(key__startswith=f"rescreen:{big_round.pk}:cut:")
    ranges = [entry.args[2:4] for entry in chunks.order_by("pk")]
    # 300 applications: 120, 120 and the rest; the ends open for latecomers.
    assert ranges == [[1, ids[119]], [ids[120], ids[239]], [ids[240], None]]
    assert set(chunks.values_list("status", flat=True)) == {TaskOutbox.Status.DONE}
    assert runs_per_application("rescreen:cut") == dict.fromkeys(ids, 1)
    assert round_rescreen_progress(round_id=big_round.pk, job_key="cut") == {
        "screened": ROUND_SIZE,
        "under_review": ROUND_SIZE,
        "chunks": 3,
        "chunks_done": 3,
    }

    # Asked again (a retried dispatch): the same chunks, nothing screened twice.
    with django_capture_on_commit_callbacks(execute=True):
        round_rescreen_task.delay(big_round.pk, "cut")
    assert chunks.count() == 3
    assert runs_per_application("rescreen:cut") == dict.fromkeys(ids, 1)


def test_a_chunk_run_again_screens_only_what_is_left_of_it(big_round, settings):  # noqa: F811
    settings.BAEUM_RESCREEN_COMMIT = 40
    ids = sorted(big_round.applications.values_list("pk", flat=True))
    first, last = ids[0], ids[99]
    snapshots = active_snapshot_ids()
    # A run that stopped after its first commit: 40 of the chunk's 100 are screened.
    ScreeningRun.objects.bulk_create(
        ScreeningRun(
            application_id=pk,
            trigger_key="rescreen:again",
            ruleset_version="scholarship-2026.1",
            outcome="needs_review",
        )
        for pk in ids[:40]
    )

    again = round_rescreen_chunk(
        round_id=big_round.pk, job_key="again", first=first, last=last, snapshot_ids=snapshots
    )
    once_more = round_rescreen_chunk(
        round_id=big_round.pk, job_key="again", first=first, last=last, snapshot_ids=snapshots
    )

    assert (again["screened"], once_more["screened"]) == (60, 0)
    # Only its own range: the applications after it wait for their own chunk.
    assert runs_per_application("rescreen:again") == dict.fromkeys(ids[:100], 1)
    assert set(Application.objects.values_list("status", flat=True)) == {"under_review"}


def test_a_rescreen_requested_while_the_broker_is_down_waits_and_runs_once_it_returns(
    big_round,  # noqa: F811
    broker_down,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    from django.db import transaction

    from config.celery import app as celery_app
    from core.outbox import outbox_sweep
    from eligibility.screening_tasks import round_rescreen_request

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        round_rescreen_request(round_id=big_round.pk, job_key="down")

    entry = TaskOutbox.objects.get(key=f"rescreen:{big_round.pk}:down")
    assert entry.status == TaskOutbox.Status.PENDING
    assert runs_per_application("rescreen:down") == {}

    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)  # the broker is back
    with django_capture_on_commit_callbacks(execute=True):
        outbox_sweep()
    under_review = big_round.applications.filter(status=Application.Status.UNDER_REVIEW)
    assert set(runs_per_application("rescreen:down").values()) == {1}
    assert len(runs_per_application("rescreen:down")) == under_review.count()
