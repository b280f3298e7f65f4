"""The outbox: one message per event, sent after commit, never twice, retried on failure."""

import threading
import time
from collections import Counter

import pytest
from celery import current_app
from django.core.cache import cache
from django.db import connection, connections

from benefits import notifications, services
from benefits.models import Notification
from benefits.notifications import MAX_ATTEMPTS, notification_enqueue, notification_send
from benefits.tasks import notifications_flush_task
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db

SENT = []


class RecordingBackend:
    def send(self, notification):
        SENT.append(notification.pk)


class BrokenBackend:
    def send(self, notification):
        raise ConnectionError("smtp down")


@pytest.fixture(autouse=True)
def recording(settings):
    SENT.clear()
    settings.BAEUM_NOTIFICATION_BACKEND = "tests.benefits.test_notifications.RecordingBackend"


def test_submit_queues_and_sends_one_message_after_commit(django_capture_on_commit_callbacks):
    application = ApplicationFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.application_submit(application=application, actor=application.applicant.user)
    notification = Notification.objects.get(application=application)
    assert notification.kind == "submitted" and notification.status == "sent"
    assert [notification.pk] == SENT
    assert str(application.pk) in notification.body


def test_nothing_is_sent_when_the_transaction_rolls_back(django_capture_on_commit_callbacks):
    application = ApplicationFactory()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.application_submit(application=application, actor=application.applicant.user)
    assert SENT == []
    # One broker message after the commit: screening, chained with sending the message.
    assert len(callbacks) == 1
    assert Notification.objects.get(application=application).status == "pending"


def test_same_event_enqueued_twice_makes_one_message():
    application = ApplicationFactory()
    first = notification_enqueue(application=application, kind="approved", event_key="e1")
    second = notification_enqueue(application=application, kind="approved", event_key="e1")
    assert first is not None and second is None
    assert Notification.objects.count() == 1


def test_a_sent_message_is_never_sent_again():
    application = ApplicationFactory()
    notification = notification_enqueue(application=application, kind="approved", event_key="x")
    assert notification_send(notification_id=notification.pk) is True
    assert notification_send(notification_id=notification.pk) is True
    assert [notification.pk] == SENT


def test_failures_are_retried_then_given_up(settings):
    settings.BAEUM_NOTIFICATION_BACKEND = "tests.benefits.test_notifications.BrokenBackend"
    application = ApplicationFactory()
    notification = notification_enqueue(application=application, kind="approved", event_key="y")
    for _ in range(MAX_ATTEMPTS - 1):
        assert notification_send(notification_id=notification.pk) is False
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("pending", MAX_ATTEMPTS - 1)
    assert notification.last_error == "ConnectionError"
    settings.BAEUM_NOTIFICATION_BACKEND = "tests.benefits.test_notifications.RecordingBackend"
    assert notifications_flush_task.delay().get() == 1
    notification.refresh_from_db()
    assert notification.status == "sent" and [notification.pk] == SENT


def test_gives_up_after_max_attempts(settings):
    settings.BAEUM_NOTIFICATION_BACKEND = "tests.benefits.test_notifications.BrokenBackend"
    notification = notification_enqueue(
        application=ApplicationFactory(), kind="approved", event_key="z"
    )
    for _ in range(MAX_ATTEMPTS):
        notification_send(notification_id=notification.pk)
    notification.refresh_from_db()
    assert notification.status == "failed"
    assert notification_send(notification_id=notification.pk) is False
    assert notification.attempts == MAX_ATTEMPTS


def pending_messages(n: int) -> list[int]:
    """n pending messages to one citizen, as a selection leaves them."""
    application = ApplicationFactory()
    Notification.objects.bulk_create(
        Notification(
            user_id=application.applicant.user_id,
            application=application,
            kind="selected",
            dedupe_key=f"test:{i}",
            subject="s",
            body="b",
        )
        for i in range(n)
    )
    return list(Notification.objects.order_by("pk").values_list("pk", flat=True))


