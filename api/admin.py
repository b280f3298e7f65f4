from django.contrib import admin

from api.models import IdempotencyKey
from core.admin import ReadOnlyAdmin


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = ["key", "user", "state", "response_status", "created_at"]
    list_filter = ["state"]
    exclude = ["response_body"]
