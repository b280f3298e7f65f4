import time

from celery import shared_task

from benefits.notifications import (
    notification_send,
    notifications_send_chunk,
    notifications_send_soon,
)

# A flush sends for about this long, then hands the rest to a fresh task.
FLUSH_SECONDS = 30


@shared_task(bind=True, acks_late=True)
def notification_send_task(self, notification_id: int) -> bool:
    """Send one message (eagerly), or have it sent with the others by the next flush."""
    if self.request.is_eager:
        return notification_send(notification_id=notification_id)
    notifications_send_soon(notification_id)
    return False


@shared_task(bind=True, acks_late=True)
def notifications_flush_task(self, after: int = 0, fresh_only: bool = False) -> int:
    """Send the pending messages after id `after`, a chunk per transaction; return how many.

    The periodic sweep (no arguments) also retries the messages whose sending failed;
    a flush after new messages (fresh_only) sends only the ones never tried, so a failing
    channel is retried at the sweep's pace, not at every commit.
    """
    started = time.monotonic()
    sent_total = 0
    while True:
        result = notifications_send_chunk(after=after, fresh_only=fresh_only)
        sent_total += result.sent
        after = result.last_id
        if not result.seen:
            return sent_total
        if not self.request.is_eager and time.monotonic() - started > FLUSH_SECONDS:
            # More may be waiting: a fresh task goes on from here, so no task runs for long.
            notifications_flush_task.delay(after=after, fresh_only=fresh_only)
            return sent_total
