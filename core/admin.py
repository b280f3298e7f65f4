"""Admin for the audit trail, and the read-only base the other apps' admins use."""

from django.contrib import admin

from core.models import AuditEvent, TaskOutbox
from core.outbox import outbox_retry


class ReadOnlyAdmin(admin.ModelAdmin):
    """Staff read here; every change goes through the API's services and their audit."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "action", "object_type", "object_id", "from_state", "to_state", "actor"]
    list_filter = ["action", "object_type"]
    search_fields = ["object_id", "reason"]
    date_hierarchy = "at"
    list_select_related = ["actor"]


@admin.register(TaskOutbox)
class TaskOutboxAdmin(ReadOnlyAdmin):
    list_display = ["id", "task", "key", "status", "runs", "failures", "due_at", "finished_at"]
    list_filter = ["status", "task"]
    search_fields = ["key"]
    actions = ["retry"]

    @admin.action(description="Queue the selected given-up tasks again")
    def retry(self, request, queryset):
        count = outbox_retry(entry_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} given-up tasks queued again.")
