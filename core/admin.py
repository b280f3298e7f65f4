"""Admin for the audit trail, and the read-only base the other apps' admins use."""

from django.contrib import admin

from core.models import AuditEvent


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
