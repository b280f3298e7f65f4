"""Read-only admin for batches and payments; account numbers are shown masked only."""

from django.contrib import admin

from core.admin import ReadOnlyAdmin
from payments.models import BankFile, BankResultImport, DisbursementBatch, Payment


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
