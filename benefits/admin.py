"""Read-mostly admin; personal data is shown masked only."""

from django.contrib import admin

from benefits.models import Applicant, Application, Document, Program, Round
from benefits.rounds import ROUND_MONEY_FIELDS
from core.admin import ReadOnlyAdmin


@admin.register(Program)
class ProgramAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "name_ko"]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Round)
class RoundAdmin(admin.ModelAdmin):
    list_display = ["name", "program", "year", "status", "capacity", "amount", "budget"]
    list_filter = ["program", "status", "year"]
    readonly_fields = ["status", "selection_seed", "created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        # Money settings of a live round change only through round_money_change (the API's
        # POST /rounds/{id}/money/), which keeps the rules and writes an audit event.
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.status != Round.Status.DRAFT:
            fields += [name for name in ROUND_MONEY_FIELDS if name not in fields]
        return fields

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Applicant)
class ApplicantAdmin(ReadOnlyAdmin):
    list_display = ["id", "user", "legal_name", "rrn_masked", "district_name", "bank_code"]
    list_filter = ["district"]
    search_fields = ["user__username", "legal_name"]
    list_select_related = ["user"]
    fields = [
        "user",
        "legal_name",
        "rrn_masked",
        "birth_date",
        "phone",
        "email",
        "district",
        "address",
        "bank_code",
        "account_number_masked",
        "account_holder",
        "account_changed_at",
        "consent_data_checks",
        "consent_at",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields


class DocumentInline(admin.TabularInline):
    model = Document
    fields = ["kind", "original_name", "content_type", "size", "uploaded_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Application)
class ApplicationAdmin(ReadOnlyAdmin):
    list_display = ["id", "round", "applicant", "status", "income_category", "submitted_at"]
    list_filter = ["round", "status", "income_category"]
    list_select_related = ["round", "applicant"]
    search_fields = ["id", "applicant__user__username"]
    inlines = [DocumentInline]


@admin.register(Document)
class DocumentAdmin(ReadOnlyAdmin):
    list_display = ["id", "application", "kind", "content_type", "size", "uploaded_at"]
    list_filter = ["kind", "content_type"]
    exclude = ["file"]
