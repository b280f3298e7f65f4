"""Input and output shapes of the REST contract (SPEC "Payloads")."""

import re
from collections.abc import Mapping

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import get_error_detail

from benefits.models import (
    Appeal,
    Applicant,
    Application,
    Document,
    Notification,
    Program,
    Round,
)
from benefits.selectors import application_missing_documents
from benefits.transitions import application_appeal_until
from core.banks import BANK_CHOICES, mask_account_number, normalize_account_number
from core.districts import DISTRICT_CHOICES
from core.prepared import PreparedQuery
from core.rrn import mask_rrn, validate_rrn

User = get_user_model()
PHONE_RE = re.compile(r"^0\d{1,2}-?\d{3,4}-?\d{4}$")


class StrictSerializer(serializers.Serializer):
    """Reject fields the serializer does not accept instead of silently ignoring them."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            writable = {name for name, f in self.fields.items() if not f.read_only}
            errors = {}
            for name in data:
                if name in writable:
                    continue
                if name in self.fields:
                    errors[name] = [
                        serializers.ErrorDetail("This field is read-only.", code="read_only")
                    ]
                else:
                    errors[name] = [serializers.ErrorDetail("Unknown field.", code="unknown_field")]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class StrictModelSerializer(StrictSerializer, serializers.ModelSerializer):
    pass


def _drf_error(exc: DjangoValidationError) -> serializers.ValidationError:
    return serializers.ValidationError(get_error_detail(exc))


class RRNField(serializers.CharField):
    """Write the full RRN; read back only its mask."""

    default_error_messages = {
        "invalid": "Enter the resident registration number as text: YYMMDD-NNNNNNN."
    }

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        value = super().to_internal_value(data)
        try:
            return validate_rrn(value)
        except DjangoValidationError as exc:
            raise _drf_error(exc) from None

    def to_representation(self, value):
        return mask_rrn(value) if value else ""


class AccountNumberField(serializers.CharField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return normalize_account_number(value)
        except DjangoValidationError as exc:
            raise _drf_error(exc) from None

    def to_representation(self, value):
        return mask_account_number(value) if value else ""


# Auth.


class TokenRequestSerializer(StrictSerializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()


class RegisterSerializer(StrictSerializer):
    username = serializers.RegexField(
        r"^[\w.@+-]{3,150}$",
        max_length=150,
        error_messages={
            "invalid": "Use 3 to 150 letters, digits and @/./+/-/_ characters.",
        },
    )
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    email = serializers.EmailField(max_length=254)

    def validate(self, attrs):
        candidate = User(username=attrs["username"], email=attrs["email"])
        try:
            validate_password(attrs["password"], user=candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(
                {"password": [serializers.ErrorDetail(m, code="password_too_weak") for m in exc]}
            ) from None
        return attrs


class UserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()


# Programs and rounds.


class RoundSerializer(serializers.ModelSerializer):
    program = serializers.SlugRelatedField(slug_field="code", read_only=True)
    accepting_applications = serializers.SerializerMethodField()

    class Meta:
        model = Round
        fields = [
            "id",
            "program",
            "name",
            "year",
            "status",
            "applications_open_at",
            "applications_close_at",
            "period_starts_on",
            "period_ends_on",
            "capacity",
            "budget",
            "amount",
            "ruleset_version",
            "duplicate_policy",
            "auto_decisions",
            "selection_seed",
            "voucher_expires_on",
            "top_up_amount",
            "top_up_share",
            "recovery_rule",
            "recovery_days",
            "accepting_applications",
        ]
        read_only_fields = fields

    def get_accepting_applications(self, obj) -> bool:
        from benefits.rounds import round_accepts_applications

        return round_accepts_applications(obj)


class RoundMoneySerializer(StrictSerializer):
    """A change of a round's money settings; amount and capacity only while it is a draft."""

    budget = serializers.IntegerField(min_value=1, max_value=10**13, required=False)
    amount = serializers.IntegerField(min_value=1, max_value=10**10, required=False)
    capacity = serializers.IntegerField(min_value=1, max_value=10**7, required=False)
    top_up_amount = serializers.IntegerField(min_value=0, max_value=10**10, required=False)
    top_up_share = serializers.IntegerField(min_value=0, max_value=100, required=False)
    reason = serializers.CharField(max_length=2000)


class SelectionSummarySerializer(serializers.Serializer):
    selected = serializers.IntegerField()
    waitlisted = serializers.IntegerField()
    seats_left = serializers.IntegerField()
    seed = serializers.CharField()
    order = serializers.CharField()


