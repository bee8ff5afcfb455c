from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from audit.admin import AuditedModelAdmin
from classroom import models, services
from classroom.api_auth import api_token_revoke


@admin.register(models.Organisation)
class OrganisationAdmin(AuditedModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(models.User)
class UserAdmin(AuditedModelAdmin, DjangoUserAdmin):
    list_display = [
        "username",
        "first_name",
        "last_name",
        "email",
        "role",
        "organisation",
        "is_active",
        "last_login",
    ]
    list_filter = ["role", "organisation", "is_active", "is_staff", "is_superuser"]
    list_select_related = ["organisation"]
    search_fields = ["username", "first_name", "last_name", "email"]
    fieldsets = (*DjangoUserAdmin.fieldsets, ("School", {"fields": ["organisation", "role"]}))
    add_fieldsets = (*DjangoUserAdmin.add_fieldsets, ("School", {"fields": ["organisation", "role"]}))

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        # The new password and the revocation of the user's API tokens commit together or not at all.
        with transaction.atomic():
            return super().user_change_password(request, id, form_url)


class ApiTokenStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return models.ApiToken.State.choices

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[models.ApiToken]
    ) -> QuerySet[models.ApiToken]:
        return queryset.in_state(self.value()) if self.value() in models.ApiToken.State.values else queryset


