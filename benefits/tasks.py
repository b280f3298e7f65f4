from celery import shared_task

from benefits.models import Notification
from benefits.notifications import notification_send, notifications_pending_ids

FLUSH_LIMIT = 500


@shared_task(bind=True, acks_late=True, max_retries=4)
def notification_send_task(self, notification_id: int) -> bool:
    sent = notification_send(notification_id=notification_id)
    still_pending = Notification.objects.filter(
        pk=notification_id, status=Notification.Status.PENDING
    ).exists()
    if not sent and still_pending and not self.request.is_eager:
        raise self.retry(countdown=30 * 2**self.request.retries)
    return sent


@shared_task
def notifications_flush_task() -> int:
    """Send what is still pending (after a broker outage or exhausted task retries)."""
    ids = notifications_pending_ids(limit=FLUSH_LIMIT)
    sent = sum(notification_send(notification_id=notification_id) for notification_id in ids)
    if sent and len(ids) == FLUSH_LIMIT:
        # More are waiting (a selection or a bank result makes thousands at once).
        notifications_flush_task.delay()
    return sent