class RoundSelectionSerializer(RoundSerializer):
    selection = SelectionSummarySerializer()

    class Meta(RoundSerializer.Meta):
        fields = [*RoundSerializer.Meta.fields, "selection"]
        read_only_fields = fields


class LedgerSerializer(serializers.Serializer):
    budget = serializers.IntegerField()
    committed = serializers.IntegerField()
    awaiting_batch = serializers.IntegerField()
    in_batches = serializers.IntegerField()
    paid = serializers.IntegerField()
    failed = serializers.IntegerField()
    top_ups = serializers.IntegerField(help_text="voucher top-ups granted (committed)")
    returned = serializers.IntegerField(help_text="unspent voucher balances that lapsed")
    available = serializers.IntegerField()
    recovered = serializers.IntegerField(
        help_text="repaid by recipients whose training ended early (not added to available)"
    )
    to_recover = serializers.IntegerField(help_text="still claimed by open recoveries")


class ProgramSerializer(serializers.ModelSerializer):
    open_rounds = RoundSerializer(many=True, read_only=True)

    class Meta:
        model = Program
        fields = ["id", "code", "name", "name_ko", "description", "open_rounds"]
        read_only_fields = fields


# Profile.


class ProfileSerializer(StrictModelSerializer):
    rrn = RRNField(max_length=20)
    account_number = AccountNumberField(max_length=40)
    district = serializers.ChoiceField(
        choices=DISTRICT_CHOICES,
        error_messages={
            "invalid_choice": "Unknown district: use the 5-digit code of a Seoul 자치구, "
            "e.g. 11440 for 마포구."
        },
    )
    bank_code = serializers.ChoiceField(
        choices=BANK_CHOICES,
        error_messages={
            "invalid_choice": "Unknown bank code: use the 3-digit Korean bank code, e.g. 004."
        },
    )
    phone = serializers.RegexField(
        PHONE_RE,
        max_length=20,
        error_messages={"invalid": "Enter a Korean phone number such as 010-1234-5678."},
    )
    consent_data_checks = serializers.BooleanField()
    district_name = serializers.CharField(read_only=True)

    class Meta:
        model = Applicant
        fields = [
            "legal_name",
            "rrn",
            "birth_date",
            "phone",
            "email",
            "district",
            "district_name",
            "address",
            "bank_code",
            "account_number",
            "account_holder",
            "consent_data_checks",
            "consent_at",
        ]
        read_only_fields = ["birth_date", "consent_at"]
        extra_kwargs = {
            "legal_name": {"required": True, "allow_blank": False},
            "email": {"required": True, "allow_blank": False},
            "address": {"required": True, "allow_blank": False},
            "account_holder": {"required": True, "allow_blank": False},
        }

    def to_internal_value(self, data):
        # A client that sends back what it read (the masks) changes nothing.
        if isinstance(data, Mapping) and self.instance is not None:
            data = dict(data.items()) if hasattr(data, "items") else data
            if self.instance.rrn and data.get("rrn") == self.instance.rrn_masked:
                data.pop("rrn")
                self.fields["rrn"].required = False
            if (
                self.instance.account_number
                and data.get("account_number") == self.instance.account_number_masked
            ):
                data.pop("account_number")
                self.fields["account_number"].required = False
        return super().to_internal_value(data)

    def validate_phone(self, value: str) -> str:
        digits = re.sub(r"\D", "", value)
        if len(digits) == 11:
            return f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"
        return value


# Applications.


class TrainingSerializer(StrictSerializer):
    course_id = serializers.CharField(max_length=40, required=False, allow_blank=True)
    course_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    institution = serializers.CharField(max_length=200, required=False, allow_blank=True)
    starts_on = serializers.DateField(required=False, allow_null=True)
    ends_on = serializers.DateField(required=False, allow_null=True)
    weekly_hours = serializers.IntegerField(
        min_value=1, max_value=80, required=False, allow_null=True
    )

    def validate(self, attrs):
        starts, ends = attrs.get("starts_on"), attrs.get("ends_on")
        for name in ("starts_on", "ends_on"):
            day = attrs.get(name)
            if day and not 2000 <= day.year <= 2100:
                raise serializers.ValidationError(
                    {
                        name: [
                            serializers.ErrorDetail(
                                "Enter a date between 2000 and 2100.", "out_of_range"
                            )
                        ]
                    }
                )
        if starts and ends and ends < starts:
            raise serializers.ValidationError(
                {
                    "ends_on": [
                        serializers.ErrorDetail(
                            "The training cannot end before it starts.", code="ends_before_start"
                        )
                    ]
                }
            )
        return attrs


