"""Admin: batches, payments, vouchers and recoveries read-only; providers registered here.
Masked data only."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError as DjangoValidationError
from stdnum.exceptions import ValidationError
from stdnum.kr import brn

from core.admin import ReadOnlyAdmin
from core.banks import normalize_account_number
from core.crypto import account_fingerprint
from payments.models import (
    BankFile,
    BankResultImport,
    DisbursementBatch,
    Payment,
    Provider,
    ProviderUser,
    Recovery,
    Repayment,
    VoucherAccount,
    VoucherEntry,
)


@admin.register(DisbursementBatch)
class DisbursementBatchAdmin(ReadOnlyAdmin):
    list_display = ["id", "round", "status", "build_status", "prepared_by", "approved_by"]
    list_filter = ["status", "round"]
    list_select_related = ["round", "prepared_by", "approved_by"]


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ["reference", "batch", "application", "status", "amount", "bank_code"]
    list_filter = ["status", "round"]
    search_fields = ["=id", "=application__id"]
    list_select_related = ["batch"]
    fields = [
        "batch",
        "round",
        "application",
        "status",
        "amount",
        "bank_code",
        "account_number_masked",
        "account_holder",
        "reissue_of",
        "hold_reason",
        "failure_reason",
        "result_import",
        "created_at",
        "sent_at",
        "paid_at",
        "failed_at",
    ]
    readonly_fields = fields


@admin.register(BankFile)
class BankFileAdmin(ReadOnlyAdmin):
    list_display = ["batch", "format", "payments_count", "total_amount", "sha256", "created_at"]
    # The file itself holds account numbers: it is downloaded through the API only.
    exclude = ["file"]


@admin.register(BankResultImport)
class BankResultImportAdmin(ReadOnlyAdmin):
    list_display = ["id", "batch", "format", "imported_by", "created_at"]


class ProviderForm(forms.ModelForm):
    """Registering an institution: a valid business number and a bank account to settle to."""

    class Meta:
        model = Provider
        fields = ["name", "business_registration_number", "status", "bank_code"]

    account_number = forms.CharField(
        required=False,
        help_text="Digits (hyphens allowed); leave empty to keep the current account.",
        widget=forms.PasswordInput(render_value=False),
    )
    account_holder = forms.CharField(max_length=100)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["account_holder"].initial = self.instance.account_holder
        else:
            self.fields["account_number"].required = True

    def clean_business_registration_number(self):
        try:
            return brn.validate(self.cleaned_data["business_registration_number"])
        except ValidationError as exc:
            raise forms.ValidationError(
                f"Not a valid business registration number: {exc}"
            ) from None

    def clean_account_number(self):
        number = self.cleaned_data["account_number"]
        if not number:
            return ""
        try:
            return normalize_account_number(number)
        except DjangoValidationError as exc:
            raise forms.ValidationError(exc.messages) from None

    def save(self, commit=True):
        provider = super().save(commit=False)
        provider.account_holder = self.cleaned_data["account_holder"]
        if self.cleaned_data["account_number"]:
            provider.account_number = self.cleaned_data["account_number"]
        provider.account_fingerprint = account_fingerprint(
            provider.bank_code, provider.account_number
        )
        if commit:
            provider.save()
        return provider


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ["name", "business_registration_number", "status", "account_number_masked"]
    list_filter = ["status"]
    search_fields = ["name", "business_registration_number"]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ProviderUser)
class ProviderUserAdmin(admin.ModelAdmin):
    list_display = ["user", "provider"]
    autocomplete_fields = ["provider"]
    raw_id_fields = ["user"]


@admin.register(VoucherAccount)
class VoucherAccountAdmin(ReadOnlyAdmin):
    list_display = ["id", "round", "application", "expires_on", "lapsed_at"]
    list_filter = ["round"]
    # The code is a bearer credential: it is not shown here.
    exclude = ["code"]


@admin.register(VoucherEntry)
class VoucherEntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "account", "kind", "amount", "balance_after", "provider", "at"]
    list_filter = ["kind"]
    list_select_related = ["provider"]


class RepaymentInline(admin.TabularInline):
    model = Repayment
    fields = ["amount", "paid_on", "recorded_by", "recorded_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Recovery)
class RecoveryAdmin(ReadOnlyAdmin):
    """Read-only: repayments and waivers go through the services (the API), which keep
    the rules and audit them."""

    list_display = ["id", "round", "application", "status", "amount", "repaid", "due_on"]
    list_filter = ["status", "round"]
    search_fields = ["=id", "=application__id"]
    list_select_related = ["round"]
    inlines = [RepaymentInline]