def test_a_flush_sends_every_pending_message_once_in_chunks(monkeypatch):
    monkeypatch.setattr(notifications, "SEND_CHUNK", 7)
    ids = pending_messages(30)
    assert notifications_flush_task.delay().get() == 30
    assert ids == SENT
    assert notifications_flush_task.delay().get() == 0
    assert ids == SENT
    assert set(Notification.objects.values_list("status", "attempts")) == {("sent", 1)}


def test_a_failing_message_waits_for_the_sweep_not_for_the_next_new_message(settings):
    settings.BAEUM_NOTIFICATION_BACKEND = "tests.benefits.test_notifications.BrokenBackend"
    (failing,) = pending_messages(1)
    assert notification_send(notification_id=failing) is False
    settings.BAEUM_NOTIFICATION_BACKEND = "tests.benefits.test_notifications.RecordingBackend"
    # A flush set off by new messages sends those, not the one that failed a moment ago…
    fresh = notification_enqueue(
        application=ApplicationFactory(), kind="approved", event_key="new", send_after_commit=False
    )
    assert notifications_flush_task.delay(fresh_only=True).get() == 1
    assert [fresh.pk] == SENT
    # …the periodic sweep (no arguments) tries it again.
    assert notifications_flush_task.delay().get() == 1
    assert [fresh.pk, failing] == SENT


@pytest.fixture
def with_a_broker(monkeypatch):
    """Tasks published instead of run in this process; what was published, recorded."""
    published = []
    monkeypatch.setattr(
        notifications_flush_task, "apply_async", lambda **options: published.append(options)
    )
    current_app.conf.task_always_eager = False
    yield published
    current_app.conf.task_always_eager = True


def test_with_a_worker_the_messages_of_many_commits_share_one_flush(
    django_capture_on_commit_callbacks, with_a_broker
):
    # With a broker, each commit does not send its own task: the first one schedules a
    # flush a little later, and the commits until then leave their messages to it.
    application = ApplicationFactory()
    for i in range(20):
        with django_capture_on_commit_callbacks(execute=True):
            notification_enqueue(application=application, kind="approved", event_key=f"e{i}")
    assert with_a_broker == [
        {"kwargs": {"fresh_only": True}, "countdown": notifications.FLUSH_DELAY}
    ]
    assert SENT == []
    # Once that flush has started (its key gone), the next commit schedules another.
    cache.delete(notifications.FLUSH_SCHEDULED_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        notification_enqueue(application=application, kind="approved", event_key="later")
    assert len(with_a_broker) == 2
    current_app.conf.task_always_eager = True
    assert notifications_flush_task.apply(kwargs=with_a_broker[0]["kwargs"]).get() == 21
    assert sorted(SENT) == sorted(Notification.objects.values_list("pk", flat=True))


class SlowRecordingBackend:
    def send(self, notification):
        time.sleep(0.001)
        SENT.append(notification.pk)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_flushes_on_several_workers_send_each_message_exactly_once(settings, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("concurrency is tested on PostgreSQL: set DATABASE_URL")
    settings.BAEUM_NOTIFICATION_BACKEND = "tests.benefits.test_notifications.SlowRecordingBackend"
    monkeypatch.setattr(notifications, "SEND_CHUNK", 50)
    ids = pending_messages(300)
    barrier = threading.Barrier(3)
    sent = [0, 0, 0]

    def flush(i):
        try:
            barrier.wait()
            sent[i] = notifications_flush_task.apply().result
        finally:
            connections.close_all()

    threads = [threading.Thread(target=flush, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(sent) == 300
    assert Counter(SENT) == Counter(ids)  # each once
    assert all(sent), "the three flushes sent side by side"
    assert not Notification.objects.exclude(status="sent").exists()


def test_messages_queued_in_bulk_name_the_reason_and_the_last_day_to_appeal():
    from benefits.models import Application
    from benefits.notifications import notification_enqueue_many

    application = ApplicationFactory(decision_reason="소득 기준 초과 / Income too high")
    queued = notification_enqueue_many(
        rows=Application.objects.filter(pk=application.pk),
        kind="rejected",
        event_key="bulk",
        reason_field="decision_reason",
        appeal_until="2026-03-02",
    )
    assert queued == 1
    body = Notification.objects.get(application=application).body
    assert "소득 기준 초과 / Income too high" in body and "until 2026-03-02." in body
    assert "{" not in body