class TrainingOutputSerializer(serializers.Serializer):
    course_id = serializers.CharField()
    course_name = serializers.CharField()
    institution = serializers.CharField()
    starts_on = serializers.DateField(source="training_starts_on")
    ends_on = serializers.DateField(source="training_ends_on")
    weekly_hours = serializers.IntegerField()


class DocumentSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    kind = serializers.ChoiceField(choices=Document.Kind.choices, read_only=True)
    original_name = serializers.CharField(read_only=True)
    content_type = serializers.CharField(read_only=True)
    size = serializers.IntegerField(read_only=True)
    sha256 = serializers.CharField(read_only=True)
    uploaded_at = serializers.DateTimeField(read_only=True)


class DocumentUploadSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=Document.Kind.choices)
    file = serializers.FileField(allow_empty_file=False, max_length=255)


class PaymentOutputSerializer(serializers.Serializer):
    status = serializers.CharField()
    amount = serializers.IntegerField()
    paid_at = serializers.DateTimeField(allow_null=True)


_DATETIME_FIELD = serializers.DateTimeField()


def _datetime(value) -> str | None:
    return None if value is None else _DATETIME_FIELD.to_representation(value)


def _choice(value) -> str | None:
    return None if value is None else str(value)


def _document(document: Document) -> dict:
    """DocumentSerializer's representation, written out (see ApplicationSerializer)."""
    return {
        "id": document.id,
        "kind": _choice(document.kind),
        "original_name": document.original_name,
        "content_type": document.content_type,
        "size": document.size,
        "sha256": document.sha256,
        "uploaded_at": _datetime(document.uploaded_at),
    }


class AppealSerializer(serializers.Serializer):
    reason = serializers.CharField()
    filed_at = serializers.DateTimeField()
    deadline = serializers.DateField(help_text="the day by which the caseworkers decide")
    outcome = serializers.ChoiceField(choices=Appeal.Outcome.choices, allow_blank=True)
    decision_reason = serializers.CharField()
    decided_at = serializers.DateTimeField(allow_null=True)


def _appeal(appeal: Appeal | None) -> dict | None:
    if appeal is None:
        return None
    return {
        "reason": appeal.reason,
        "filed_at": _datetime(appeal.filed_at),
        "deadline": appeal.deadline.isoformat(),
        "outcome": appeal.outcome,
        "decision_reason": appeal.decision_reason,
        "decided_at": _datetime(appeal.decided_at),
    }


# States in which an application has never been decided: no appeal to look for.
_UNDECIDED = frozenset(
    (
        Application.Status.DRAFT,
        Application.Status.SUBMITTED,
        Application.Status.SCREENING,
        Application.Status.UNDER_REVIEW,
        Application.Status.NEEDS_DOCUMENTS,
    )
)


def latest_appeal(application: Application) -> Appeal | None:
    """The application's latest appeal (from a prefetch of `appeals` when there is one)."""
    if application.status in _UNDECIDED:
        return None
    appeals = list(application.appeals.all())
    return max(appeals, key=lambda a: (a.filed_at, a.pk)) if appeals else None


