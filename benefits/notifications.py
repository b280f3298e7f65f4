"""The citizen notification outbox: enqueued in the transaction that caused it, sent after."""

import logging
from dataclasses import dataclass

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import CharField, F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.module_loading import import_string

from benefits.models import Application, Notification
from core.transactions import insert_unless_conflict

logger = logging.getLogger("baeum.notifications")
MAX_ATTEMPTS = 5
# Messages sent in one transaction (one lock on each row, one UPDATE marking them sent).
SEND_CHUNK = 500
# Seconds between a committed message and the flush that sends it with the others of
# those seconds; the cache key says a flush is already on its way.
FLUSH_DELAY = 2
FLUSH_SCHEDULED_KEY = "baeum:notifications:flush-scheduled"

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
        "이 결정에 이의가 있으면 {appeal_until}까지 이의신청할 수 있습니다(행정기본법 제36조).\n"
        "Your application #{id} was not approved. Reason: {reason}\n"
        "If you disagree, you may appeal until {appeal_until}.",
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
    Notification.Kind.APPEAL_RECEIVED: (
        "이의신청 접수 / Appeal received",
        "신청서 #{id}에 대한 이의신청이 접수되었습니다. 다른 담당자가 검토합니다.\n"
        "Your appeal on application #{id} was received; another caseworker will decide it.",
    ),
    Notification.Kind.APPEAL_OVERTURNED: (
        "이의신청 인용 / Appeal granted",
        "신청서 #{id}에 대한 이의신청이 받아들여져 승인되었습니다. 사유: {reason}\n"
        "Your appeal on application #{id} was granted; it is approved. Reason: {reason}",
    ),
    Notification.Kind.APPEAL_UPHELD: (
        "이의신청 기각 / Appeal not granted",
        "신청서 #{id}에 대한 이의신청이 받아들여지지 않았습니다. 사유: {reason}\n"
        "이 결정은 최종입니다. 행정심판 또는 행정소송을 제기할 수 있습니다.\n"
        "Your appeal on application #{id} was not granted. Reason: {reason}\n"
        "This decision is final; you may still seek an administrative appeal or a lawsuit.",
    ),
    Notification.Kind.APPROVAL_REVOKED: (
        "승인 취소 안내 / Approval revoked",
        "신청서 #{id}의 승인이 취소되었습니다. 사유: {reason}\n"
        "이 결정에 이의가 있으면 {appeal_until}까지 이의신청할 수 있습니다(행정기본법 제36조).\n"
        "The approval of application #{id} was revoked. Reason: {reason}\n"
        "If you disagree, you may appeal until {appeal_until}.",
    ),
    Notification.Kind.RECOVERY_OPENED: (
        "지원금 반환 안내 / Scholarship to be repaid",
        "신청서 #{id}의 교육이 {ended_on}에 중도 종료되어, 지급된 장학금 중 {amount}원을 "
        "{due_on}까지 반환해야 합니다. 사유: {reason}\n"
        "The training of application #{id} ended early on {ended_on}: {amount} KRW of the "
        "scholarship paid is to be repaid by {due_on}. Reason: {reason}",
    ),
    Notification.Kind.RECOVERY_REPAID: (
        "반환 완료 / Repayment complete",
        "신청서 #{id}의 반환금 {amount}원이 모두 납부되었습니다.\n"
        "The {amount} KRW to be repaid for application #{id} has been repaid in full.",
    ),
    Notification.Kind.RECOVERY_WAIVED: (
        "반환 면제 안내 / Repayment waived",
        "신청서 #{id}의 남은 반환금 {amount}원이 면제되었습니다. 사유: {reason}\n"
        "The {amount} KRW still to be repaid for application #{id} was waived. Reason: {reason}",
    ),
    Notification.Kind.TOP_UP_GRANTED: (
        "바우처 추가 지원 / Voucher top-up granted",
        "신청서 #{id}의 바우처에 우수 이용자 추가 지원금이 충전되었습니다.\n"
        "An excellent-user top-up was added to the voucher of application #{id}.",
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
    *,
    application: Application,
    kind: str,
    event_key: str,
    reason: str = "",
    send_after_commit: bool = True,
    appeal_until: str = "-",
    values: dict | None = None,
) -> Notification | None:
    """Queue one message about an application; the same event queued twice makes one.

    `values` fills the message's other placeholders (a recovery's {amount}, {due_on}…).

    The message is sent after the commit (notifications_send_soon), unless the caller has
    it sent itself (send_after_commit=False), e.g. chained to other work after the commit.
    """
    subject, body = MESSAGES[kind]
    notification = Notification(
        user_id=application.applicant.user_id,
        application=application,
        kind=kind,
        dedupe_key=f"{kind}:{application.pk}:{event_key}",
        subject=subject,
        body=body.format(
            id=application.pk, reason=reason or "-", appeal_until=appeal_until, **(values or {})
        ),
    )
    if not _insert_unless_queued(notification):
        return None
    if send_after_commit:
        # robust: a broker that is down must not fail a request that committed; the
        # message waits in this outbox for notifications_flush_task.
        transaction.on_commit(lambda: notifications_send_soon(notification.pk), robust=True)
    return notification


def _insert_unless_queued(notification: Notification) -> bool:
    """Insert the notification; False when the same message was queued already."""
    fields = [f for f in Notification._meta.concrete_fields if not f.primary_key]
    return insert_unless_conflict(notification, fields)


