from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet, URLField
from django.http import HttpRequest

from audit.models import ActivityEvent, Checkpoint, Failure, NotificationDelivery, NotificationSettings
from audit.services import record


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """Rows that only their service writes: the admin can look but never add, change or delete."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ActivityEvent)
class ActivityEventAdmin(ReadOnlyModelAdmin):
    """Read-only: the log is append-only, so the admin can look but never add, change or delete."""

    list_display = ["occurred_at", "actor_name", "verb", "target_type", "target_id", "status", "source"]
    list_filter = ["status", "source", "verb", "occurred_at"]
    search_fields = ["actor_name", "verb", "target_id", "why", "correlation_id"]
    date_hierarchy = "occurred_at"
    list_select_related = False
    show_full_result_count = False


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


@admin.register(Failure)
class FailureAdmin(ReadOnlyModelAdmin):
    """Read-only: failures are opened by `record_failure` and resolved in Audit → Failures."""

    list_display = ["severity", "state", "fingerprint", "occurrences", "last_seen_at", "organisation_id"]
    list_filter = ["state", "severity"]
    search_fields = ["fingerprint", "summary"]


@admin.register(NotificationSettings)
class NotificationSettingsAdmin(AuditedModelAdmin):
    """Where an organisation's notifications go. The webhook URL is a secret: no list shows it."""

    list_display = ["organisation_id", "email_recipients", "has_slack_webhook"]
    formfield_overrides = {URLField: {"assume_scheme": "https"}}  # webhooks are https
    fields = [
        "organisation_id",
        "email_recipients",
        "slack_webhook_url",
        "notify_high_failures",
        "notify_pending_approvals",
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: NotificationSettings | None = None) -> list[str]:
        return ["organisation_id"] if obj else []  # the primary key: changing it would copy the row

    @admin.display(boolean=True, description="Slack webhook")
    def has_slack_webhook(self, obj: NotificationSettings) -> bool:
        return bool(obj.slack_webhook_url)


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyModelAdmin):
    """Read-only: deliveries are claimed and finished by `audit.notify` alone."""

    list_display = ["claimed_at", "organisation_id", "item_key", "channel", "status", "attempts", "sent_at"]
    list_filter = ["status", "channel"]
    search_fields = ["item_key"]


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyModelAdmin):
    """The signed chain heads sent out each day; the copies that count are the ones sent."""

    list_display = ["taken_at", "organisation_id", "seq", "key_id"]
    list_filter = ["organisation_id"]
