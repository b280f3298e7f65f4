"""Recovery (환수): money a scholarship recipient gives back because the training ended early,
its repayments, and its waiver (requested by one finance user, approved by another)."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from benefits.models import Application, RecoveryRule, Round
from payments.models.batches import Payment


class Recovery(ConcurrentTransitionMixin, models.Model):
    """What a paid recipient owes back after leaving the training early: one case per
    application (a training ends once), for the amount the round's rule gave."""

    class Status(models.TextChoices):
        OPEN = "open"
        REPAID = "repaid"
        WAIVED = "waived"

    application = models.OneToOneField(
        Application, on_delete=models.PROTECT, related_name="recovery"
    )
    round = models.ForeignKey(Round, on_delete=models.PROTECT, related_name="recoveries")
    # The payment whose money is claimed back: one case per payment, whatever the code does.
    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, related_name="recovery")
    status = FSMField(default=Status.OPEN, choices=Status.choices, protected=True)
    # How the amount was reached, as the citizen's notice explains it.
    rule = models.CharField(max_length=10, choices=RecoveryRule.choices)
    paid_amount = models.BigIntegerField(help_text="KRW paid to the recipient")
    training_days = models.PositiveIntegerField()
    days_not_attended = models.PositiveIntegerField()
    amount = models.BigIntegerField(help_text="KRW to recover")
    # Kept in step with the repayments under the row's lock (recovery_repayment_record).
    repaid = models.BigIntegerField(default=0, help_text="KRW repaid so far")
    ended_on = models.DateField(help_text="the last day the recipient attended")
    reason = models.TextField()
    evidence = models.ForeignKey(
        "benefits.Document", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    due_on = models.DateField(help_text="the day by which the recipient repays")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # A waiver of what is still owed: requested by one finance user, approved by another.
    waiver_reason = models.TextField(blank=True)
    waiver_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    waiver_requested_at = models.DateTimeField(null=True, blank=True)
    waiver_approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    waiver_approved_at = models.DateTimeField(null=True, blank=True)
    waived_amount = models.BigIntegerField(default=0, help_text="KRW waived")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "recoveries"
        permissions = [("manage_recovery", "Can record repayments and waive recoveries")]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0) & Q(amount__lte=F("paid_amount")),
                name="recovery_amount_within_paid",
            ),
            # Never more repaid than owed, whatever the code does.
            models.CheckConstraint(
                condition=Q(repaid__gte=0) & Q(repaid__lte=F("amount")),
                name="recovery_repaid_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(waived_amount__gte=0) & Q(waived_amount__lte=F("amount") - F("repaid")),
                name="recovery_waived_within_outstanding",
            ),
            # Maker-checker for a waiver, as for a batch.
            models.CheckConstraint(
                condition=Q(waiver_approved_by__isnull=True)
                | ~Q(waiver_approved_by=F("waiver_requested_by")),
                name="recovery_waiver_approver_is_not_requester",
            ),
        ]
        indexes = [models.Index(fields=["round", "status"])]

    def __str__(self) -> str:
        return f"Recovery #{self.pk}"

    @property
    def outstanding(self) -> int:
        """What is still owed: nothing once repaid or waived."""
        return self.amount - self.repaid if self.status == self.Status.OPEN else 0

    @property
    def waiver_pending(self) -> bool:
        return self.status == self.Status.OPEN and self.waiver_requested_by_id is not None

    @transition(
        field=status,
        source=Status.OPEN,
        target=Status.REPAID,
        conditions=[lambda r: r.repaid >= r.amount],
    )
    def settle(self):
        pass

    @transition(
        field=status,
        source=Status.OPEN,
        target=Status.WAIVED,
        permission="payments.manage_recovery",
        conditions=[lambda r: r.waiver_requested_by_id is not None],
    )
    def waive(self):
        pass


class Repayment(models.Model):
    """Money a recipient gave back on a recovery, as finance recorded it."""

    recovery = models.ForeignKey(Recovery, on_delete=models.PROTECT, related_name="repayments")
    amount = models.BigIntegerField(help_text="KRW")
    paid_on = models.DateField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["paid_on", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="repayment_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"Repayment #{self.pk} on recovery #{self.recovery_id}"


# Named for the OpenAPI schema (SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]).
RECOVERY_STATUS_CHOICES = Recovery.Status.choices