@admin.register(models.ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are made by `create_api_token` and revoked through their service, which records each
    revocation: here an admin reads them and revokes. Nobody sees or edits a key's digest."""

    list_display = [
        "prefix",
        "user",
        "name",
        "state_label",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = [ApiTokenStateFilter, "user__organisation", "expires_at", "last_used_at"]
    list_select_related = ["user"]
    search_fields = ["prefix", "name", "user__username", "user__first_name", "user__last_name"]
    fields = ["user", "name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # The list's revoke action asks for the change permission; a token's own page stays read-only.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="state")
    def state_label(self, token: models.ApiToken) -> str:
        return models.ApiToken.State(token.state).label

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[models.ApiToken]) -> None:
        done = sum(
            api_token_revoke(token=token, by=request.user, why="revoked in the Django admin")
            for token in queryset.select_related("user")
        )
        self.message_user(request, f"Revoked {done} token(s).")


class TeacherAssignmentInline(admin.TabularInline):
    model = models.TeacherAssignment
    extra = 0
    autocomplete_fields = ["teacher"]


class EnrollmentInline(admin.TabularInline):
    model = models.Enrollment
    extra = 0
    autocomplete_fields = ["student"]


@admin.register(models.SchoolClass)
class SchoolClassAdmin(AuditedModelAdmin):
    list_display = ["name", "subject", "organisation", "platform_id", "is_active"]
    list_filter = ["organisation", "is_active", "subject"]
    list_select_related = ["organisation"]
    search_fields = ["name", "platform_id"]
    inlines = [TeacherAssignmentInline, EnrollmentInline]


@admin.register(models.Student)
class StudentAdmin(AuditedModelAdmin):
    list_display = ["last_name", "first_name", "platform_id", "organisation", "email"]
    list_filter = ["organisation"]
    list_select_related = ["organisation"]
    search_fields = ["first_name", "last_name", "platform_id", "email"]
    raw_id_fields = ["user"]


@admin.register(models.Enrollment)
class EnrollmentAdmin(AuditedModelAdmin):
    list_display = ["student", "school_class", "status", "enrolled_on"]
    list_filter = ["status", "school_class__organisation", "school_class"]
    list_select_related = ["student", "school_class"]
    search_fields = ["student__first_name", "student__last_name", "school_class__name"]
    autocomplete_fields = ["student", "school_class"]


@admin.register(models.TeacherAssignment)
class TeacherAssignmentAdmin(AuditedModelAdmin):
    list_display = ["teacher", "school_class", "role"]
    list_filter = ["role", "school_class__organisation"]
    list_select_related = ["teacher", "school_class"]
    search_fields = ["teacher__username", "teacher__last_name", "school_class__name"]
    autocomplete_fields = ["teacher", "school_class"]


class MirrorAdmin(admin.ModelAdmin):
    """Mirrors are the platform's data: readable here, written only by syncs and the demo seed."""

    list_select_related = ["student"]
    search_fields = ["student__first_name", "student__last_name", "student__platform_id"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(models.DailyPerformance)
class DailyPerformanceAdmin(MirrorAdmin):
    list_display = ["student", "date", "study_minutes", "mastery", "confidence", "checked_in", "synced_at"]
    list_filter = ["checked_in", "date", "student__organisation"]
    date_hierarchy = "date"


@admin.register(models.StudyPlanProgress)
class StudyPlanProgressAdmin(MirrorAdmin):
    list_display = ["student", "title", "due_on", "completed_on", "synced_at"]
    list_filter = ["due_on", "student__organisation"]


@admin.register(models.Assignment)
class AssignmentAdmin(MirrorAdmin):
    list_display = ["student", "title", "school_class", "due_at", "submitted_at", "synced_at"]
    list_filter = ["school_class", "due_at"]
    list_select_related = ["student", "school_class"]


@admin.register(models.DispatchLog)
class DispatchLogAdmin(MirrorAdmin):
    list_display = [
        "student",
        "kind",
        "status",
        "attempt",
        "response_code",
        "attempted_at",
        "idempotency_key",
    ]
    list_filter = ["status", "kind", "attempted_at"]
    search_fields = [*MirrorAdmin.search_fields, "idempotency_key"]


@admin.register(models.StudentSyncState)
class StudentSyncStateAdmin(MirrorAdmin):
    list_display = ["student", "last_synced_at", "last_attempted_at", "last_status"]
    list_filter = ["last_status", "student__organisation"]


@admin.register(models.Alert)
class AlertAdmin(admin.ModelAdmin):
    """Alerts change state only through their services, so the admin offers those as actions."""

    list_display = ["student", "kind", "state", "summary", "opened_at", "acknowledged_by", "resolved_at"]
    list_filter = ["state", "kind", "organisation", "opened_at"]
    list_select_related = ["student", "acknowledged_by"]
    search_fields = ["student__first_name", "student__last_name", "summary"]
    readonly_fields = [f.name for f in models.Alert._meta.fields]
    actions = ["acknowledge", "resolve"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Acknowledge the selected open alerts")
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[models.Alert]) -> None:
        done = 0
        for alert in queryset.filter(state=models.Alert.State.OPEN):
            services.alert_acknowledge(alert=alert, by=request.user)
            done += 1
        self.message_user(request, f"Acknowledged {done} alert(s).")

    @admin.action(description="Resolve the selected alerts")
    def resolve(self, request: HttpRequest, queryset: QuerySet[models.Alert]) -> None:
        done = 0
        for alert in queryset.exclude(state=models.Alert.State.RESOLVED):
            services.alert_resolve(alert=alert, by=request.user, note="resolved in the Django admin")
            done += 1
        self.message_user(request, f"Resolved {done} alert(s).")


class SyncRunStudentInline(admin.TabularInline):
    model = models.SyncRunStudent
    extra = 0
    can_delete = False
    fields = [
        "student",
        "status",
        "performance_rows",
        "assignment_rows",
        "milestone_rows",
        "duration_ms",
        "error",
        "hint",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(models.SyncRun)
class SyncRunAdmin(MirrorAdmin):
    """Sync runs are written by the sync service only; here an admin reads what happened."""

    list_display = [
        "__str__",
        "scope",
        "trigger",
        "status",
        "total",
        "succeeded",
        "failed",
        "queued_at",
        "finished_at",
    ]
    list_filter = ["status", "scope", "trigger", "organisation", "queued_at"]
    list_select_related = ["organisation", "school_class", "student"]
    search_fields = ["school_class__name", "student__last_name", "error", "hint", "correlation_id"]
    date_hierarchy = "queued_at"
    inlines = [SyncRunStudentInline]
