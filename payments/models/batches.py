"""Disbursement batches, the payments they hold, bank files out and bank results in."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from benefits.models import Application, Round
from core.banks import BANK_CHOICES, mask_account_number
from core.fields import EncryptedTextField

REFERENCE_PREFIX = "BAEUM-P"


class DisbursementBatch(ConcurrentTransitionMixin, models.Model):
    """One release of money for a round, prepared by one finance user and approved by another."""

    class Status(models.TextChoices):
        DRAFT = "draft"
        PENDING_APPROVAL = "pending_approval"
        APPROVED = "approved"
        SENT = "sent"
        RECONCILED = "reconciled"
        CLOSED = "closed"
        CANCELLED = "cancelled"

    class BuildStatus(models.TextChoices):
        BUILDING = "building"
        READY = "ready"

    class Kind(models.TextChoices):
        BENEFIT = "benefit"  # citizens' entitlements of a round
        SETTLEMENT = "settlement"  # voucher providers' redemptions in a period

    round = models.ForeignKey(Round, on_delete=models.PROTECT, related_name="disbursement_batches")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.BENEFIT)
    # A settlement pays the redemptions (net of refunds) made in this period.
    period_starts_on = models.DateField(null=True, blank=True)
    period_ends_on = models.DateField(null=True, blank=True)
    status = FSMField(default=Status.DRAFT, choices=Status.choices, protected=True)
    # Payments are gathered in chunk tasks (BuildChunk), each committed on its own.
    build_status = models.CharField(
        max_length=10, choices=BuildStatus.choices, default=BuildStatus.BUILDING
    )
    build_expected = models.PositiveIntegerField(default=0)
    prepared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    reconciled_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("prepare_batch", "Can prepare, submit, send and reconcile disbursement batches"),
            ("approve_batch", "Can approve another user's disbursement batch"),
        ]
        constraints = [
            # Two batches gathering the same round at once would race for the same people.
            models.UniqueConstraint(
                fields=["round"],
                condition=Q(build_status="building"),
                name="one_batch_building_per_round",
            ),
            # Maker-checker (ASVS 2.3.5), whatever the code does.
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True) | ~Q(approved_by=F("prepared_by")),
                name="batch_approver_is_not_preparer",
            ),
        ]

    def __str__(self) -> str:
        return f"Batch #{self.pk}"

    @property
    def is_ready(self) -> bool:
        return self.build_status == self.BuildStatus.READY

    @property
    def is_settlement(self) -> bool:
        return self.kind == self.Kind.SETTLEMENT

    @property
    def pays_by_bank(self) -> bool:
        # A voucher round's recipients are credited in Baeum; its providers by bank.
        return self.is_settlement or self.round.program.code != "VOUCHER"

    @transition(
        field=status,
        source=Status.DRAFT,
        target=Status.PENDING_APPROVAL,
        permission="payments.prepare_batch",
        conditions=[lambda batch: batch.is_ready],
    )
    def submit(self):
        pass

    @transition(
        field=status,
        source=Status.PENDING_APPROVAL,
        target=Status.APPROVED,
        permission="payments.approve_batch",
    )
    def approve(self):
        pass

    @transition(
        field=status,
        source=Status.APPROVED,
        target=Status.SENT,
        permission="payments.prepare_batch",
    )
    def disburse(self):
        pass

    @transition(field=status, source=Status.SENT, target=Status.RECONCILED)
    def reconcile(self):
        pass

    @transition(
        field=status,
        source=Status.RECONCILED,
        target=Status.CLOSED,
        permission="payments.prepare_batch",
    )
    def close(self):
        pass

    @transition(
        field=status,
        source=[Status.DRAFT, Status.PENDING_APPROVAL, Status.APPROVED],
        target=Status.CANCELLED,
        permission="payments.prepare_batch",
    )
    def cancel(self):
        pass


class BuildChunk(models.Model):
    """A range of a batch's applications, by id, whose payments one task gathers at once.

    Marked built in the transaction that wrote its payments: a chunk run again writes
    nothing, and the build is finished once every chunk of it is built.
    """

    batch = models.ForeignKey(
        DisbursementBatch, on_delete=models.CASCADE, related_name="build_chunks"
    )
    # Application ids first..last; the first chunk starts at 1, the last is open above.
    first = models.BigIntegerField()
    last = models.BigIntegerField(null=True, blank=True)
    payments = models.PositiveIntegerField(default=0)
    built_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "first"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "first"], name="one_build_chunk_per_range")
        ]

    def __str__(self) -> str:
        return f"Batch #{self.batch_id} chunk {self.first}-{self.last or ''}"


class Payment(ConcurrentTransitionMixin, models.Model):
    """One attempt to pay one entitlement (a selected application); a reissue is a new attempt."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        PAID = "paid"
        FAILED = "failed"
        REISSUED = "reissued"
        CANCELLED = "cancelled"

    # A live payment holds the entitlement: at most one per application (a DB constraint).
    LIVE_STATES = (Status.PENDING, Status.SENT, Status.PAID)

    batch = models.ForeignKey(DisbursementBatch, on_delete=models.PROTECT, related_name="payments")
    round = models.ForeignKey(Round, on_delete=models.PROTECT, related_name="payments")
    # The payee: a citizen's entitlement, or a provider being settled.
    application = models.ForeignKey(
        Application, null=True, blank=True, on_delete=models.PROTECT, related_name="payments"
    )
    provider = models.ForeignKey(
        "payments.Provider",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="payments",
    )
    amount = models.BigIntegerField(help_text="KRW")
    status = FSMField(default=Status.PENDING, choices=Status.choices, protected=True)
    # The payee as approved: later profile edits do not change a file already checked.
    bank_code = models.CharField(max_length=3, choices=BANK_CHOICES, blank=True)
    account_number = EncryptedTextField(purpose="account_number", blank=True)
    account_holder = models.CharField(max_length=100, blank=True)
    account_fingerprint = models.CharField(max_length=64, blank=True)
    reissue_of = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reissued_by"
    )
    hold_reason = models.TextField(blank=True)
    failure_reason = models.CharField(max_length=300, blank=True)
    result_import = models.ForeignKey(
        "BankResultImport", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["application"],
                condition=Q(status__in=["pending", "sent", "paid"]),
                name="one_live_payment_per_entitlement",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(application__isnull=True) ^ Q(provider__isnull=True),
                name="payment_pays_a_citizen_or_a_provider",
            ),
        ]
        indexes = [
            models.Index(fields=["batch", "status"]),
            models.Index(fields=["round", "status"]),
            # The pre-release audit looks up each payment's account among the batch's and
            # every live payment: an index lookup each, where a scan each grew with the
            # square of the batch.
            models.Index(fields=["account_fingerprint", "batch"], name="payment_account_in_batch"),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def reference(self) -> str:
        """The bank reference and pain.001 EndToEndId: fixed for this attempt, never reused."""
        return payment_reference(self.pk)

    @property
    def account_number_masked(self) -> str:
        return mask_account_number(self.account_number) if self.account_number else ""

    @transition(field=status, source=Status.PENDING, target=Status.SENT)
    def send(self):
        pass

    @transition(field=status, source=Status.PENDING, target=Status.PAID)
    def credit(self):
        """Settle a payment that needs no bank transfer (a voucher credited in Baeum)."""

    @transition(field=status, source=Status.SENT, target=Status.PAID)
    def mark_paid(self):
        pass

    @transition(field=status, source=Status.SENT, target=Status.FAILED)
    def mark_failed(self):
        pass

    @transition(field=status, source=Status.FAILED, target=Status.REISSUED)
    def reissue(self):
        pass

    @transition(field=status, source=Status.PENDING, target=Status.CANCELLED)
    def cancel(self):
        pass


# Named for the OpenAPI schema (SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]).
BATCH_STATUS_CHOICES = DisbursementBatch.Status.choices
BATCH_KIND_CHOICES = DisbursementBatch.Kind.choices
PAYMENT_STATUS_CHOICES = Payment.Status.choices


def payment_reference(pk: int) -> str:
    """The bank reference of the payment with this id (reference_to_pk reads it back)."""
    return f"{REFERENCE_PREFIX}{pk:010d}"


def reference_to_pk(reference: str) -> int | None:
    """Return the payment id a bank reference names, or None if it is not one of ours."""
    digits = reference[len(REFERENCE_PREFIX) :]
    if not reference.startswith(REFERENCE_PREFIX) or len(digits) != 10 or not digits.isdigit():
        return None
    return int(digits)


def bank_file_path(bank_file: "BankFile", filename: str) -> str:
    return f"bankfiles/{bank_file.batch_id}/{uuid.uuid4().hex}.bin"


class BankFile(models.Model):
    """A generated bank file, kept encrypted at rest because it holds account numbers."""

    # The purpose its encryption is bound to. `rotate_encryption_keys` re-encrypts the
    # files of every model that names its encrypted file fields and their purposes here.
    FILE_PURPOSE = "bank_file"
    SEALED_FILES = {"file": FILE_PURPOSE}

    class Format(models.TextChoices):
        CSV = "csv"
        PAIN001 = "pain001"

    batch = models.ForeignKey(DisbursementBatch, on_delete=models.PROTECT, related_name="files")
    format = models.CharField(max_length=10, choices=Format.choices)
    file = models.FileField(upload_to=bank_file_path, max_length=200)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    payments_count = models.PositiveIntegerField()
    total_amount = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    # First download: a batch is marked sent only once one of its files has left Baeum.
    downloaded_at = models.DateTimeField(null=True, blank=True)
    downloaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["batch", "format"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "format"], name="one_bank_file_per_format")
        ]

    def __str__(self) -> str:
        return f"{self.get_format_display()} for batch #{self.batch_id}"


