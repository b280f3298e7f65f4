"""Programs, rounds, applicants, applications and their documents."""

import uuid
from pathlib import PurePosixPath

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django_fsm import RETURN_VALUE, ConcurrentTransitionMixin, FSMField, transition

from core.banks import BANK_CHOICES, mask_account_number
from core.districts import DISTRICT_CHOICES, district_name
from core.fields import EncryptedTextField
from core.rrn import mask_rrn


class Program(models.Model):
    class Code(models.TextChoices):
        SCHOLARSHIP = "SCHOLARSHIP", "Lifelong-learning scholarship"
        VOUCHER = "VOUCHER", "Lifelong-learning voucher"

    code = models.CharField(max_length=32, unique=True, choices=Code.choices)
    name = models.CharField(max_length=200)
    name_ko = models.CharField(max_length=200)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name

    @property
    def requires_training(self) -> bool:
        return self.code == self.Code.SCHOLARSHIP


# Named for the OpenAPI schema (SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]).
PROGRAM_CODE_CHOICES = Program.Code.choices


class RecoveryRule(models.TextChoices):
    """What a scholarship recipient whose training ended early gives back."""

    WHOLE = "whole"
    PRO_RATA = "pro_rata"


class Round(ConcurrentTransitionMixin, models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        OPEN = "open"
        CLOSED = "closed"
        SELECTED = "selected"
        DISBURSING = "disbursing"
        COMPLETED = "completed"
        CANCELLED = "cancelled"

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="rounds")
    name = models.CharField(max_length=200)
    year = models.PositiveSmallIntegerField()
    status = FSMField(default=Status.DRAFT, choices=Status.choices, protected=True)
    applications_open_at = models.DateTimeField()
    applications_close_at = models.DateTimeField()
    # The period the benefit covers; training must overlap it.
    period_starts_on = models.DateField()
    period_ends_on = models.DateField()
    capacity = models.PositiveIntegerField()
    budget = models.BigIntegerField(help_text="KRW")
    amount = models.BigIntegerField(help_text="KRW per recipient")
    ruleset_version = models.CharField(max_length=40)
    # {registry kind: "block" | "review" | "allow"}
    duplicate_policy = models.JSONField(default=dict, blank=True)
    auto_decisions = models.BooleanField(default=False)
    selection_seed = models.CharField(max_length=64, blank=True)
    # Voucher rounds: when unspent balances lapse (default 31 December of the round's year),
    # and the optional top-up for excellent users (a share of recipients, in percent).
    voucher_expires_on = models.DateField(null=True, blank=True)
    top_up_amount = models.BigIntegerField(default=0, help_text="KRW; 0 = no top-up")
    top_up_share = models.PositiveSmallIntegerField(
        default=0, help_text="percent of recipients who may get the top-up"
    )
    # 행정기본법 제36조: an objection to a disposition within 30 days of its notice; the
    # caseworkers answer within 30 days of the objection (extendable, as the article says).
    appeal_days = models.PositiveSmallIntegerField(
        default=30, help_text="days after a rejection during which the citizen may appeal"
    )
    appeal_decision_days = models.PositiveSmallIntegerField(
        default=30, help_text="days the caseworkers have to decide an appeal"
    )
    # A scholarship recipient whose training ended early gives back the whole amount, or
    # the share of the training days not attended; within recovery_days of the notice.
    recovery_rule = models.CharField(
        max_length=10, choices=RecoveryRule.choices, default=RecoveryRule.PRO_RATA
    )
    recovery_days = models.PositiveSmallIntegerField(
        default=30, help_text="days a recipient has to repay a recovery"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-applications_open_at", "id"]
        permissions = [("manage_round", "Can open, close and select rounds")]
        constraints = [
            models.CheckConstraint(
                condition=Q(capacity__gt=0) & Q(amount__gt=0),
                name="round_capacity_and_amount_positive",
            ),
            models.CheckConstraint(
                condition=Q(budget__gte=F("capacity") * F("amount")),
                name="round_capacity_times_amount_fits_budget",
            ),
            models.CheckConstraint(
                condition=Q(applications_close_at__gt=F("applications_open_at")),
                name="round_window_ordered",
            ),
            models.CheckConstraint(
                condition=Q(period_ends_on__gte=F("period_starts_on")),
                name="round_period_ordered",
            ),
            models.CheckConstraint(
                condition=Q(top_up_amount__gte=0) & Q(top_up_share__lte=100),
                name="round_top_up_sane",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @transition(
        field=status, source=Status.DRAFT, target=Status.OPEN, permission="benefits.manage_round"
    )
    def open(self):
        pass

    @transition(
        field=status, source=Status.OPEN, target=Status.CLOSED, permission="benefits.manage_round"
    )
    def close(self):
        pass

    # Selection may run again after later approvals, even once payments have started; it
    # never displaces anyone selected, and a round already disbursing stays disbursing.
    @transition(
        field=status,
        source=[Status.CLOSED, Status.SELECTED, Status.DISBURSING],
        target=RETURN_VALUE(Status.SELECTED, Status.DISBURSING),
        permission="benefits.manage_round",
    )
    def select(self):
        return (
            self.Status.DISBURSING
            if self.status == self.Status.DISBURSING
            else self.Status.SELECTED
        )

    @transition(field=status, source=Status.SELECTED, target=Status.DISBURSING)
    def start_disbursing(self):
        pass

    @transition(field=status, source=Status.DISBURSING, target=Status.COMPLETED)
    def complete(self):
        pass

    @transition(
        field=status,
        source=[Status.DRAFT, Status.OPEN, Status.CLOSED],
        target=Status.CANCELLED,
        permission="benefits.manage_round",
    )
    def cancel(self):
        pass


ROUND_STATUS_CHOICES = Round.Status.choices


class Applicant(models.Model):
    """The citizen's profile: one per citizen user."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="applicant"
    )
    legal_name = models.CharField(max_length=100, blank=True)
    rrn = EncryptedTextField(purpose="rrn", blank=True)
    # HMAC-SHA-256 of the RRN: matches registries and keeps one profile per person.
    rrn_hmac = models.CharField(max_length=64, unique=True, null=True, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    phone = models.CharField(max_length=20, blank=True)
    email = models.EmailField(blank=True)
    district = models.CharField(max_length=5, choices=DISTRICT_CHOICES, blank=True)
    address = models.CharField(max_length=300, blank=True)
    bank_code = models.CharField(max_length=3, choices=BANK_CHOICES, blank=True)
    account_number = EncryptedTextField(purpose="account_number", blank=True)
    # Keyed hash of bank code + number, to find one account paying several people.
    account_fingerprint = models.CharField(max_length=64, blank=True, db_index=True)
    account_holder = models.CharField(max_length=100, blank=True)
    account_changed_at = models.DateTimeField(null=True, blank=True)
    consent_data_checks = models.BooleanField(default=False)
    consent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        permissions = [("view_unmasked_rrn", "Can view an unmasked RRN (logged)")]

    def __str__(self) -> str:
        return f"Applicant #{self.pk}"

    @property
    def rrn_masked(self) -> str:
        return mask_rrn(self.rrn) if self.rrn else ""

    @property
    def account_number_masked(self) -> str:
        return mask_account_number(self.account_number) if self.account_number else ""

    @property
    def district_name(self) -> str:
        return district_name(self.district) if self.district else ""


class Application(ConcurrentTransitionMixin, models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        SUBMITTED = "submitted"
        SCREENING = "screening"
        UNDER_REVIEW = "under_review"
        NEEDS_DOCUMENTS = "needs_documents"
        APPROVED = "approved"
        REJECTED = "rejected"
        APPEALED = "appealed"
        SELECTED = "selected"
        WAITLISTED = "waitlisted"
        WITHDRAWN = "withdrawn"

    class IncomeCategory(models.TextChoices):
        BASIC_LIVELIHOOD = "basic_livelihood"
        NEAR_POOR = "near_poor"
        NONE = "none"

    EDITABLE_STATES = (Status.DRAFT, Status.NEEDS_DOCUMENTS)
    # Documents may be added while the citizen can act, and to support an appeal.
    DOCUMENT_STATES = (*EDITABLE_STATES, Status.APPEALED)
    # Decided in the citizen's favour: what selection ranks and payments pay.
    APPROVED_STATES = (Status.APPROVED, Status.SELECTED, Status.WAITLISTED)
    # Every state before money moves; selected stays withdrawable until a payment exists.
    WITHDRAWABLE_STATES = (
        Status.DRAFT,
        Status.SUBMITTED,
        Status.SCREENING,
        Status.UNDER_REVIEW,
        Status.NEEDS_DOCUMENTS,
        Status.APPROVED,
        Status.SELECTED,
        Status.WAITLISTED,
        Status.APPEALED,
    )

    applicant = models.ForeignKey(Applicant, on_delete=models.PROTECT, related_name="applications")
    round = models.ForeignKey(Round, on_delete=models.PROTECT, related_name="applications")
    status = FSMField(default=Status.DRAFT, choices=Status.choices, protected=True)
    income_category = models.CharField(max_length=20, choices=IncomeCategory.choices)
    course_id = models.CharField("HRD-Net course id", max_length=40, blank=True)
    course_name = models.CharField(max_length=200, blank=True)
    institution = models.CharField(max_length=200, blank=True)
    training_starts_on = models.DateField(null=True, blank=True)
    training_ends_on = models.DateField(null=True, blank=True)
    weekly_hours = models.PositiveSmallIntegerField(null=True, blank=True)
    # The reason the citizen reads for the last decision: approval, rejection or a request
    # for documents (which also names the kinds asked for, if the caseworker did).
    decision_reason = models.TextField(blank=True)
    documents_requested = models.JSONField(default=list, blank=True)
    documents_requested_at = models.DateTimeField(null=True, blank=True)
    # Selection order: the priority tier, then the published lottery key (see selection.py).
    priority_tier = models.PositiveSmallIntegerField(null=True, blank=True)
    lottery_key = models.CharField(max_length=64, blank=True)
    selected_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # Who made the last decision (None: the system, or nobody yet): an appeal is decided by
    # another caseworker than the one who rejected.
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # An appeal upheld: the rejection is final and cannot be appealed again.
    rejection_final = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("apply", "Can apply for benefits as a citizen"),
            ("review_application", "Can review and decide applications"),
        ]
        constraints = [
            # Fairness: one live application per person per round, whatever the code does.
            models.UniqueConstraint(
                fields=["applicant", "round"],
                condition=~Q(status="withdrawn"),
                name="one_live_application_per_applicant_round",
            ),
        ]
        indexes = [models.Index(fields=["round", "status"])]

    def __str__(self) -> str:
        return f"Application #{self.pk}"

    @property
    def is_editable(self) -> bool:
        return self.status in self.EDITABLE_STATES

    @property
    def has_training(self) -> bool:
        return bool(self.course_name)

    # Citizen transitions.
    @transition(
        field=status,
        source=[Status.DRAFT, Status.NEEDS_DOCUMENTS],
        target=Status.SUBMITTED,
        permission="benefits.apply",
    )
    def submit(self):
        pass

    @transition(
        field=status,
        source=list(WITHDRAWABLE_STATES),
        target=Status.WITHDRAWN,
        permission="benefits.apply",
    )
    def withdraw(self):
        pass

    # Screening, run by the system.
    @transition(field=status, source=Status.SUBMITTED, target=Status.SCREENING)
    def start_screening(self):
        pass

    @transition(field=status, source=Status.SCREENING, target=Status.UNDER_REVIEW)
    def finish_screening(self):
        pass

    # Caseworker decisions.
    @transition(
        field=status,
        source=Status.UNDER_REVIEW,
        target=Status.NEEDS_DOCUMENTS,
        permission="benefits.review_application",
    )
    def request_documents(self):
        pass

    @transition(
        field=status,
        source=Status.UNDER_REVIEW,
        target=Status.APPROVED,
        permission="benefits.review_application",
    )
    def approve(self):
        pass

    @transition(
        field=status,
        source=[Status.UNDER_REVIEW, Status.NEEDS_DOCUMENTS],
        target=Status.REJECTED,
        permission="benefits.review_application",
    )
    def reject(self):
        pass

    # Selection, run by the program manager.
    @transition(
        field=status,
        source=Status.APPROVED,
        target=Status.SELECTED,
        permission="benefits.manage_round",
    )
    def select(self):
        pass

    @transition(
        field=status,
        source=Status.APPROVED,
        target=Status.WAITLISTED,
        permission="benefits.manage_round",
    )
    def waitlist(self):
        pass

    @transition(field=status, source=Status.WAITLISTED, target=Status.SELECTED)
    def promote(self):
        pass

    # After the decision.
    @transition(
        field=status,
        source=Status.REJECTED,
        target=Status.APPEALED,
        permission="benefits.apply",
    )
    def appeal(self):
        # A final rejection (an upheld appeal) is refused by the service, with its own code.
        pass

    @transition(
        field=status,
        source=Status.APPEALED,
        target=Status.APPROVED,
        permission="benefits.review_application",
    )
    def overturn(self):
        pass

    @transition(
        field=status,
        source=Status.APPEALED,
        target=Status.REJECTED,
        permission="benefits.review_application",
    )
    def uphold(self):
        pass

    @transition(
        field=status,
        source=list(APPROVED_STATES),
        target=Status.REJECTED,
        permission="benefits.review_application",
    )
    def revoke(self):
        pass


def document_upload_path(document: "Document", filename: str) -> str:
    # The stored name is random: the citizen's file name never reaches the file system.
    suffix = PurePosixPath(filename).suffix.lower()
    return f"applications/{document.application_id}/{uuid.uuid4().hex}{suffix}"


class Document(models.Model):
    """An uploaded PDF, PNG or JPEG, kept encrypted at rest: bank books and certificates
    show account and resident registration numbers."""

    # Documents stored before they were encrypted are read as they are, and
    # `rotate_encryption_keys` encrypts them (see benefits.document_services.document_chunks).
    FILE_PURPOSE = "document"
    SEALED_FILES = {"file": FILE_PURPOSE}
    PLAINTEXT_FILES_ALLOWED = True

    class Kind(models.TextChoices):
        INCOME_PROOF = "income_proof"
        ENROLLMENT_CERTIFICATE = "enrollment_certificate"
        BANK_BOOK = "bank_book"
        OTHER = "other"

    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="documents")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    file = models.FileField(upload_to=document_upload_path, max_length=200)
    original_name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["uploaded_at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"


DOCUMENT_KIND_CHOICES = Document.Kind.choices


class Notification(models.Model):
    """The outbox: one message to a citizen, sent by a Celery task after the commit."""

    class Kind(models.TextChoices):
        SUBMITTED = "submitted"
        DOCUMENTS_REQUESTED = "documents_requested"
        APPROVED = "approved"
        REJECTED = "rejected"
        SELECTED = "selected"
        WAITLISTED = "waitlisted"
        PAID = "paid"
        PAYMENT_FAILED = "payment_failed"
        TOP_UP_GRANTED = "top_up_granted"
        APPEAL_RECEIVED = "appeal_received"
        APPEAL_OVERTURNED = "appeal_overturned"
        APPEAL_UPHELD = "appeal_upheld"
        APPROVAL_REVOKED = "approval_revoked"
        RECOVERY_OPENED = "recovery_opened"
        RECOVERY_REPAID = "recovery_repaid"
        RECOVERY_WAIVED = "recovery_waived"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="notifications"
    )
    application = models.ForeignKey(
        Application, null=True, blank=True, on_delete=models.PROTECT, related_name="notifications"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    # Names the event, so that enqueueing the same event twice makes one message (the
    # unique constraint below; no pattern index beside it, nothing searches it by prefix).
    dedupe_key = models.CharField(max_length=120)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["dedupe_key"], name="notification_dedupe_key"),
        ]
        # Each index is written again when a message is marked sent (a change of `status`,
        # which the partial index below names, is never a HOT update): a round of 1,000,000
        # applicants sends over 3,000,000 messages, so only what a reader uses is indexed.
        indexes = [
            # The flushes walk the pending messages by id, a chunk at a time: after a
            # selection there are as many as the round's applicants, among all the sent.
            models.Index(fields=["id"], condition=Q(status="pending"), name="notification_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to user #{self.user_id} ({self.status})"


class Appeal(models.Model):
    """A citizen's objection to a rejection (이의신청, 행정기본법 제36조) and its decision."""

    class Outcome(models.TextChoices):
        OVERTURNED = "overturned"
        UPHELD = "upheld"

    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="appeals")
    reason = models.TextField()
    filed_at = models.DateTimeField()
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    # The caseworker whose rejection is objected to (None: decided by the system).
    rejected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    deadline = models.DateField(help_text="the day by which the caseworkers decide")
    outcome = models.CharField(max_length=12, choices=Outcome.choices, blank=True)
    decision_reason = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["filed_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["application"], condition=Q(outcome=""), name="one_open_appeal"
            ),
            # Decided by another caseworker than the one who rejected, whatever the code does.
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True)
                | Q(rejected_by__isnull=True)
                | ~Q(decided_by=F("rejected_by")),
                name="appeal_decided_by_another_reviewer",
            ),
        ]

    def __str__(self) -> str:
        return f"Appeal #{self.pk} on application #{self.application_id}"


class ApplicationFlag(models.Model):
    """Something a caseworker must look at on a decided application, until cleared."""

    class Kind(models.TextChoices):
        # A newly activated registry snapshot makes an approved application fail a rule or
        # hit a blocking match: its payment is held out until a caseworker clears it.
        ELIGIBILITY_CHANGED = "eligibility_changed"

    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="flags")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    # The rule results that caused it: [{rule, outcome, code, evidence}], as a run stores them.
    causes = models.JSONField(default=list)
    summary = models.CharField(max_length=300, help_text="the causes' codes, for a hold reason")
    trigger_key = models.CharField(max_length=120, blank=True)
    raised_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    clear_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["raised_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["application", "kind"],
                condition=Q(cleared_at__isnull=True),
                name="one_open_flag_per_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} on application #{self.application_id}"

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None
