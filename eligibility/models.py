"""Registry snapshots and their rows, registry import jobs, and screening runs.

A registry row never holds a raw RRN: only its HMAC-SHA-256 blind index (core.crypto).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from eligibility.rules import rendered_match, rendered_rule


class RegistryKind(models.TextChoices):
    SOCIAL_SECURITY = "social_security", "Social-security status"
    NAEILBAEUM = "naeilbaeum", "Naeil-baeum card holders"
    YOUTH_ALLOWANCE = "youth_allowance", "Seoul youth allowance recipients"
    NATIONAL_VOUCHER = "national_voucher", "National lifelong-learning voucher recipients"
    TRAINING_COURSES = "training_courses", "Vocational-training course catalogue"


class RegistrySnapshot(models.Model):
    """One imported file of one registry; at most one snapshot per kind is active."""

    class Status(models.TextChoices):
        LOADING = "loading"
        ACTIVE = "active"
        SUPERSEDED = "superseded"
        DISCARDED = "discarded"

    kind = models.CharField(max_length=32, choices=RegistryKind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.LOADING)
    row_count = models.PositiveIntegerField(default=0)
    source_name = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"],
                condition=Q(status="active"),
                name="one_active_snapshot_per_registry",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} snapshot #{self.pk} ({self.status})"


class RegistryImportJob(models.Model):
    # The upload holds raw RRNs: stored encrypted (core.crypto.encrypt_file) until the job ends.
    FILE_PURPOSE = "registry_upload"
    SEALED_FILES = {"file": FILE_PURPOSE}

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    kind = models.CharField(max_length=32, choices=RegistryKind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    file = models.FileField(upload_to="registry-imports/", max_length=200)
    original_name = models.CharField(max_length=255, blank=True)
    rows_read = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    # [{"line": 12, "field": "rrn", "code": "invalid_birth_date", "message": "..."}], capped.
    errors = models.JSONField(default=list, blank=True)
    snapshot = models.ForeignKey(
        RegistrySnapshot, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} import #{self.pk} ({self.status})"


class RegistryImportChunk(models.Model):
    """A range of lines of an import's file, checked and loaded by one task. It is marked
    done in the transaction that writes its rows, so a chunk run twice writes them once;
    its counts and first errors add up to the job's."""

    snapshot = models.ForeignKey(RegistrySnapshot, on_delete=models.CASCADE, related_name="+")
    index = models.PositiveIntegerField()
    # The header's person column (rrn or rrn_hmac; '' for courses), for reading the lines.
    person = models.CharField(max_length=8, blank=True)
    first_line = models.PositiveIntegerField()
    start = models.BigIntegerField()  # plaintext bytes start..end of the upload
    end = models.BigIntegerField()
    done = models.BooleanField(default=False)
    rows_read = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)  # its first errors, as the job's
    # False when its rows are known to repeat no duplicate key among themselves.
    may_repeat = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "index"], name="one_chunk_per_index")
        ]

    def __str__(self) -> str:
        return f"chunk {self.index} of snapshot #{self.snapshot_id}"


class RegistryRow(models.Model):
    snapshot = models.ForeignKey(RegistrySnapshot, on_delete=models.CASCADE, related_name="+")
    # Line of the source file, to name it when a check fails after loading (duplicates).
    line = models.PositiveIntegerField()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self._meta.verbose_name} line {self.line} of snapshot #{self.snapshot_id}"


class PersonRow(RegistryRow):
    rrn_hmac = models.CharField(max_length=64)

    class Meta:
        abstract = True


class SocialSecurityRecord(PersonRow):
    class Status(models.TextChoices):
        BASIC_LIVELIHOOD = "basic_livelihood"
        NEAR_POOR = "near_poor"

    status = models.CharField(max_length=20, choices=Status.choices)
    district = models.CharField(max_length=5)
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["snapshot", "rrn_hmac"], name="ss_snapshot_person")]


class NaeilbaeumRecord(PersonRow):
    card_valid_from = models.DateField()
    card_valid_to = models.DateField()
    course_id = models.CharField(max_length=40, blank=True)
    training_from = models.DateField(null=True, blank=True)
    training_to = models.DateField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["snapshot", "rrn_hmac"], name="nb_snapshot_person")]


class YouthAllowanceRecord(PersonRow):
    # Months paid, stored as the first day of the first month and the last day of the last.
    paid_from = models.DateField()
    paid_to = models.DateField()

    class Meta:
        indexes = [models.Index(fields=["snapshot", "rrn_hmac"], name="ya_snapshot_person")]


