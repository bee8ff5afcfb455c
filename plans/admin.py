from __future__ import annotations

from django.contrib import admin

from audit.admin import AuditedModelAdmin, ReadOnlyModelAdmin
from plans import models


@admin.register(models.Curriculum)
class CurriculumAdmin(AuditedModelAdmin):
    list_display = ["title", "code", "subject", "organisation", "is_active"]
    list_filter = ["organisation", "subject", "is_active"]
    search_fields = ["title", "code"]


@admin.register(models.PlanPolicy)
class PlanPolicyAdmin(AuditedModelAdmin):
    list_display = [
        "organisation",
        "min_weekly_minutes",
        "max_weekly_minutes",
        "high_impact_pacing_share",
        "new_curriculum_needs_approval",
    ]


class PlanVersionInline(admin.TabularInline):
    model = models.PlanVersion
    fields = ["number", "published_at", "published_by", "approved_by", "rationale"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:  # noqa: ANN001 - Django's signature
        return False


@admin.register(models.StudyPlan)
class StudyPlanAdmin(ReadOnlyModelAdmin):
    """Plans change only through drafts and publishing, so the admin reads them."""

    list_display = ["student", "version_number", "created_at"]
    search_fields = ["student__first_name", "student__last_name", "student__platform_id"]
    list_select_related = ["student"]
    inlines = [PlanVersionInline]


@admin.register(models.PlanDraft)
class PlanDraftAdmin(ReadOnlyModelAdmin):
    list_display = ["pk", "plan", "state", "source", "author", "created_at", "expires_at"]
    list_filter = ["state", "source"]
    list_select_related = ["plan__student", "author"]


@admin.register(models.Approval)
class ApprovalAdmin(ReadOnlyModelAdmin):
    list_display = ["pk", "draft", "state", "requested_by", "requested_at", "decided_by", "decided_at"]
    list_filter = ["state"]
    list_select_related = ["draft__plan__student", "requested_by", "decided_by"]
