"""The task outbox: work recorded with its transaction, sent after the commit, sent again by
the sweeper while it waits, run under a lease that a stalled run loses."""

from datetime import timedelta

import pytest
from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from benefits.models import Application
from config.celery import app as celery_app
from core import outbox
from core.models import TaskOutbox
from core.outbox import (
    outbox_enqueue,
    outbox_heartbeat,
    outbox_retry,
    outbox_run,
    outbox_sweep,
)
from tests.conftest import client_for
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db
RAN: list = []
ABANDONED: list = []


@shared_task(name="tests.core.test_outbox.record_task")
def record_task(value):
    RAN.append(value)
    return value


@shared_task(name="tests.core.test_outbox.failing_task")
def failing_task(value):
    raise ValueError("a bug")


@shared_task(name="tests.core.test_outbox.taken_over_task")
def taken_over_task(entry_key):
    # Another run takes the entry over while this one works, then this one reports progress.
    TaskOutbox.objects.filter(key=entry_key).update(owner="another-run")
    with transaction.atomic():
        outbox_heartbeat()
        RAN.append("chunk committed")


outbox.on_abandon(failing_task)(ABANDONED.append)


@pytest.fixture(autouse=True)
def _clear():
    RAN.clear()
    ABANDONED.clear()


def enqueue(task, *args, key, **kwargs):
    with transaction.atomic():
        return outbox_enqueue(task, *args, key=key, **kwargs)


def test_work_runs_once_committed_and_is_marked_done(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        entry = enqueue(record_task, 7, key="record:7")
    assert len(callbacks) == 1
    assert RAN == [7]
    entry.refresh_from_db()
    assert (entry.status, entry.runs, entry.failures, entry.owner) == ("done", 1, 0, "")
    assert entry.finished_at is not None


def test_work_of_a_rolled_back_transaction_is_never_recorded_nor_sent(
    django_capture_on_commit_callbacks,
):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        outbox_enqueue(record_task, 1, key="record:1")
        raise RuntimeError
    assert not callbacks and not RAN
    assert not TaskOutbox.objects.exists()


def test_the_same_work_twice_is_recorded_once():
    assert enqueue(record_task, 1, key="same") is not None
    assert enqueue(record_task, 2, key="same") is None
    assert TaskOutbox.objects.get().args == [1]


@pytest.mark.django_db(transaction=True)
def test_enqueue_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError):
        outbox_enqueue(record_task, 1, key="outside")
    assert not TaskOutbox.objects.exists()


def test_the_sweeper_sends_what_is_due_and_leaves_the_rest():
    due = enqueue(record_task, "due", key="due")
    later = enqueue(record_task, "later", key="later")
    TaskOutbox.objects.filter(pk=due.pk).update(due_at=timezone.now() - timedelta(seconds=1))

    totals = outbox_sweep()

    assert totals["sent"] == 1
    assert RAN == ["due"]
    due.refresh_from_db()
    later.refresh_from_db()
    assert (due.status, due.dispatches) == ("done", 2)
    assert (later.status, later.dispatches) == ("pending", 1)
    assert outbox_sweep()["sent"] == 0  # nothing else is due


def test_a_run_whose_lease_expired_is_taken_over(settings):
    entry = enqueue(record_task, "again", key="stalled")
    stale = timezone.now() - settings.BAEUM_OUTBOX_LEASE - timedelta(seconds=1)
    TaskOutbox.objects.filter(pk=entry.pk).update(
        status="running", owner="dead-worker", runs=1, heartbeat_at=stale, due_at=stale
    )

    assert outbox_sweep()["sent"] == 1

    entry.refresh_from_db()
    assert RAN == ["again"]
    assert (entry.status, entry.runs, entry.failures, entry.last_error) == (
        "done",
        2,
        1,
        "lease expired",
    )


def test_a_live_lease_is_neither_swept_nor_taken_over():
    entry = enqueue(record_task, "busy", key="busy")
    now = timezone.now()
    TaskOutbox.objects.filter(pk=entry.pk).update(
        status="running", owner="live-worker", heartbeat_at=now, due_at=now - timedelta(seconds=1)
    )

    assert outbox_sweep()["sent"] == 0
    assert outbox_run(entry_id=entry.pk) is False

    entry.refresh_from_db()
    assert (entry.status, entry.owner, RAN) == ("running", "live-worker", [])


