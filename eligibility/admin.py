"""Read-only admin for registry snapshots, their rows and import jobs."""

from django.contrib import admin

from core.admin import ReadOnlyAdmin
from eligibility.models import (
    NaeilbaeumRecord,
    NationalVoucherRecord,
    RegistryImportJob,
    RegistrySnapshot,
    SocialSecurityRecord,
    TrainingCourse,
    YouthAllowanceRecord,
)


@admin.register(RegistrySnapshot)
class RegistrySnapshotAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "status", "row_count", "created_at", "activated_at"]
    list_filter = ["kind", "status"]


@admin.register(RegistryImportJob)
class RegistryImportJobAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "kind",
        "status",
        "rows_read",
        "rows_rejected",
        "snapshot",
        "created_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["kind", "status"]
    list_select_related = ["snapshot", "created_by"]
    exclude = ["file"]


class RegistryRowAdmin(ReadOnlyAdmin):
    list_filter = ["snapshot"]
    # Millions of rows: no COUNT(*) of the whole table on every page.
    show_full_result_count = False


class PersonRowAdmin(RegistryRowAdmin):
    search_fields = ["=rrn_hmac"]


@admin.register(SocialSecurityRecord)
class SocialSecurityRecordAdmin(PersonRowAdmin):
    list_display = ["snapshot", "line", "status", "district", "valid_from", "valid_to"]


@admin.register(NaeilbaeumRecord)
class NaeilbaeumRecordAdmin(PersonRowAdmin):
    list_display = ["snapshot", "line", "card_valid_from", "card_valid_to", "course_id"]


@admin.register(YouthAllowanceRecord)
class YouthAllowanceRecordAdmin(PersonRowAdmin):
    list_display = ["snapshot", "line", "paid_from", "paid_to"]


@admin.register(NationalVoucherRecord)
class NationalVoucherRecordAdmin(PersonRowAdmin):
    list_display = ["snapshot", "line", "year"]


@admin.register(TrainingCourse)
class TrainingCourseAdmin(RegistryRowAdmin):
    list_display = ["snapshot", "line", "course_id", "name", "institution", "vocational"]
    search_fields = ["course_id", "name", "institution"]
