"""The citizen notification outbox: enqueued in the transaction that caused it, sent after."""

import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from benefits.models import Application, Notification

logger = logging.getLogger("baeum.notifications")
MAX_ATTEMPTS = 5

MESSAGES = {
    Notification.Kind.SUBMITTED: (
        "신청이 접수되었습니다 / Application received",
        "신청서 #{id}이(가) 접수되었습니다. 심사 결과를 알려 드리겠습니다.\n"
        "Your application #{id} was received; we will let you know the outcome.",
    ),
    Notification.Kind.DOCUMENTS_REQUESTED: (
        "서류 보완 요청 / Documents requested",
        "신청서 #{id}에 서류 보완이 필요합니다: {reason}\n"
        "Application #{id} needs documents: {reason}",
    ),
    Notification.Kind.APPROVED: (
        "신청 승인 / Application approved",
        "신청서 #{id}이(가) 승인되었습니다.\nYour application #{id} was approved.",
    ),
    Notification.Kind.REJECTED: (
        "신청 결과 안내 / Application not approved",
        "신청서 #{id}이(가) 승인되지 않았습니다. 사유: {reason}\n"
        "Your application #{id} was not approved. Reason: {reason}",
    ),
    Notification.Kind.SELECTED: (
        "선정 안내 / You were selected",
        "신청서 #{id}이(가) 선정되었습니다.\nYour application #{id} was selected.",
    ),
    Notification.Kind.WAITLISTED: (
        "예비 선정 안내 / You are on the waitlist",
        "신청서 #{id}이(가) 예비 명단에 올랐습니다.\nYour application #{id} is on the waitlist.",
    ),
    Notification.Kind.PAID: (
        "지급 완료 / Payment made",
        "신청서 #{id}의 지원금이 지급되었습니다.\nThe payment for application #{id} was made.",
    ),
    Notification.Kind.PAYMENT_FAILED: (
        "지급 실패 / Payment failed",
        "신청서 #{id}의 지원금을 이체하지 못했습니다 ({reason}). 계좌 정보를 확인해 주세요.\n"
        "The payment for application #{id} failed ({reason}). Please check your bank account.",
    ),
}


class ConsoleBackend:
    """Write messages to the log; the default until a real channel is configured."""

    def send(self, notification: Notification) -> None:
        logger.info(
            "notification #%s to user #%s: %s",
            notification.pk,
            notification.user_id,
            notification.subject,
        )


def get_backend():
    return import_string(settings.BAEUM_NOTIFICATION_BACKEND)()


def notification_enqueue(
    *, application: Application, kind: str, event_key: str, reason: str = ""
) -> Notification | None:
    """Queue one message about an application; the same event queued twice makes one."""
    subject, body = MESSAGES[kind]
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                user_id=application.applicant.user_id,
                application=application,
                kind=kind,
                dedupe_key=f"{kind}:{application.pk}:{event_key}",
                subject=subject,
                body=body.format(id=application.pk, reason=reason or "-"),
            )
    except IntegrityError:
        return None
    from benefits.tasks import notification_send_task

    transaction.on_commit(lambda: notification_send_task.delay(notification.pk))
    return notification


def notification_enqueue_many(
    *, applications, kind: str, event_key: str, reasons: dict[int, str] | None = None
) -> int:
    """Queue one message per application of a queryset, in a few queries; return the count.

    For set-based work (selection, disbursement, bank results) where the per-row version
    would cost a savepoint per message. The flush task sends them after the commit.
    """
    subject, body = MESSAGES[kind]
    reasons = reasons or {}
    rows = applications.order_by().values_list("pk", "applicant__user_id")
    created = 0
    batch: list[Notification] = []
    for application_id, user_id in rows.iterator(chunk_size=2000):
        batch.append(
            Notification(
                user_id=user_id,
                application_id=application_id,
                kind=kind,
                dedupe_key=f"{kind}:{application_id}:{event_key}",
                subject=subject,
                body=body.format(id=application_id, reason=reasons.get(application_id) or "-"),
            )
        )
        if len(batch) >= 2000:
            created += len(Notification.objects.bulk_create(batch, ignore_conflicts=True))
            batch = []
    if batch:
        created += len(Notification.objects.bulk_create(batch, ignore_conflicts=True))
    if created:
        from benefits.tasks import notifications_flush_task

        transaction.on_commit(notifications_flush_task.delay)
    return created


def notification_send(*, notification_id: int) -> bool:
    """Send one pending message; True once it is sent. A sent message is never sent again."""
    with transaction.atomic():
        notification = Notification.objects.select_for_update().filter(pk=notification_id).first()
        if notification is None or notification.status != Notification.Status.PENDING:
            return notification is not None and notification.status == Notification.Status.SENT
        notification.attempts += 1
        try:
            # Sent while the row is locked: a concurrent run of the task waits, then skips.
            get_backend().send(notification)
        except Exception as exc:  # noqa: BLE001 - any backend failure is retried later
            notification.last_error = f"{type(exc).__name__}"[:300]
            if notification.attempts >= MAX_ATTEMPTS:
                notification.status = Notification.Status.FAILED
            notification.save(update_fields=["attempts", "last_error", "status"])
            logger.warning(
                "notification #%s failed (attempt %s)", notification.pk, notification.attempts
            )
            return False
        notification.status = Notification.Status.SENT
        notification.sent_at = timezone.now()
        notification.save(update_fields=["attempts", "status", "sent_at"])
        return True


def notifications_pending_ids(*, limit: int = 500) -> list[int]:
    """Pending messages, oldest first, for the periodic sweep after an outage."""
    return list(
        Notification.objects.filter(status=Notification.Status.PENDING)
        .order_by("created_at", "id")
        .values_list("id", flat=True)[:limit]
    )
