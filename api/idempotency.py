"""The Idempotency-Key header: a retried POST replays the first response instead of acting twice.

The key row is committed (state ``running``) before the view runs, so a concurrent retry
sees it and gets 409; the view's writes and the stored response commit together, so a
replay never returns a response whose effects were rolled back.
"""

import hashlib
import json
import re
from contextlib import nullcontext
from functools import wraps

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.response import Response

from api.errors import field_error
from api.models import IdempotencyKey
from core.transactions import all_or_nothing, insert_unless_conflict

HEADER = "Idempotency-Key"
# 1 to 255 visible ASCII characters; the schema states the same pattern.
KEY_PATTERN = r"^[!-~]{1,255}$"
_KEY_RE = re.compile(KEY_PATTERN)


def _canonical(value):
    if hasattr(value, "read") and hasattr(value, "size"):
        digest = hashlib.sha256()
        for chunk in value.chunks():
            digest.update(chunk)
        value.seek(0)
        return {"file_sha256": digest.hexdigest(), "size": value.size}
    if hasattr(value, "lists"):  # QueryDict: keep every value of repeated keys
        return {k: [_canonical(v) for v in vs] for k, vs in value.lists()}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def request_fingerprint(request) -> str:
    """Hash the method, path and body, ignoring JSON key order and whitespace."""
    payload = {
        "method": request.method,
        "path": request.path,
        "data": _canonical(request.data),
        "files": _canonical(request.FILES) if request.FILES else None,
    }
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()


def _claim(*, user, key: str, fingerprint: str, now) -> IdempotencyKey | None:
    """Insert the key row; None when it exists already."""
    connection = transaction.get_connection()
    if connection.vendor == "postgresql" and connection.get_autocommit():
        return _claim_postgresql(user=user, key=key, fingerprint=fingerprint, now=now)
    # Outside a transaction the INSERT autocommits: one round trip in the common case.
    guard = transaction.atomic() if connection.in_atomic_block else nullcontext()
    try:
        with guard:
            return IdempotencyKey.objects.create(
                user=user, key=key, fingerprint=fingerprint, created_at=now
            )
    except IntegrityError:
        return None


def _claim_postgresql(*, user, key, fingerprint, now) -> IdempotencyKey | None:
    """The claim as one autocommitted statement whose commit does not wait for the disk.

    The row only tells concurrent retries that the request is running, and that shows
    as soon as it commits, flushed or not. The transaction that later stores the
    response commits synchronously, which flushes the log up to it, this claim
    included; a crash before that loses the claim with nothing done, so a retry runs
    the request, as it should. A duplicate key inserts nothing (no exception to catch).
    """
    meta = IdempotencyKey._meta
    record = IdempotencyKey(user=user, key=key, fingerprint=fingerprint, created_at=now)
    fields = [meta.get_field(n) for n in ("user", "key", "fingerprint", "state", "created_at")]
    return record if insert_unless_conflict(record, fields, async_commit=True) else None


def idempotency_begin(*, user, key: str, fingerprint: str) -> tuple[IdempotencyKey, bool]:
    """Claim the key; return (record, True) when a finished response should be replayed."""
    now = timezone.now()
    record = _claim(user=user, key=key, fingerprint=fingerprint, now=now)
    if record is not None:
        return record, False
    with transaction.atomic():
        record = IdempotencyKey.objects.select_for_update().filter(user=user, key=key).first()
        if record is None:  # the first attempt failed and released the key meanwhile
            record = IdempotencyKey.objects.create(
                user=user, key=key, fingerprint=fingerprint, created_at=now
            )
            return record, False
        if record.created_at <= now - settings.BAEUM_IDEMPOTENCY_TTL:
            record.fingerprint = fingerprint
            record.state = IdempotencyKey.State.RUNNING
            record.response_status = None
            record.response_body = None
            record.created_at = now
            record.save()
            return record, False
        if record.fingerprint != fingerprint:
            raise field_error(
                HEADER,
                "This Idempotency-Key was already used with a different request; "
                "use a new key for a new request.",
                "idempotency_key_reused",
                422,
            )
        if record.state == IdempotencyKey.State.RUNNING:
            if record.created_at > now - settings.BAEUM_IDEMPOTENCY_STALE_AFTER:
                raise field_error(
                    HEADER,
                    "A request with this Idempotency-Key is still being processed; "
                    "retry in a moment.",
                    "idempotency_request_in_progress",
                    409,
                )
            # The first attempt died without finishing: this retry takes it over.
            record.created_at = now
            record.save(update_fields=["created_at"])
            return record, False
        return record, True


def idempotent(handler):
    """Wrap a DRF POST handler so the Idempotency-Key header makes retries safe."""

    @wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None or not request.user.is_authenticated:
            return handler(view, request, *args, **kwargs)
        if not _KEY_RE.fullmatch(key):
            raise field_error(
                HEADER,
                "The Idempotency-Key must be 1 to 255 visible ASCII characters.",
                "invalid_idempotency_key",
            )
        fingerprint = request_fingerprint(request)
        record, replay = idempotency_begin(user=request.user, key=key, fingerprint=fingerprint)
        if replay:
            return Response(
                record.response_body,
                status=record.response_status,
                headers={"Idempotent-Replayed": "true"},
            )
        try:
            # Rolled back whole on any error: the services inside need no savepoints.
            with all_or_nothing():
                response = handler(view, request, *args, **kwargs)
                if 200 <= response.status_code < 300:
                    _store_response(record, response)
                    return response
        except BaseException:
            _release(record)
            raise
        # Refused requests are not remembered: the client may fix the body and retry.
        _release(record)
        return response

    return wrapper


def _store_response(record: IdempotencyKey, response) -> None:
    """Mark the key done with the response to replay, in the caller's transaction.

    The UPDATE that QuerySet.update() would run, written out: through the ORM, building it
    took as long again as running it, on every POST with a key.
    """
    connection = transaction.get_connection()
    meta = IdempotencyKey._meta
    quote = connection.ops.quote_name
    fields = [meta.get_field(n) for n in ("state", "response_status", "response_body")]
    values = [
        f.get_db_prep_save(v, connection)
        for f, v in zip(
            fields,
            (IdempotencyKey.State.DONE, response.status_code, response.data),
            strict=True,
        )
    ]
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608 - quoted names, bound values
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, record.pk])


def _release(record: IdempotencyKey) -> None:
    IdempotencyKey.objects.filter(pk=record.pk, state=IdempotencyKey.State.RUNNING).delete()


def idempotency_keys_purge(*, now=None) -> int:
    """Delete keys older than their time to live; return how many."""
    now = now or timezone.now()
    deleted, _ = IdempotencyKey.objects.filter(
        created_at__lte=now - settings.BAEUM_IDEMPOTENCY_TTL
    ).delete()
    return deleted
