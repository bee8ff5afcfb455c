"""People, classes and the platform mirrors the dashboard reads."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import is_password_usable
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.signals import pre_save
from django.dispatch import receiver
from django.utils import timezone


class Organisation(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    alert_thresholds = models.JSONField(
        default=dict,
        blank=True,
        help_text='Overrides of settings.ALERT_THRESHOLDS, e.g. {"stalled_window_days": 21}.',
    )
    live_secret = models.CharField(
        max_length=200,
        blank=True,
        help_text="The HMAC-SHA256 key the platform signs this organisation's live-session signals "
        "with (X-Platform-Signature); empty refuses them.",
    )
    live_settings = models.JSONField(
        default=dict,
        blank=True,
        help_text='Overrides of the live engagement score\'s settings, e.g. {"weights": {"chat": 0.4}}.',
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def audit_scope(self) -> dict[str, int | None]:
        return {"organisation_id": self.pk}

    def thresholds(self) -> dict[str, Any]:
        """The alert thresholds in force: the settings' defaults with this organisation's overrides."""
        return {**settings.ALERT_THRESHOLDS, **(self.alert_thresholds or {})}

    def clean(self) -> None:
        defaults = settings.ALERT_THRESHOLDS
        if not isinstance(self.alert_thresholds, dict):
            raise ValidationError({"alert_thresholds": "must be an object of threshold names to numbers"})
        errors = []
        for key, value in self.alert_thresholds.items():
            if key not in defaults:
                errors.append(f"unknown threshold {key!r}; known: {', '.join(sorted(defaults))}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                errors.append(f"{key} must be a number of zero or more; got {value!r}")
        if errors:
            raise ValidationError({"alert_thresholds": errors})


class User(AbstractUser):
    class Role(models.TextChoices):
        TEACHER = "teacher", "Teacher"
        ORG_ADMIN = "org_admin", "Organisation admin"
        COMPLIANCE = "compliance", "Compliance"
        LEARNER = "learner", "Learner"
        SERVICE = "service", "Service (learner app)"

    organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.PROTECT, related_name="users"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.TEACHER)

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username

    @property
    def is_staff_member(self) -> bool:
        """Teachers, org admins and compliance staff use the console; learners and service
        accounts (`create_api_token --service`) use the API."""
        return self.is_superuser or self.role not in (self.Role.LEARNER, self.Role.SERVICE)

    @property
    def can_act_on_alerts(self) -> bool:
        return self.is_superuser or self.role in (self.Role.TEACHER, self.Role.ORG_ADMIN)


class SchoolClass(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="classes")
    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=100, blank=True)
    platform_id = models.CharField(max_length=64, help_text="The class's id on the learning platform.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    teachers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="TeacherAssignment", related_name="teaching_classes"
    )
    students = models.ManyToManyField("Student", through="Enrollment", related_name="classes")

    class Meta:
        verbose_name = "class"
        verbose_name_plural = "classes"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "platform_id"], name="class_platform_id_unique"),
        ]

    def __str__(self) -> str:
        return self.name

    def audit_scope(self) -> dict[str, int | None]:
        return {"organisation_id": self.organisation_id, "class_id": self.pk}


class Student(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="students")
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)
    platform_id = models.CharField(max_length=64, help_text="The learner's id on the learning platform.")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="student_profile",
        help_text="The learner's own login, if they have one.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["last_name", "first_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "platform_id"], name="student_platform_id_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.full_name

    def audit_scope(self) -> dict[str, int | None]:
        return {"organisation_id": self.organisation_id, "student_id": self.pk}

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class Enrollment(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        WITHDRAWN = "withdrawn", "Withdrawn"

    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="enrollments")
    school_class = models.ForeignKey(SchoolClass, on_delete=models.CASCADE, related_name="enrollments")
    enrolled_on = models.DateField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["student", "school_class"], name="enrollment_unique"),
        ]
        indexes = [models.Index(fields=["school_class", "status"], name="enrollment_class_status")]

    def __str__(self) -> str:
        return f"{self.student} in {self.school_class}"

    def audit_scope(self) -> dict[str, int | None]:
        return {
            "organisation_id": self.school_class.organisation_id,
            "student_id": self.student_id,
            "class_id": self.school_class_id,
        }


class TeacherAssignment(models.Model):
    class Role(models.TextChoices):
        LEAD = "lead", "Lead teacher"
        CO_TEACHER = "co_teacher", "Co-teacher"

    teacher = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="teacher_assignments"
    )
    school_class = models.ForeignKey(
        SchoolClass, on_delete=models.CASCADE, related_name="teacher_assignments"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.LEAD)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["teacher", "school_class"], name="teacher_assignment_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.teacher} teaches {self.school_class}"

    def audit_scope(self) -> dict[str, int | None]:
        return {"organisation_id": self.school_class.organisation_id, "class_id": self.school_class_id}

    def clean(self) -> None:
        teacher, school_class = self.teacher, self.school_class
        if teacher.organisation_id != school_class.organisation_id:
            raise ValidationError({"teacher": "the teacher belongs to another organisation than the class"})


# Platform mirrors: copies of the learning platform's data, written by the demo seed and by syncs.


class DailyPerformance(models.Model):
    """One learner-day on the platform. A day with no row is a day with no data."""

    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="daily_performance")
    date = models.DateField()
    study_minutes = models.PositiveIntegerField(default=0)
    mastery = models.FloatField(null=True, blank=True, help_text="0 to 1; empty when nothing was assessed.")
    confidence = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Self-reported at check-in, 1 (low) to 5 (high)."
    )
    checked_in = models.BooleanField(default=False)
    synced_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "daily performance"
        ordering = ["student", "-date"]
        constraints = [
            models.UniqueConstraint(fields=["student", "date"], name="daily_performance_unique"),
            models.CheckConstraint(
                condition=Q(mastery__isnull=True) | Q(mastery__gte=0, mastery__lte=1), name="mastery_0_to_1"
            ),
            models.CheckConstraint(
                condition=Q(confidence__isnull=True) | Q(confidence__gte=1, confidence__lte=5),
                name="confidence_1_to_5",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.student} on {self.date}"


class LearnerCheckIn(models.Model):
    """A learner's own rating of a day, from the learner app (day.done's confidence, 1 to 10, on
    the check-in scale of 1 to 5). The risk rules read it on days the platform has no rating;
    the platform's mirrors never overwrite it."""

    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="check_ins")
    date = models.DateField(help_text="The day in the learner's own time zone.")
    confidence = models.PositiveSmallIntegerField(help_text="1 (low) to 5 (high).")
    reported_at = models.DateTimeField()

    class Meta:
        ordering = ["student", "-date"]
        constraints = [
            models.UniqueConstraint(fields=["student", "date"], name="learner_check_in_unique"),
            models.CheckConstraint(
                condition=Q(confidence__gte=1, confidence__lte=5), name="check_in_confidence_1_to_5"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.student} rated {self.date} {self.confidence}/5"


class StudyPlanProgress(models.Model):
    """A study-plan milestone as the platform tracks it."""

    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="plan_progress")
    platform_id = models.CharField(max_length=64)
    title = models.CharField(max_length=200)
    due_on = models.DateField()
    completed_on = models.DateField(null=True, blank=True)
    synced_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "study plan progress"
        ordering = ["student", "due_on"]
        constraints = [
            models.UniqueConstraint(fields=["student", "platform_id"], name="plan_progress_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.student})"


class Assignment(models.Model):
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="assignments")
    school_class = models.ForeignKey(
        SchoolClass, null=True, blank=True, on_delete=models.SET_NULL, related_name="assignments"
    )
    platform_id = models.CharField(max_length=64)
    title = models.CharField(max_length=200)
    due_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["student", "due_at"]
        constraints = [
            models.UniqueConstraint(fields=["student", "platform_id"], name="assignment_unique"),
        ]
        indexes = [models.Index(fields=["student", "submitted_at", "due_at"], name="assignment_open_due")]

    def __str__(self) -> str:
        return f"{self.title} ({self.student})"


class DispatchLog(models.Model):
    """One attempt to send something (an assignment, a nudge) to the platform."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="dispatches")
    kind = models.CharField(max_length=32)
    idempotency_key = models.CharField(max_length=128, db_index=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempted_at = models.DateTimeField()

    class Meta:
        ordering = ["-attempted_at"]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key", "attempt"], name="dispatch_attempt_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.student} ({self.status})"


class StudentSyncState(models.Model):
    """When the platform mirrors of one student were last refreshed."""

    class Status(models.TextChoices):
        OK = "ok", "OK"
        FAILED = "failed", "Failed"

    student = models.OneToOneField(
        Student, on_delete=models.CASCADE, primary_key=True, related_name="sync_state"
    )
    last_synced_at = models.DateTimeField(null=True, blank=True, help_text="Last successful sync.")
    last_attempted_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=16, choices=Status.choices, blank=True)
    last_error = models.TextField(blank=True)
    cursor = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The platform's as-of time of the last successful sync; the next asks since.",
    )

    def __str__(self) -> str:
        return f"sync state of {self.student}"


class SyncRun(models.Model):
    """One sync of a student, a class or an organisation from the platform, with its progress."""

    class Scope(models.TextChoices):
        STUDENT = "student", "Student"
        CLASS = "class", "Class"
        ORGANISATION = "organisation", "Organisation"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        BUTTON = "button", "Refresh button"
        STALE = "stale", "Stale mirror"
        COMMAND = "command", "Command"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Partly failed"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="sync_runs")
    scope = models.CharField(max_length=16, choices=Scope.choices)
    school_class = models.ForeignKey(
        SchoolClass, null=True, blank=True, on_delete=models.CASCADE, related_name="sync_runs"
    )
    student = models.ForeignKey(
        Student, null=True, blank=True, on_delete=models.CASCADE, related_name="sync_runs"
    )
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    queued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    rows = models.JSONField(default=dict, blank=True, help_text="Rows upserted per mirror.")
    error = models.TextField(blank=True, help_text="What went wrong, for a failed or partly failed run.")
    hint = models.TextField(blank=True, help_text="What to do about it.")
    correlation_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-queued_at"]
        indexes = [
            models.Index(fields=["school_class", "-queued_at"], name="syncrun_class_recent"),
            models.Index(fields=["student", "-queued_at"], name="syncrun_student_recent"),
        ]

    def __str__(self) -> str:
        target = self.school_class or self.student or self.organisation
        return f"sync of {target} ({self.status})"

    def audit_scope(self) -> dict[str, int | None]:
        return {
            "organisation_id": self.organisation_id,
            "student_id": self.student_id,
            "class_id": self.school_class_id,
        }

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def percent(self) -> int:
        return int(100 * self.processed / self.total) if self.total else (0 if self.is_active else 100)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class SyncRunStudent(models.Model):
    """How one student fared in one sync run."""

    class Status(models.TextChoices):
        OK = "ok", "OK"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="students")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices)
    performance_rows = models.PositiveIntegerField(default=0)
    assignment_rows = models.PositiveIntegerField(default=0)
    milestone_rows = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    hint = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "student"], name="syncrun_student_unique")]

    def __str__(self) -> str:
        return f"{self.student} in {self.run}: {self.status}"


METRIC_LABELS = {
    "overdue_count": "Overdue assignments",
    "oldest_days_overdue": "Days the oldest is late",
    "titles": "Assignments",
    "min_count": "Alert from (count)",
    "mastery_from": "Mastery at start of window",
    "mastery_to": "Mastery now",
    "gain": "Change",
    "window_days": "Window (days)",
    "measured_days": "Days with a mastery reading",
    "min_gain": "Expected gain at least",
    "streak_days": "Low check-ins in a row",
    "since": "Since",
    "ratings": "Ratings (1–5)",
    "level": "Low means at or below",
    "min_streak": "Alert from (check-ins)",
}
_PERCENT_METRICS = {"mastery_from", "mastery_to"}
_POINTS_METRICS = {"gain", "min_gain"}


def _format_metric(key: str, value: Any) -> str:
    if key in _PERCENT_METRICS:
        return f"{value:.0%}"
    if key in _POINTS_METRICS:
        return f"{value * 100:+.1f} pts"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


class Alert(models.Model):
    """A risk signal on one student, with the numbers that raised it.

    At most one alert of each kind is active (open or acknowledged) per student; the recompute
    service opens, refreshes and auto-resolves them, teachers acknowledge and resolve them.
    """

    class Kind(models.TextChoices):
        OVERDUE_ASSIGNMENTS = "overdue_assignments", "Overdue assignments"
        STALLED_MASTERY = "stalled_mastery", "Stalled mastery"
        LOW_CONFIDENCE_STREAK = "low_confidence_streak", "Low-confidence streak"
        EXPIRING_DRAFT = "expiring_draft", "Expiring drafts"

    class State(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="alerts")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    severity = models.PositiveIntegerField(
        default=0, help_text="Higher is worse; orders the dashboard cards."
    )
    summary = models.CharField(max_length=255)
    metrics = models.JSONField(default=dict, help_text="The numbers that triggered the alert.")
    opened_at = models.DateTimeField()
    last_evaluated_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-severity", "-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["student", "kind"], condition=~Q(state="resolved"), name="one_active_alert_per_kind"
            ),
        ]
        indexes = [models.Index(fields=["organisation", "state", "kind"], name="alert_org_state_kind")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.student}"

    @property
    def is_active(self) -> bool:
        return self.state != self.State.RESOLVED

    @property
    def metric_items(self) -> list[tuple[str, str]]:
        """The triggering numbers in words a teacher reads, in the rule's order."""
        return [
            (METRIC_LABELS.get(key, key.replace("_", " ")), _format_metric(key, value))
            for key, value in self.metrics.items()
        ]

    @property
    def resolved_automatically(self) -> bool:
        return self.state == self.State.RESOLVED and self.resolved_by_id is None


class ApiTokenQuerySet(models.QuerySet):
    def active(self) -> ApiTokenQuerySet:
        """Tokens that still work: neither revoked nor past their expiry."""
        return self.in_state(ApiToken.State.ACTIVE)

    def in_state(self, state: str) -> ApiTokenQuerySet:
        """The tokens whose `ApiToken.state` is `state`, as a query."""
        if state == ApiToken.State.REVOKED:
            return self.filter(revoked_at__isnull=False)
        now = timezone.now()
        if state == ApiToken.State.EXPIRED:
            return self.filter(revoked_at__isnull=True, expires_at__lte=now)
        return self.filter(revoked_at__isnull=True, expires_at__gt=now)


class ApiToken(models.Model):
    """A bearer token for the JSON API (`manage.py create_api_token USERNAME`). Only its SHA-256
    is stored; the token itself is shown once. It works until it expires or is revoked (Admin →
    API tokens, `manage.py revoke_api_token`, or a change of its user's password)."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12, help_text="The token's first characters, to tell tokens apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        help_text="It stops working then: API_TOKEN_TTL_DAYS after it was made, or create_api_token --days."
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… of {self.user}"

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return self.State.REVOKED
        return self.State.ACTIVE if self.expires_at > timezone.now() else self.State.EXPIRED


@receiver(pre_save, sender=User)
def _password_change_revokes_api_tokens(
    sender: type[User], instance: User, raw: bool = False, update_fields: Any = None, **kwargs: Any
) -> None:
    """A new password, or none (password sign-in turned off), ends the user's API tokens: revoked
    before the password is written, in the caller's transaction (the admin's password page has
    one); without one, a failed save can leave tokens revoked, never a new password beside them.
    Here rather than in a signals module so that it is connected wherever the model is loaded,
    `manage.py changepassword` included."""
    if raw or instance._state.adding or (update_fields is not None and "password" not in update_fields):
        return
    # set_password() keeps the new password in `_password` until the save, as Django's own
    # password_changed() hook reads it; a sign-in that rehashes the same password clears it first.
    changed = instance._password is not None
    if not changed and not instance.has_usable_password():
        stored = User.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
        changed = is_password_usable(stored)
    if changed:
        # Imported here: the service module imports this one.
        from classroom.api_auth import api_token_revoke_all

        api_token_revoke_all(
            user=instance, why="revoked because the password changed", actor_name="system:auth"
        )


# Live sessions have a module of their own; importing them here registers them with this app.
from classroom.live.models import (  # noqa: E402, F401
    ConductorLease,
    LiveAnomaly,
    LiveEvent,
    LiveParticipant,
    LiveSession,
    LiveTick,
)
