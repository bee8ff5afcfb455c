from __future__ import annotations

from django.contrib import admin

from audit.admin import AuditedModelAdmin, ReadOnlyModelAdmin
from workflow import models


@admin.register(models.Bundle)
class BundleAdmin(AuditedModelAdmin):
    list_display = ["code", "title", "object_type", "subject", "anchor_skill", "organisation"]
    list_filter = ["organisation", "object_type", "subject"]
    search_fields = ["code", "title"]


@admin.register(models.StepDefinition)
class StepDefinitionAdmin(ReadOnlyModelAdmin):
    list_display = ["catalog_version", "step_id", "stage", "surface", "title"]
    list_filter = ["catalog_version", "stage"]


@admin.register(models.Recommendation)
class RecommendationAdmin(ReadOnlyModelAdmin):
    list_display = [
        "student",
        "school_class",
        "object_type",
        "bundle",
        "recommended_tier",
        "do_not_decide_yet",
    ]
    list_filter = ["object_type", "do_not_decide_yet", "qa_exclusion"]
    list_select_related = ["student", "school_class", "bundle"]


class ScaffoldRowInline(admin.TabularInline):
    model = models.ScaffoldRow
    fields = ["thread", "role", "level", "weekly_minutes"]
    readonly_fields = fields
    extra = 0
    can_delete = False


class HistoryInline(admin.TabularInline):
    model = models.AssignmentHistory
    fields = ["at", "event", "triggering_workflow_step", "override_code", "actor"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(models.BundleAssignment)
class BundleAssignmentAdmin(ReadOnlyModelAdmin):
    """Written only through the workflow's activation and exit paths."""

    list_display = ["student", "bundle", "scaffold_tier", "status", "plan_status", "activated_at"]
    list_filter = ["status", "plan_status", "bundle"]
    list_select_related = ["student", "bundle"]
    inlines = [ScaffoldRowInline, HistoryInline]


@admin.register(models.AcuteRegressionAlert)
class AcuteRegressionAlertAdmin(ReadOnlyModelAdmin):
    list_display = ["student", "state", "opened_at", "summary", "resolved_by"]
    list_filter = ["state"]
    list_select_related = ["student", "resolved_by"]


@admin.register(models.TeacherActionLog)
class TeacherActionLogAdmin(ReadOnlyModelAdmin):
    list_display = ["at", "teacher", "school_class", "student", "action_type", "workflow_step", "code"]
    list_filter = ["action_type", "workflow_step"]
    list_select_related = ["teacher", "school_class", "student"]


@admin.register(models.ContextFlagLog)
class ContextFlagLogAdmin(ReadOnlyModelAdmin):
    list_display = ["recorded_at", "student", "flag", "workflow_step", "recorded_by"]
    list_filter = ["flag"]


@admin.register(models.TeacherReviewRequest)
class TeacherReviewRequestAdmin(ReadOnlyModelAdmin):
    list_display = ["requested_at", "student", "status", "requested_by"]
