"""The outbox: one message per event, sent after commit, never twice, retried on failure."""

import pytest

from benefits import services
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
