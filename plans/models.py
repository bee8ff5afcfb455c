"""Study plans: one per student, immutable published versions, drafts that propose a change, and
the approvals that high-impact changes wait in."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import models
from django.db.models import Q
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


# The learner's side: what they want to learn (an intent) and the plan of each day.


class LearnerIntent(models.Model):
    """What a learner wants to learn, from the learner app (`/api/orchestrator/intent.sync`). One
    is active per learner; a change makes a new one and keeps the older, inactive."""

    class Depth(models.TextChoices):
        SURFACE = "surface", "Surface"
        INFORMED = "informed", "Informed"
        EXPERT = "expert", "Expert"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="intents")
    topic = models.CharField(max_length=200)
    depth = models.CharField(max_length=16, choices=Depth.choices)
    end_goal = models.CharField(max_length=500)
    time_per_day_min = models.PositiveSmallIntegerField()
    user_tz = models.CharField(max_length=64, help_text="The learner's IANA time zone.")
    meta = models.JSONField(default=dict, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["student", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["student"], condition=Q(active=True), name="one_active_intent"),
            models.CheckConstraint(
                condition=Q(time_per_day_min__gte=5, time_per_day_min__lte=480),
                name="intent_minutes_5_to_480",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.student} wants {self.topic} ({self.depth})"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.user_tz)

    def audit_scope(self) -> dict[str, Any]:
        return {"organisation_id": self.student.organisation_id, "student_id": self.student_id}


class DailySession(models.Model):
    """One day of a learner's programme: the plan made for it (`day.run`) and how it went
    (`day.done`). Week 1, day 1 is the day of the learner's first intent, in their time zone."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="daily_sessions")
    intent = models.ForeignKey(LearnerIntent, on_delete=models.PROTECT, related_name="sessions")
    week = models.PositiveSmallIntegerField()
    day = models.PositiveSmallIntegerField()
    date = models.DateField(help_text="The programme day in the learner's time zone.")
    plan_md = models.TextField()
    plan_json_summary = models.JSONField(default=dict)
    plan_source = models.CharField(
        max_length=16, help_text="Who composed the plan: 'model' or 'rules' (no model, or it failed)."
    )
    degraded_mode = models.BooleanField(default=False)
    degraded_reasons = models.JSONField(default=list, blank=True, help_text="Why, agent by agent.")
    cache_hits = models.PositiveSmallIntegerField(default=0)
    cache_misses = models.PositiveSmallIntegerField(default=0)
    signal_quality = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    refreshed_at = models.DateTimeField(null=True, blank=True, help_text="When force_refresh rebuilt it.")
    completion_time_min = models.PositiveSmallIntegerField(null=True, blank=True)
    confidence = models.PositiveSmallIntegerField(null=True, blank=True, help_text="1 (low) to 10 (high).")
    notes = models.TextField(blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    next_day_hint = models.TextField(blank=True)

    class Meta:
        ordering = ["student", "-date"]
        constraints = [
            models.UniqueConstraint(fields=["student", "week", "day"], name="one_session_per_day"),
            models.CheckConstraint(condition=Q(day__gte=1, day__lte=7), name="session_day_1_to_7"),
            models.CheckConstraint(condition=Q(week__gte=1), name="session_week_from_1"),
            models.CheckConstraint(
                condition=Q(confidence__isnull=True) | Q(confidence__gte=1, confidence__lte=10),
                name="session_confidence_1_to_10",
            ),
        ]
        indexes = [models.Index(fields=["student", "-date"], name="session_student_recent")]

    def __str__(self) -> str:
        return f"week {self.week} day {self.day} of {self.student}"

    def audit_scope(self) -> dict[str, Any]:
        return {"organisation_id": self.student.organisation_id, "student_id": self.student_id}

    @property
    def is_completed(self) -> bool:
        return self.completed_at is not None
