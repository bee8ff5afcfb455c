"""The Teacher Activation Workflow's tables (shared/seeds/002). The draft is the only row the
workflow itself changes; everything else is written by the engines and writers it delegates to,
and the history lives in the teacher action log and the assignment history, never in the draft."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from classroom.models import Organisation, SchoolClass, Student
from workflow import catalog

USER = settings.AUTH_USER_MODEL


class StepDefinition(models.Model):
    """The step catalog, one row per step per catalog version (the API serves one version)."""

    catalog_version = models.CharField(max_length=32)
    step_id = models.CharField(max_length=8)
    ordinal = models.PositiveSmallIntegerField()
    stage = models.CharField(max_length=16)
    surface = models.CharField(max_length=40)
    title = models.CharField(max_length=100)
    description = models.TextField()
    next_steps = models.JSONField(default=list)

    class Meta:
        ordering = ["catalog_version", "ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["catalog_version", "step_id"], name="step_per_version")
        ]

    def __str__(self) -> str:
        return f"{self.step_id} {self.title} ({self.catalog_version})"


class Bundle(models.Model):
    """An intervention bundle: an anchor thread, supporting threads and an asset bridge."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="bundles")
    code = models.CharField(max_length=40)
    title = models.CharField(max_length=200)
    object_type = models.CharField(max_length=16, choices=[(t.value, t.value) for t in catalog.BUNDLE_TYPES])
    subject = models.CharField(max_length=100)
    anchor_skill = models.CharField(max_length=80)
    supporting_threads = models.JSONField(default=list)
    asset_bridge = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["organisation", "code"]
        constraints = [models.UniqueConstraint(fields=["organisation", "code"], name="bundle_code_unique")]

    def __str__(self) -> str:
        return f"{self.title} ({self.code})"


class Recommendation(models.Model):
    """The profile engine's recommendation for one student of a class (recomputed in place)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    school_class = models.ForeignKey(SchoolClass, on_delete=models.CASCADE, related_name="recommendations")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="recommendations")
    object_type = models.CharField(max_length=16, choices=[(t.value, t.value) for t in catalog.ObjectType])
    bundle = models.ForeignKey(Bundle, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    recommended_tier = models.CharField(max_length=8, blank=True)
    delivery_mode = models.CharField(max_length=16, blank=True)
    anchor_skill = models.CharField(max_length=80, blank=True)
    do_not_decide_yet = models.BooleanField(default=False)
    qa_exclusion = models.CharField(max_length=16, blank=True, help_text="QA_003: data incomplete.")
    rationale = models.CharField(max_length=300)
    evidence = models.JSONField(default=dict)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["student__last_name", "student__first_name"]
        constraints = [
            models.UniqueConstraint(fields=["school_class", "student"], name="recommendation_per_student")
        ]

    def __str__(self) -> str:
        return f"{self.object_type} for {self.student}"

    @property
    def is_bundle(self) -> bool:
        return self.bundle_id is not None


class Cluster(models.Model):
    """Students who share the five keys: class, bundle, anchor skill, scaffold tier, delivery mode."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    school_class = models.ForeignKey(SchoolClass, on_delete=models.CASCADE, related_name="clusters")
    bundle = models.ForeignKey(Bundle, on_delete=models.PROTECT, related_name="+")
    anchor_skill = models.CharField(max_length=80)
    scaffold_tier = models.CharField(max_length=8)
    delivery_mode = models.CharField(max_length=16)
    identity = models.CharField(max_length=200)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["school_class", "identity"]
        constraints = [models.UniqueConstraint(fields=["school_class", "identity"], name="cluster_identity")]

    def __str__(self) -> str:
        return self.identity


class ClusterMember(models.Model):
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="members")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="+")
    excluded_code = models.CharField(max_length=32, blank=True, help_text="A grouping override code.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cluster", "student"], name="cluster_member_unique")]

    def __str__(self) -> str:
        return f"{self.student} in {self.cluster}"