class NationalVoucherRecord(PersonRow):
    year = models.PositiveSmallIntegerField()

    class Meta:
        indexes = [models.Index(fields=["snapshot", "rrn_hmac"], name="nv_snapshot_person")]


class TrainingCourse(RegistryRow):
    course_id = models.CharField(max_length=40)
    name = models.CharField(max_length=200)
    institution = models.CharField(max_length=200)
    starts_on = models.DateField()
    ends_on = models.DateField()
    vocational = models.BooleanField()

    class Meta:
        indexes = [models.Index(fields=["snapshot", "course_id"], name="tc_snapshot_course")]


RECORD_MODELS = {
    RegistryKind.SOCIAL_SECURITY: SocialSecurityRecord,
    RegistryKind.NAEILBAEUM: NaeilbaeumRecord,
    RegistryKind.YOUTH_ALLOWANCE: YouthAllowanceRecord,
    RegistryKind.NATIONAL_VOUCHER: NationalVoucherRecord,
    RegistryKind.TRAINING_COURSES: TrainingCourse,
}


class ScreeningRun(models.Model):
    """The rules and duplicate checks applied to one application at one moment."""

    class Outcome(models.TextChoices):
        ELIGIBLE = "eligible"
        INELIGIBLE = "ineligible"
        NEEDS_REVIEW = "needs_review"

    # No index of its own: one_screening_per_trigger (application, trigger_key) leads with it.
    application = models.ForeignKey(
        "benefits.Application",
        on_delete=models.CASCADE,
        related_name="screening_runs",
        db_index=False,
    )
    # What caused the run, unique per application so a retried task stores one result:
    # "submit:<submitted_at ISO>" or "rescreen:<job id>".
    trigger_key = models.CharField(max_length=80)
    is_current = models.BooleanField(default=True)
    ruleset_version = models.CharField(max_length=40)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    # [{"rule", "outcome", "code", "evidence"}]: the messages follow from the code and are
    # rendered on read (`rule_results`); runs stored before that also hold "message" and
    # "message_ko".
    rules = models.JSONField(default=list)
    # [{"registry", "action", "evidence"}], likewise without the "detail"; a match that gave
    # a rule result leaves its evidence to that result (`duplicate_matches`).
    duplicates = models.JSONField(default=list)
    # {registry kind: snapshot id} of the snapshots read.
    snapshot_ids = models.JSONField(default=dict)
    duplicate_found = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["application", "trigger_key"], name="one_screening_per_trigger"
            ),
            models.UniqueConstraint(
                fields=["application"],
                condition=Q(is_current=True),
                name="one_current_screening_per_application",
            ),
        ]
        # No index on (is_current, outcome): the queue reaches the current run through
        # one_current_screening_per_application, and such an index, with the statistics of
        # a table a round's re-screening is still filling, drew the planner into scanning
        # every current run once per chunk to retire a few thousand.

    def __str__(self) -> str:
        return f"Screening #{self.pk} of application #{self.application_id}: {self.outcome}"

    def rule_results(self) -> list[dict]:
        """The rule results with their messages in English and Korean."""
        return [rendered_rule(r) for r in self.rules]

    def duplicate_matches(self) -> list[dict]:
        """The duplicate matches with their detail and evidence."""
        rule_evidence = {r.get("code"): r.get("evidence") for r in self.rules}
        return [rendered_match(d, rule_evidence) for d in self.duplicates]


class MatchResolution(models.Model):
    """A caseworker's judgement of one duplicate match: one registry record, one application.

    Later screenings do not raise a match judged not the same person, or not overlapping in
    fact; a confirmed duplicate stands (it fails the application); a new record, anything
    whose content differs, is a new match.
    """

    class Resolution(models.TextChoices):
        NOT_THE_SAME_PERSON = "not_the_same_person"
        NO_OVERLAP_IN_FACT = "no_overlap_in_fact"
        CONFIRMED_DUPLICATE = "confirmed_duplicate"

    application = models.ForeignKey(
        "benefits.Application", on_delete=models.PROTECT, related_name="match_resolutions"
    )
    registry = models.CharField(max_length=32)
    # rules.match_key(registry, record): the record by its content, stable across snapshots.
    record_key = models.CharField(max_length=64)
    record = models.JSONField(default=dict)
    resolution = models.CharField(max_length=24, choices=Resolution.choices)
    reason = models.TextField()
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField()

    class Meta:
        ordering = ["resolved_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["application", "registry", "record_key"],
                name="one_resolution_per_match",
            )
        ]

    def __str__(self) -> str:
        return f"{self.resolution} for {self.registry} on application #{self.application_id}"