class BankResultImport(models.Model):
    """A bank result file applied to a batch; the same file applied twice is one import.

    Its lines are applied in chunks that commit on their own (payments.imports); the
    counts so far are the progress, `summary` the counts once it succeeded.
    """

    # A pain.002 may quote the original transfer, its accounts with it: the stored upload is
    # encrypted (core.crypto.encrypt_file) and deleted once the import ends.
    FILE_PURPOSE = "bank_result"
    SEALED_FILES = {"file": FILE_PURPOSE}

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    batch = models.ForeignKey(
        DisbursementBatch, on_delete=models.PROTECT, related_name="result_imports"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    sha256 = models.CharField(max_length=64)
    format = models.CharField(max_length=10)
    file = models.FileField(upload_to="bank-results/", max_length=200, blank=True)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    lines_total = models.PositiveIntegerField(default=0)
    lines_done = models.PositiveIntegerField(default=0)
    # The chunks applied so far, by index: a chunk delivered twice is counted once.
    chunks_total = models.PositiveIntegerField(null=True, blank=True)
    chunks_done = models.JSONField(default=list, blank=True)
    summary = models.JSONField(default=dict)
    # [{"line": 12, "code": "unknown_reference", "message": "..."}], capped.
    errors = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A failed import applied nothing: the same file may be sent again.
            models.UniqueConstraint(
                fields=["batch", "sha256"],
                condition=~Q(status="failed"),
                name="one_import_per_result_file",
            ),
            # One import at a time per batch: a file checked against the payments' states
            # is applied to those states.
            models.UniqueConstraint(
                fields=["batch"],
                condition=Q(status__in=["queued", "running"]),
                name="one_running_result_import_per_batch",
            ),
        ]

    def __str__(self) -> str:
        return f"Result import #{self.pk} for batch #{self.batch_id}"


# Named for the OpenAPI schema: the same states as a registry import's, one enum for both.
RESULT_IMPORT_STATUS_CHOICES = BankResultImport.Status.choices
