"""The audit trail: one row per state transition or staff action, written in its transaction."""

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_events",
    )
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=64)
    # "app_label.model" and primary key of the object acted on.
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    from_state = models.CharField(max_length=32, blank=True)
    to_state = models.CharField(max_length=32, blank=True)
    reason = models.TextField(blank=True)
    # Never personal data: the names of changed fields, ids, counts.
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["object_type", "object_id", "at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.object_type}#{self.object_id}"


class TaskOutbox(models.Model):
    """Work that a committed state waits on, recorded in the transaction that asks for it.

    Dispatched to Celery after the commit and again by the sweeper (core.outbox) until a
    run finishes it; a run holds a lease that its progress renews, so a run that stopped
    making progress (its worker killed, say) is taken over.
    """

    class Status(models.TextChoices):
        PENDING = "pending"  # waiting for a worker, sent or not
        RUNNING = "running"  # a run holds the lease
        DONE = "done"
        FAILED = "failed"  # given up after too many failed runs; see last_error

    WAITING = (Status.PENDING, Status.RUNNING)

    # What the work is, once: a second request for the same work adds nothing.
    key = models.CharField(max_length=200, unique=True)
    task = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    # Tasks sent once the work is done, [[task, args], ...]: only ones with a sweep of their own.
    then = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    # When the sweeper sends it again if it is still waiting (or its lease ends, if running).
    due_at = models.DateTimeField()
    dispatches = models.PositiveIntegerField(default=0)
    runs = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    owner = models.CharField(max_length=32, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["due_at"],
                condition=models.Q(status__in=["pending", "running"]),
                name="task_outbox_waiting",
            )
        ]

    def __str__(self) -> str:
        return f"{self.task} #{self.pk} ({self.status})"
