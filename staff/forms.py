"""Forms of the staff pages: they check the input; the services decide."""

import datetime
import re

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from benefits.models import Appeal, Application, ApplicationFlag, Program, Round
from core.districts import SEOUL_DISTRICTS
from eligibility.models import MatchResolution, RegistryKind
from payments.audit import AUDIT_FLAGS
from payments.models import DisbursementBatch, Payment
from staff import labels
from staff.access import staff_roles

PAGE_SIZES = (25, 50, 100)


class StaffAuthenticationForm(AuthenticationForm):
    """Sign in with one's own account; only staff roles may enter."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "not_staff": _(
            "This account cannot use the staff workbench. Citizens and providers use their "
            "own services."
        ),
    }

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if not staff_roles(user):
            raise ValidationError(self.error_messages["not_staff"], code="not_staff")


def _choices(table: dict, values) -> list[tuple[str, str]]:
    return [(value, labels.label(table, value)) for value in values]


def district_choices() -> list[tuple[str, str]]:
    return [(code, d.name_ko) for code, d in SEOUL_DISTRICTS.items()]


class RoundChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Round) -> str:
        return f"#{obj.pk} {obj.name} ({labels.label(labels.ROUND_STATUS, obj.status)})"


ALL_STATES = "all"
# RRN prefix as staff see it in a masked RRN: birth date, optionally the 7th digit.
RRN_PREFIX = re.compile(r"(\d{2})(\d{2})(\d{2})(?:-?(\d))?")
# The queue's flags of decided applications: without a state, they show every state.
AFTER_DECISION_FLAGS = ("appeal", *ApplicationFlag.Kind.values)
# A whole RRN must never travel in a URL (the queue's filters are a GET form).
WHOLE_RRN = re.compile(r"\d{6}\s*-?\s*\d{7}")


class QueueFilterForm(forms.Form):
    round = RoundChoiceField(
        queryset=Round.objects.order_by("-applications_open_at", "-id"),
        required=False,
        empty_label=_("All rounds"),
        label=_("Round"),
    )
    status = forms.ChoiceField(required=False, label=_("State"))
    district = forms.ChoiceField(required=False, label=_("District"))
    flag = forms.ChoiceField(required=False, label=_("Flag"))
    q = forms.CharField(
        required=False,
        max_length=100,
        label=_("Name or application no."),
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off"}),
    )
    rrn = forms.CharField(
        required=False,
        max_length=8,
        label=_("RRN (birth date-digit)"),
        help_text=_("As shown masked: 900101 or 900101-1."),
        widget=forms.TextInput(
            attrs={
                "placeholder": "900101-1",
                "autocomplete": "off",
                "inputmode": "numeric",
                "maxlength": "8",
            }
        ),
    )
    per_page = forms.TypedChoiceField(
        required=False,
        coerce=int,
        choices=[(n, n) for n in PAGE_SIZES],
        empty_value=50,
        initial=50,
        label=_("Per page"),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        statuses = [s for s in Application.Status.values if s != Application.Status.DRAFT]
        # Without a state, the queue shows what waits for a decision, or for an appeal or a
        # flag of decided applications every state.
        decided = self.data.get("flag") in AFTER_DECISION_FLAGS
        self.fields["status"].choices = [
            ("", _("All states (default)") if decided else _("Under review (default)")),
            (ALL_STATES, _("All states")),
            *_choices(labels.STATUS, statuses),
        ]
        self.fields["district"].choices = [("", _("All districts")), *district_choices()]
        self.fields["flag"].choices = [
            ("", _("Any flag")),
            *_choices(labels.REVIEW_FLAG, labels.REVIEW_FLAG),
        ]

    def clean_q(self):
        q = self.cleaned_data["q"].strip()
        if WHOLE_RRN.search(q):
            raise ValidationError(
                _("Search by the masked part only (birth date and the next digit)."),
                code="whole_rrn",
            )
        return q

    def clean_rrn(self):
        value = self.cleaned_data["rrn"].strip()
        if not value:
            return []
        match = RRN_PREFIX.fullmatch(value)
        if not match:
            raise ValidationError(_("Enter 6 digits, or 6 digits, a hyphen and one digit."))
        yy, mm, dd, digit = match.groups()
        if digit in ("9", "0"):
            raise ValidationError(_("The 7th digit of an RRN is 1 to 8."))
        # The 7th digit tells the century (1, 2, 5, 6: 1900s; 3, 4, 7, 8: 2000s). The gender
        # it also tells is not stored in clear, so it does not narrow the search.
        centuries = [1900, 2000] if digit is None else [1900 if digit in "1256" else 2000]
        dates = []
        for century in centuries:
            try:
                dates.append(datetime.date(century + int(yy), int(mm), int(dd)))
            except ValueError:
                continue
        if not dates:
            raise ValidationError(_("This is not a valid birth date."))
        return dates

    def filters(self) -> dict:
        """The queue filters asked for; the default queue is what waits for a decision."""
        data = self.cleaned_data if self.is_valid() else {}
        status = data.get("status") or ""
        searching = bool(data.get("q") or data.get("rrn"))
        # An appeal, or a flag raised after the decision, concerns decided applications.
        decided = data.get("flag") in AFTER_DECISION_FLAGS
        if status == ALL_STATES or (not status and (searching or decided)):
            status = ""
        elif not status:
            status = Application.Status.UNDER_REVIEW
        return {
            "round_id": data["round"].pk if data.get("round") else None,
            "status": status,
            "district": data.get("district") or "",
            "flag": data.get("flag") or "",
            "q": data.get("q") or "",
            "birth_dates": data.get("rrn") or [],
        }


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        label=_("Reason"),
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": _("A reason is required.")},
    )


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=2000, required=False, label=_("Note"), widget=forms.Textarea(attrs={"rows": 2})
    )


REASON_REQUIRED = {"required": _("A reason is required.")}


class AppealDecisionForm(forms.Form):
    """An appeal's decision, for benefits.after_decision.application_appeal_decide."""

    outcome = forms.ChoiceField(
        label=_("Decision on the appeal"),
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose a decision.")},
    )
    reason = forms.CharField(
        max_length=2000,
        label=_("Reason (the applicant reads it)"),
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages=REASON_REQUIRED,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["outcome"].choices = _choices(labels.APPEAL_OUTCOME, Appeal.Outcome.values)


class FlagClearForm(forms.Form):
    """Clearing an open flag after looking, for application_flag_clear."""

    flag = forms.ChoiceField(widget=forms.HiddenInput)
    reason = forms.CharField(
        max_length=2000,
        label=_("Why the payment may go ahead (recorded)"),
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages=REASON_REQUIRED,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["flag"].choices = [(k, k) for k in ApplicationFlag.Kind.values]


class MatchResolveForm(forms.Form):
    """A caseworker's judgement of one duplicate match, for eligibility.resolutions."""

    resolution = forms.ChoiceField(
        label=_("Judgement"), error_messages={"required": _("Choose a judgement.")}
    )
    reason = forms.CharField(
        max_length=2000,
        label=_("Reason (recorded)"),
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages=REASON_REQUIRED,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["resolution"].choices = _choices(
            labels.MATCH_RESOLUTION, MatchResolution.Resolution.values
        )


class TrainingEndForm(forms.Form):
    """A training that ended early, for benefits.training_end.application_training_end."""

    ended_on = forms.DateField(
        label=_("Last day attended"), widget=forms.DateInput(attrs={"type": "date"})
    )
    reason = forms.CharField(
        max_length=2000,
        label=_("Reason (the applicant reads it)"),
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages=REASON_REQUIRED,
    )
    evidence = forms.FileField(
        required=False,
        label=_("Evidence: the institution's notice (optional)"),
        widget=forms.ClearableFileInput(attrs={"accept": ".pdf,.png,.jpg,.jpeg"}),
    )


class RecoveryFilterForm(forms.Form):
    OVERDUE = "overdue"

    status = forms.ChoiceField(required=False, label=_("State"))
    round = RoundChoiceField(
        queryset=Round.objects.filter(program__code=Program.Code.SCHOLARSHIP).order_by(
            "-applications_open_at", "-id"
        ),
        required=False,
        empty_label=_("All rounds"),
        label=_("Round"),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [
            ("", _("All states")),
            (self.OVERDUE, _("Overdue")),
            *_choices(labels.RECOVERY_STATUS, labels.RECOVERY_STATUS),
        ]


class RepaymentForm(forms.Form):
    """Money a recipient gave back, for payments.recoveries.recovery_repayment_record."""

    amount = forms.IntegerField(label=_("Amount (KRW)"), min_value=1, max_value=10**15)
    paid_on = forms.DateField(label=_("Paid on"), widget=forms.DateInput(attrs={"type": "date"}))


class RoundMoneyForm(forms.Form):
    """A change of a round's money settings, for benefits.rounds.round_money_change."""

    budget = forms.IntegerField(label=_("Budget"), min_value=1, max_value=10**13, required=False)
    amount = forms.IntegerField(
        label=_("Amount per recipient"), min_value=1, max_value=10**10, required=False
    )
    capacity = forms.IntegerField(label=_("Capacity"), min_value=1, max_value=10**7, required=False)
    top_up_amount = forms.IntegerField(
        label=_("Top-up amount"), min_value=0, max_value=10**10, required=False
    )
    top_up_share = forms.IntegerField(
        label=_("Top-up share (%)"), min_value=0, max_value=100, required=False
    )
    reason = forms.CharField(
        max_length=2000,
        label=_("Reason for the change (recorded)"),
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": _("A reason is required.")},
    )

    MONEY_FIELDS = ("budget", "amount", "capacity", "top_up_amount", "top_up_share")

    def changes(self, round_: Round) -> dict:
        """The settings given that differ from the round's."""
        return {
            name: self.cleaned_data[name]
            for name in self.MONEY_FIELDS
            if self.cleaned_data.get(name) is not None
            and self.cleaned_data[name] != getattr(round_, name)
        }


class BatchCreateForm(forms.Form):
    round = RoundChoiceField(
        queryset=Round.objects.filter(status__in=[Round.Status.SELECTED, Round.Status.DISBURSING])
        .select_related("program")
        .order_by("-applications_open_at", "-id"),
        label=_("Round"),
        empty_label=None,
    )


class SettlementCreateForm(forms.Form):
    round = RoundChoiceField(
        queryset=Round.objects.filter(program__code="VOUCHER")
        .exclude(status__in=[Round.Status.DRAFT, Round.Status.CANCELLED])
        .order_by("-applications_open_at", "-id"),
        label=_("Voucher round"),
        empty_label=None,
    )
    period_starts_on = forms.DateField(
        label=_("Period from"), widget=forms.DateInput(attrs={"type": "date"})
    )
    period_ends_on = forms.DateField(
        label=_("Period to"), widget=forms.DateInput(attrs={"type": "date"})
    )


class BatchFilterForm(forms.Form):
    round = RoundChoiceField(
        queryset=Round.objects.order_by("-applications_open_at", "-id"),
        required=False,
        empty_label=_("All rounds"),
        label=_("Round"),
    )
    status = forms.ChoiceField(required=False, label=_("State"))
    kind = forms.ChoiceField(required=False, label=_("Kind"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [
            ("", _("All states")),
            *_choices(labels.BATCH_STATUS, DisbursementBatch.Status.values),
        ]
        self.fields["kind"].choices = [
            ("", _("All kinds")),
            *_choices(labels.BATCH_KIND, DisbursementBatch.Kind.values),
        ]


class PaymentFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=100,
        label=_("Reference, name or no."),
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off"}),
    )
    status = forms.ChoiceField(required=False, label=_("Payment state"))
    flag = forms.ChoiceField(required=False, label=_("Audit flag"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [
            ("", _("All states")),
            *_choices(labels.PAYMENT_STATUS, Payment.Status.values),
        ]
        self.fields["flag"].choices = [("", _("Any")), *_choices(labels.AUDIT_FLAG, AUDIT_FLAGS)]


class ResultUploadForm(forms.Form):
    file = forms.FileField(
        label=_("Bank result file (CSV or pain.002)"),
        allow_empty_file=True,
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xml,text/csv,application/xml"}),
    )

    MAX_BYTES = 200 * 1024 * 1024

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > self.MAX_BYTES:
            raise ValidationError(_("A result file is at most 200 MB."))
        return upload


class RegistryImportForm(forms.Form):
    kind = forms.ChoiceField(label=_("Registry"))
    file = forms.FileField(
        label=_("CSV file"),
        allow_empty_file=True,
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = _choices(labels.REGISTRY, RegistryKind.values)
