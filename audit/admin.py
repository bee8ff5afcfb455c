from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.models import ActivityEvent
from audit.services import record


@admin.register(ActivityEvent)
class ActivityEventAdmin(admin.ModelAdmin):
    """Read-only: the log is append-only, so the admin can look but never add, change or delete."""

    list_display = ["occurred_at", "actor_name", "verb", "target_type", "target_id", "status", "source"]
    list_filter = ["status", "source", "verb", "occurred_at"]
    search_fields = ["actor_name", "verb", "target_id", "why", "correlation_id"]
    date_hierarchy = "occurred_at"
    list_select_related = False
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ActivityEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ActivityEvent | None = None) -> bool:
        return False


class AuditedModelAdmin(admin.ModelAdmin):
    """A model admin whose saves and deletes each append an activity event.

    Django's admin already wraps these in a transaction, so the event commits with the change.
    """

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        record(
            verb=f"{obj._meta.model_name}.{'changed' if change else 'created'}",
            actor=request.user,
            target=obj,
            why="edited in the Django admin",
            details={"changed_fields": sorted(form.changed_data)},
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self._record_delete(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self._record_delete(request, obj)
        super().delete_queryset(request, queryset)

    def _record_delete(self, request: HttpRequest, obj: Any) -> None:
        record(
            verb=f"{obj._meta.model_name}.deleted",
            actor=request.user,
            target=obj,
            why="deleted in the Django admin",
            details={"repr": str(obj)},
        )