def test_a_run_that_lost_its_lease_rolls_its_chunk_back_and_finishes_nothing():
    entry = enqueue(taken_over_task, "lost", key="lost")

    assert outbox_run(entry_id=entry.pk) is False

    entry.refresh_from_db()
    assert RAN == []  # the chunk after the takeover did not commit
    assert (entry.status, entry.owner) == ("running", "another-run")


def test_heartbeat_outside_a_run_does_nothing():
    outbox_heartbeat()  # a direct call of a service: no lease to renew


def test_a_failed_run_waits_longer_each_time_then_is_given_up(settings):
    settings.BAEUM_OUTBOX_MAX_FAILURES = 2
    entry = enqueue(failing_task, "poison", key="poison")

    with pytest.raises(ValueError):  # eager: the error shows, as with any eager task
        outbox_run(entry_id=entry.pk)
    entry.refresh_from_db()
    assert (entry.status, entry.failures, entry.last_error) == ("pending", 1, "ValueError")
    assert entry.due_at > timezone.now()
    assert ABANDONED == []

    with pytest.raises(ValueError):
        outbox_run(entry_id=entry.pk)
    entry.refresh_from_db()
    assert (entry.status, entry.failures) == ("failed", 2)
    assert ABANDONED == ["poison"]

    assert outbox_retry(entry_ids=[entry.pk]) == 1
    entry.refresh_from_db()
    assert (entry.status, entry.failures) == ("pending", 0)


def test_follow_ups_are_sent_once_the_work_is_done():
    entry = enqueue(record_task, "first", key="first", then=[(record_task, ["then"])])
    assert outbox_run(entry_id=entry.pk) is True
    assert RAN == ["first", "then"]
    assert outbox_run(entry_id=entry.pk) is False  # done: a copy does nothing
    assert RAN == ["first", "then"]


def test_submit_while_the_broker_is_down_answers_200_and_is_screened_once_it_returns(
    django_capture_on_commit_callbacks, broker_down, monkeypatch
):
    application = ApplicationFactory()
    client = client_for(application.applicant.user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/applications/{application.pk}/submit/")

    assert response.status_code == 200, response.content
    application.refresh_from_db()
    assert application.status == Application.Status.SUBMITTED
    entry = TaskOutbox.objects.get(task="eligibility.screening_tasks.application_screen_task")
    assert entry.status == "pending"
    assert entry.due_at <= timezone.now()  # due at once: the next sweep sends it

    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)  # the broker is back
    assert outbox_sweep()["sent"] == 1

    application.refresh_from_db()
    entry.refresh_from_db()
    assert application.status == Application.Status.UNDER_REVIEW
    assert entry.status == "done"
    assert application.screening_runs.count() == 1


def test_the_sweeper_deletes_finished_entries_kept_long_enough(settings):
    kept, old = enqueue(record_task, 1, key="kept"), enqueue(record_task, 2, key="old")
    outbox_run(entry_id=kept.pk)
    outbox_run(entry_id=old.pk)
    TaskOutbox.objects.filter(pk=old.pk).update(
        finished_at=timezone.now() - settings.BAEUM_OUTBOX_KEEP_DONE - timedelta(minutes=1)
    )

    assert outbox_sweep()["purged"] == 1
    assert list(TaskOutbox.objects.values_list("key", flat=True)) == ["kept"]


def test_a_decision_while_the_broker_is_down_answers_200_and_its_message_waits(
    django_capture_on_commit_callbacks, broker_down, caseworker
):
    application = ApplicationFactory(status=Application.Status.UNDER_REVIEW)
    with django_capture_on_commit_callbacks(execute=True):
        response = caseworker.post(
            f"/api/v1/review/applications/{application.pk}/request-documents/",
            {"reason": "Please add your enrollment certificate."},
        )

    assert response.status_code == 200, response.content
    message = application.notifications.get(kind="documents_requested")
    assert message.status == "pending"  # sent by notifications_flush_task once it is back


def test_every_task_routed_to_the_long_queue_is_a_task_and_intake_stays_on_default():
    celery_app.loader.import_default_modules()
    # A misspelt name would route nothing and leave that job on the default queue.
    assert set(settings.BAEUM_LONG_TASKS) <= set(celery_app.tasks)
    assert {outbox._queue(name) for name in settings.BAEUM_LONG_TASKS} == {"long"}
    for quick in (
        "eligibility.screening_tasks.application_screen_task",
        "benefits.tasks.notification_send_task",
        "core.tasks.outbox_sweep_task",
    ):
        assert quick in celery_app.tasks
        assert outbox._queue(quick) == "default"