def notification_enqueue_many(
    *,
    rows,
    kind: str,
    event_key: str,
    application_field: str = "pk",
    user_field: str = "applicant__user_id",
    reason_field: str | None = None,
    appeal_until: str = "-",
) -> int:
    """Queue one message per row of a queryset in one INSERT … SELECT; return the count.

    For set-based work (selection, disbursement, bank results: up to hundreds of thousands
    of messages) where one row at a time would dominate. Each row names the application,
    its citizen user and, optionally, the text for the message's {reason}, by field path;
    {appeal_until} is one date for all of them (decisions made the same day).
    """
    subject, body = MESSAGES[kind]
    reason = F(reason_field) if reason_field else Value("-")
    rows = (
        rows.order_by()
        .annotate(
            n_app=F(application_field),
            n_user=F(user_field),
            n_reason=Coalesce(reason, Value("-"), output_field=CharField()),
        )
        .values("n_app", "n_user", "n_reason")
    )
    try:
        select_sql, select_params = rows.query.sql_with_params()
    except EmptyResultSet:  # e.g. pk__in=[]: nobody to tell
        return 0
    table = connection.ops.quote_name(Notification._meta.db_table)
    app_text = "CAST(s.n_app AS TEXT)"
    sql = f"""
        INSERT INTO {table} (user_id, application_id, kind, dedupe_key, subject, body,
                             status, attempts, last_error, created_at)
        SELECT s.n_user, s.n_app, %s, %s || {app_text} || %s, %s,
               REPLACE(REPLACE(REPLACE(%s, '{{id}}', {app_text}), '{{reason}}', s.n_reason),
                       '{{appeal_until}}', %s),
               %s, 0, '', %s
        FROM ({select_sql}) s
        WHERE true
        ON CONFLICT DO NOTHING
    """  # noqa: S608 - table name quoted, values bound
    params = [kind, f"{kind}:", f":{event_key}", subject, body, appeal_until]
    params += [Notification.Status.PENDING, timezone.now(), *select_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        created = cursor.rowcount
    if created:
        transaction.on_commit(_flush_soon, robust=True)
    return created


@dataclass(frozen=True)
class SendResult:
    """What one chunk of sending did: messages looked at, sent, and the last id looked at."""

    seen: int
    sent: int
    last_id: int


def notifications_send_chunk(
    *, ids: list[int] | None = None, after: int = 0, fresh_only: bool = False
) -> SendResult:
    """Send a chunk of pending messages in one transaction; a message is sent once.

    The chunk is the pending messages among `ids`, or else the next SEND_CHUNK pending
    ones after id `after` (oldest first; `fresh_only`: those never tried). Each row stays
    locked from its sending until the commit that marks it sent; a concurrent chunk skips
    locked rows instead of waiting, so several workers send side by side, never the same
    message twice. A failed message counts an attempt and waits for the next sweep.
    """
    pending = Notification.objects.filter(status=Notification.Status.PENDING)
    pending = pending.filter(pk__in=ids) if ids is not None else pending.filter(pk__gt=after)
    if fresh_only:
        pending = pending.filter(attempts=0)
    backend = get_backend()
    with transaction.atomic():
        chunk = list(pending.select_for_update(skip_locked=True).order_by("pk")[:SEND_CHUNK])
        sent: list[int] = []
        failed: list[Notification] = []
        for notification in chunk:
            try:
                backend.send(notification)
            except Exception as exc:  # noqa: BLE001 - any backend failure is retried later
                notification.attempts += 1
                notification.last_error = f"{type(exc).__name__}"[:300]
                if notification.attempts >= MAX_ATTEMPTS:
                    notification.status = Notification.Status.FAILED
                failed.append(notification)
                logger.warning(
                    "notification #%s failed (attempt %s)", notification.pk, notification.attempts
                )
            else:
                sent.append(notification.pk)
        if sent:
            Notification.objects.filter(pk__in=sent).update(
                status=Notification.Status.SENT,
                sent_at=timezone.now(),
                attempts=F("attempts") + 1,
            )
        if failed:
            Notification.objects.bulk_update(failed, ["attempts", "last_error", "status"])
    return SendResult(seen=len(chunk), sent=len(sent), last_id=chunk[-1].pk if chunk else after)


def notification_send(*, notification_id: int) -> bool:
    """Send one pending message; True once it is sent. A sent message is never sent again."""
    notifications_send_chunk(ids=[notification_id])
    return Notification.objects.filter(pk=notification_id, status=Notification.Status.SENT).exists()


def notifications_send_soon(notification_id: int) -> None:
    """Have a committed message sent: at once when tasks run eagerly, else by the next
    flush (see _flush_soon)."""
    if current_app.conf.task_always_eager:
        notifications_send_chunk(ids=[notification_id])
    else:
        _flush_soon()


def _flush_soon() -> None:
    """Send the messages committed so far by one flush, FLUSH_DELAY seconds from now.

    Commits within the delay share that flush (a shared cache key says it is on its way),
    so a round's messages go out in chunks, not one task and one transaction each.
    """
    from benefits.tasks import notifications_flush_task

    if current_app.conf.task_always_eager:
        notifications_flush_task.delay(fresh_only=True)
        return
    if not cache.add(FLUSH_SCHEDULED_KEY, 1, timeout=FLUSH_DELAY):
        return  # that flush starts after the key expires and finds this commit's messages
    try:
        notifications_flush_task.apply_async(kwargs={"fresh_only": True}, countdown=FLUSH_DELAY)
    except Exception:
        # The broker is down: the next commit tries again, and the periodic sweep sends it.
        cache.delete(FLUSH_SCHEDULED_KEY)
        raise
