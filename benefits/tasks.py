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


@shared_task(bind=True)
def notifications_flush_task(self) -> int:
    """Send what is still pending (after a selection, a bank result, or a broker outage)."""
    sent_total = 0
    while True:
        ids = notifications_pending_ids(limit=FLUSH_LIMIT)
        sent = sum(notification_send(notification_id=pk) for pk in ids)
        sent_total += sent
        if not sent or len(ids) < FLUSH_LIMIT:
            return sent_total
        if not self.request.is_eager:
            # More are waiting: a fresh task takes them, so no task runs for long.
            notifications_flush_task.delay()
            return sent_total