class ApplicationSerializer(serializers.Serializer):
    """The citizen's view of an application (a plain Serializer: it is on the hot path)."""

    id = serializers.IntegerField(read_only=True)
    round = serializers.IntegerField(source="round_id", read_only=True)
    program = serializers.CharField(source="round.program.code", read_only=True)
    status = serializers.ChoiceField(choices=Application.Status.choices, read_only=True)
    income_category = serializers.ChoiceField(
        choices=Application.IncomeCategory.choices, read_only=True
    )
    training = serializers.SerializerMethodField()
    documents = DocumentSerializer(many=True, read_only=True)
    missing_documents = serializers.SerializerMethodField()
    decision_reason = serializers.CharField(read_only=True)
    appeal_until = serializers.SerializerMethodField()
    appeal = serializers.SerializerMethodField()
    payments = serializers.SerializerMethodField()
    submitted_at = serializers.DateTimeField(read_only=True, allow_null=True)
    decided_at = serializers.DateTimeField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, instance) -> dict:
        """The declared fields' representation, written out: this is on the hot path.

        Field by field what DRF's generic Serializer.to_representation gives (a test holds
        the two equal), without building and binding fourteen field objects per response.
        """
        application = instance
        documents = application.documents.all()
        return {
            "id": application.id,
            "round": application.round_id,
            "program": application.round.program.code,
            "status": _choice(application.status),
            "income_category": _choice(application.income_category),
            "training": self.get_training(application),
            "documents": [_document(d) for d in documents],
            "missing_documents": self.get_missing_documents(application),
            "decision_reason": application.decision_reason,
            "appeal_until": self.get_appeal_until(application),
            "appeal": self.get_appeal(application),
            "payments": self.get_payments(application),
            "submitted_at": _datetime(application.submitted_at),
            "decided_at": _datetime(application.decided_at),
            "created_at": _datetime(application.created_at),
            "updated_at": _datetime(application.updated_at),
        }

    @extend_schema_field(TrainingOutputSerializer(allow_null=True))
    def get_training(self, obj) -> dict | None:
        if not obj.has_training:
            return None
        starts, ends = obj.training_starts_on, obj.training_ends_on
        return {
            "course_id": obj.course_id,
            "course_name": obj.course_name,
            "institution": obj.institution,
            "starts_on": starts.isoformat() if starts else None,
            "ends_on": ends.isoformat() if ends else None,
            "weekly_hours": obj.weekly_hours,
        }

    @extend_schema_field(
        serializers.ListField(child=serializers.ChoiceField(choices=Document.Kind.choices))
    )
    def get_missing_documents(self, obj) -> list[str]:
        """Kinds of document still to upload: the enrollment certificate a scholarship
        needs, and those a caseworker asked for and not yet given."""
        if obj.status not in Application.EDITABLE_STATES:
            return []
        return application_missing_documents(obj)

    @extend_schema_field(serializers.DateField(allow_null=True))
    def get_appeal_until(self, obj) -> str | None:
        """The last day to appeal a rejection, while it can still be appealed."""
        until = application_appeal_until(obj) if obj.status == Application.Status.REJECTED else None
        return until.isoformat() if until else None

    @extend_schema_field(AppealSerializer(allow_null=True))
    def get_appeal(self, obj) -> dict | None:
        return _appeal(latest_appeal(obj))

    @extend_schema_field(PaymentOutputSerializer(many=True))
    def get_payments(self, obj) -> list:
        # Only a selected application is ever paid: the others need no query at all.
        if obj.status != Application.Status.SELECTED:
            return []
        from payments.selectors import payments_for_citizen

        return [
            {"status": p.status, "amount": p.amount, "paid_at": _datetime(p.paid_at)}
            for p in payments_for_citizen(obj)
        ]


# Compiled once (core.prepared): building this query costs the ORM more than running it.
_ROUND_WITH_PROGRAM = PreparedQuery(
    lambda pk: Round.objects.select_related("program").filter(pk=pk).order_by(), pk=int
)
_MAX_ID = 2**63 - 1


class RoundField(serializers.PrimaryKeyRelatedField):
    """A round by id, with its program."""

    def __init__(self, **kwargs):
        super().__init__(queryset=Round.objects.select_related("program"), **kwargs)

    def to_internal_value(self, data):
        # An id as a JSON integer in range takes the compiled query; anything else (text,
        # booleans, ids out of range) DRF's own checks and messages.
        if type(data) is int and 0 < data <= _MAX_ID:
            round_ = _ROUND_WITH_PROGRAM.first(pk=data)
            if round_ is None:
                self.fail("does_not_exist", pk_value=data)
            return round_
        return super().to_internal_value(data)


class ApplicationCreateSerializer(StrictSerializer):
    round = RoundField()
    income_category = serializers.ChoiceField(choices=Application.IncomeCategory.choices)
    training = TrainingSerializer(required=False, allow_null=True)


class ApplicationUpdateSerializer(StrictSerializer):
    income_category = serializers.ChoiceField(
        choices=Application.IncomeCategory.choices, required=False
    )
    training = TrainingSerializer(required=False, allow_null=True)
    round = serializers.IntegerField(read_only=True)
    status = serializers.CharField(read_only=True)


class EmptySerializer(StrictSerializer):
    pass


class ReasonSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class DocumentsRequestSerializer(ReasonSerializer):
    """A request for documents: the reason the citizen reads, and the kinds asked for."""

    documents = serializers.ListField(
        child=serializers.ChoiceField(choices=Document.Kind.choices),
        required=False,
        max_length=len(Document.Kind.choices),
        help_text="kinds of document the citizen is asked to upload",
    )


class NotificationSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=Notification.Kind.choices, read_only=True)
    sent_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = Notification
        fields = ["id", "application", "kind", "subject", "body", "created_at", "sent_at"]
        read_only_fields = fields
