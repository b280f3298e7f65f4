"""Readings of a batch's pre-release audit, kept so that a page shows one without
recomputing it and an approval can tell what changed since the checker read it."""

from django.conf import settings
from django.db import models

from payments.models.batches import DisbursementBatch


class BatchAuditReading(models.Model):
    """One reading of a batch's pre-release audit: the flagged payments and their flags.

    Only payment ids and flag names are kept, never personal data. Readings are added, never
    changed: the newest is the one a page shows, the older ones say what was seen when.
    """

    batch = models.ForeignKey(
        DisbursementBatch, on_delete=models.CASCADE, related_name="audit_readings"
    )
    read_at = models.DateTimeField()
    # Nobody when the build read it; else the finance user whose page or button did.
    read_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # {"<payment id>": ["shared_account", ...]}: the flagged payments only.
    flags = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["batch", "-read_at", "-id"]
        indexes = [models.Index(fields=["batch", "-read_at", "-id"], name="audit_reading_latest")]

    def __str__(self) -> str:
        return f"Batch #{self.batch_id} audit at {self.read_at:%Y-%m-%d %H:%M:%S}"