class BundleAssignment(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        EXITED = "exited", "Exited"

    class PlanStatus(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        CONTINUING = "continuing", "Continuing after review"
        EXITED = "exited", "Exited"

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    school_class = models.ForeignKey(SchoolClass, on_delete=models.CASCADE, related_name="bundle_assignments")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="bundle_assignments")
    bundle = models.ForeignKey(Bundle, on_delete=models.PROTECT, related_name="assignments")
    cluster = models.ForeignKey(Cluster, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    scaffold_tier = models.CharField(max_length=8)
    recommended_tier = models.CharField(max_length=8)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    plan_status = models.CharField(max_length=16, choices=PlanStatus.choices, default=PlanStatus.IN_PROGRESS)
    activated_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    activated_at = models.DateTimeField()
    exited_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["-activated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["student"], condition=Q(status="active"), name="one_active_bundle_per_student"
            )
        ]

    def __str__(self) -> str:
        return f"{self.bundle.code} for {self.student} ({self.status})"

    def audit_scope(self) -> dict[str, Any]:
        return {
            "organisation_id": self.organisation_id,
            "class_id": self.school_class_id,
            "student_id": self.student_id,
        }


class ScaffoldRow(models.Model):
    """What an assignment delivers at its tier: one row per thread of the bundle."""

    assignment = models.ForeignKey(BundleAssignment, on_delete=models.CASCADE, related_name="scaffold")
    thread = models.CharField(max_length=80)
    role = models.CharField(max_length=16, help_text="anchor, supporting or bridge")
    level = models.CharField(max_length=8)
    weekly_minutes = models.PositiveSmallIntegerField()

    def __str__(self) -> str:
        return f"{self.thread} at {self.level}"


class AssignmentHistory(models.Model):
    assignment = models.ForeignKey(BundleAssignment, on_delete=models.CASCADE, related_name="history")
    event = models.CharField(max_length=32)
    triggering_workflow_step = models.CharField(max_length=8)
    override_code = models.CharField(max_length=32, blank=True)
    actor = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()
    details = models.JSONField(default=dict)

    class Meta:
        ordering = ["at", "pk"]
        verbose_name_plural = "assignment history"

    def __str__(self) -> str:
        return f"{self.event} at {self.triggering_workflow_step}"


class AcuteRegressionAlert(models.Model):
    class State(models.TextChoices):
        OPEN = "open", "Open"
        DISMISSED = "dismissed", "Dismissed with a context flag"
        ESCALATED = "escalated", "Escalated for a tier review"

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="acute_alerts")
    opened_at = models.DateTimeField()
    metrics = models.JSONField(default=dict)
    summary = models.CharField(max_length=300)
    state = models.CharField(max_length=12, choices=State.choices, default=State.OPEN)
    resolved_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["student"], condition=Q(state="open"), name="one_open_acute_alert"
            )
        ]

    def __str__(self) -> str:
        return f"acute regression of {self.student} ({self.state})"

    def audit_scope(self) -> dict[str, Any]:
        return {"organisation_id": self.organisation_id, "student_id": self.student_id}


class ContextFlagLog(models.Model):
    """Context flags live here only, never on the alert they explain."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="+")
    alert = models.ForeignKey(AcuteRegressionAlert, null=True, on_delete=models.SET_NULL, related_name="+")
    flag = models.CharField(max_length=32)
    workflow_step = models.CharField(max_length=8)
    recorded_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.flag} for {self.student}"


class TeacherActionLog(models.Model):
    """Every step a teacher takes in the workflow, with its controlled codes (never free text)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    teacher = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    school_class = models.ForeignKey(SchoolClass, on_delete=models.CASCADE, related_name="+")
    student = models.ForeignKey(Student, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    action_type = models.CharField(max_length=32)
    workflow_step = models.CharField(max_length=8)
    code = models.CharField(max_length=32, blank=True)
    details = models.JSONField(default=dict)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["school_class", "at"], name="action_log_class_time")]

    def __str__(self) -> str:
        return f"{self.action_type} at {self.workflow_step}"


class TeacherReviewRequest(models.Model):
    """A nomination for a tier review. The RTI engine owns tiers; the workflow only nominates."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="+")
    alert = models.ForeignKey(AcuteRegressionAlert, null=True, on_delete=models.SET_NULL, related_name="+")
    requested_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField()
    status = models.CharField(max_length=16, default="nominated")

    def __str__(self) -> str:
        return f"tier-review nomination for {self.student}"


class WorkflowDraft(models.Model):
    """Where a teacher is in the workflow for a class: one per (org, teacher, class), upserted
    (last write wins), and considered gone seven days after its last write."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    teacher = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    school_class = models.ForeignKey(SchoolClass, on_delete=models.CASCADE, related_name="+")
    step = models.CharField(max_length=8, default=catalog.FIRST_STEP)
    state = models.JSONField(default=dict)
    updated_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "teacher", "school_class"], name="one_draft_per_class"
            )
        ]

    def __str__(self) -> str:
        return f"workflow draft of {self.teacher} for {self.school_class} at {self.step}"
