"""Study plans: one per student, immutable published versions, drafts that propose a change, and
the approvals that high-impact changes wait in."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from classroom.models import Organisation, Student


class Curriculum(models.Model):
    """An entry of an organisation's catalogue: what a plan may list under `curricula`."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="curricula")
    code = models.SlugField(max_length=40)
    title = models.CharField(max_length=200)
    subject = models.CharField(max_length=100, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        verbose_name_plural = "curricula"
        ordering = ["organisation", "title"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "code"], name="curriculum_code_unique")
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.code})"


class PlanPolicy(models.Model):
    """An organisation's rules for study plans; without a row, the settings' defaults apply."""

    organisation = models.OneToOneField(Organisation, on_delete=models.CASCADE, related_name="plan_policy")
    min_weekly_minutes = models.PositiveIntegerField(default=30)
    max_weekly_minutes = models.PositiveIntegerField(default=600)
    high_impact_pacing_share = models.FloatField(
        default=0.25, help_text="A change of weekly minutes larger than this share needs a second approver."
    )
    new_curriculum_needs_approval = models.BooleanField(
        default=True, help_text="Adding a curriculum (or swapping one in) needs a second approver."
    )

    class Meta:
        verbose_name_plural = "plan policies"

    def __str__(self) -> str:
        return f"plan policy of {self.organisation}"


class StudyPlan(models.Model):
    """A student's plan. `version_number` is the published version's number: publishing checks it
    has not moved since the draft was made, which is how two publishers get one success."""

    student = models.OneToOneField(Student, on_delete=models.CASCADE, related_name="study_plan")
    current_version = models.ForeignKey(
        "PlanVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    version_number = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"study plan of {self.student}"

    def audit_scope(self) -> dict[str, Any]:
        return {"organisation_id": self.student.organisation_id, "student_id": self.student_id}


class ImmutableError(Exception):
    """A published plan version never changes; publish a new one instead."""


class PlanVersion(models.Model):
    plan = models.ForeignKey(StudyPlan, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    document = models.JSONField()
    rationale = models.TextField()
    changes = models.JSONField(default=list, help_text="The deltas against the version before, in words.")
    draft = models.OneToOneField(
        "PlanDraft", null=True, blank=True, on_delete=models.PROTECT, related_name="published_version"
    )
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The second approver of a high-impact change.",
    )
    published_at = models.DateTimeField()

    class Meta:
        ordering = ["plan", "-number"]
        constraints = [models.UniqueConstraint(fields=["plan", "number"], name="plan_version_unique")]

    def __str__(self) -> str:
        return f"version {self.number} of {self.plan}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ImmutableError("a published plan version cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ImmutableError("a published plan version cannot be deleted")


def _draft_expiry() -> Any:
    return timezone.now() + timedelta(days=settings.PLAN_DRAFT_TTL_DAYS)


class PlanDraft(models.Model):
    """A proposed change: the whole proposed document, its diff against the version it was made
    from, why, and who or what proposed it. Open for `PLAN_DRAFT_TTL_DAYS` days."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        PENDING_APPROVAL = "pending_approval", "Waiting for a second approver"
        PUBLISHED = "published", "Published"
        DISCARDED = "discarded", "Discarded"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"

    class Source(models.TextChoices):
        FORM = "form", "Plan form"
        TEXT = "text", "Plain text, read by the model"
        TEXT_RULES = "text_rules", "Plain text, read by the rule-based parser"
        API = "api", "JSON API"
        TUTOR = "tutor", "Tutor chat (model)"
        TUTOR_RULES = "tutor_rules", "Tutor chat (rule-based)"

    ACTIVE = (State.OPEN, State.PENDING_APPROVAL)

    plan = models.ForeignKey(StudyPlan, on_delete=models.CASCADE, related_name="drafts")
    base_number = models.PositiveIntegerField(help_text="The published version this draft was made from.")
    document = models.JSONField()
    diff = models.JSONField()
    rationale = models.TextField()
    source = models.CharField(max_length=16, choices=Source.choices)
    source_text = models.TextField(blank=True, help_text="The plain text the proposal was read from.")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=20, choices=State.choices, default=State.OPEN)
    high_impact = models.JSONField(default=list, help_text="Why this change needs a second approver.")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(default=_draft_expiry)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "expires_at"], name="plan_draft_state_expiry"),
            models.Index(fields=["plan", "state"], name="plan_draft_plan_state"),
        ]

    def __str__(self) -> str:
        return f"draft {self.pk} of {self.plan}"

    def audit_scope(self) -> dict[str, Any]:
        return {"organisation_id": self.plan.student.organisation_id, "student_id": self.plan.student_id}

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE and self.expires_at > timezone.now()


class Approval(models.Model):
    """A high-impact draft waiting for a second person's decision."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    draft = models.OneToOneField(PlanDraft, on_delete=models.CASCADE, related_name="approval")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField()
    reasons = models.JSONField(default=list)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["requested_at"]
        indexes = [models.Index(fields=["organisation", "state", "requested_at"], name="approval_queue")]

    def __str__(self) -> str:
        return f"approval of {self.draft}: {self.state}"

    def audit_scope(self) -> dict[str, Any]:
        return {"organisation_id": self.organisation_id, "student_id": self.draft.plan.student_id}
