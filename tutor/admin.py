from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from tutor.models import WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    """Written only by the worker's heartbeat task; shown so an admin can see when it last ran."""

    list_display = ["cluster", "beat_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: WorkerHeartbeat | None = None) -> bool:
        return False
