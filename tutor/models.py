from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class WorkerHeartbeat(models.Model):
    """The last time a django-q2 worker ran the heartbeat task, or the dispatcher process ran a
    pass (its row is `dispatcher_cluster()`); /healthz reports their age."""

    cluster = models.CharField(max_length=100, primary_key=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.cluster} at {self.beat_at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def beat(cls, cluster: str) -> None:
        """Idempotent: an upsert of one row."""
        cls.objects.update_or_create(cluster=cluster, defaults={"beat_at": timezone.now()})

    @staticmethod
    def dispatcher_cluster() -> str:
        """The dispatcher processes' row, beside the django-q2 cluster's."""
        return f"{settings.Q_CLUSTER['name']}:dispatcher"


class ChatMessage(models.Model):
    """One turn of a teacher's conversation with the tutor about a student."""

    class Role(models.TextChoices):
        TEACHER = "teacher", "Teacher"
        TUTOR = "tutor", "Tutor"

    student = models.ForeignKey("classroom.Student", on_delete=models.CASCADE, related_name="chat_messages")
    teacher = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=8, choices=Role.choices)
    text = models.TextField()
    source = models.CharField(max_length=8, blank=True, help_text="model or fallback, for the tutor's turns.")
    fallback_reason = models.CharField(max_length=300, blank=True)
    draft = models.ForeignKey(
        "plans.PlanDraft", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    llm_event_id = models.BigIntegerField(null=True, blank=True, help_text="The model call's audit event.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["student", "teacher", "created_at"], name="chat_student_teacher")]

    def __str__(self) -> str:
        return f"{self.get_role_display()} on {self.student}: {self.text[:40]}"


class ScheduledTask(models.Model):
    """A proactive message for one learner: recurring (a cron expression in the task's time zone)
    or once (`run_at`). The dispatcher picks rows whose indexed `next_run_at` has come."""

    class Kind(models.TextChoices):
        REMINDER = "reminder", "Reminder"
        CHECK_IN = "check_in", "Check-in"
        NUDGE = "nudge", "Nudge"
        WEEKLY_REPORT = "weekly_report", "Weekly report"
        ASSIGNMENT = "assignment", "Assignment"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        CANCELLED = "cancelled", "Cancelled"
        DONE = "done", "Done"
        # A one-off whose sends kept failing until its deadline (PROACTIVE_ONE_OFF_DEADLINE_HOURS).
        UNDELIVERED = "undelivered", "Not delivered"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    student = models.ForeignKey("classroom.Student", on_delete=models.CASCADE, related_name="scheduled_tasks")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    cron = models.CharField(max_length=100, blank=True, help_text="Five fields, in the task's time zone.")
    run_at = models.DateTimeField(null=True, blank=True, help_text="For a one-off task.")
    time_zone = models.CharField(max_length=64, default="UTC")
    intent = models.TextField(help_text="What to say or ask, in the teacher's words.")
    pattern = models.ForeignKey(
        "ObservedPattern", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["next_run_at", "pk"]
        indexes = [models.Index(fields=["status", "next_run_at"], name="task_due")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.student} ({self.status})"

    def audit_scope(self) -> dict[str, object]:
        return {"organisation_id": self.student.organisation_id, "student_id": self.student_id}

    @property
    def is_retrying(self) -> bool:
        """A one-off whose send failed, due again for another attempt: a one-off is done once it is
        claimed, so an active one that ran before is waiting for its retry."""
        return not self.cron and self.status == self.Status.ACTIVE and self.last_run_at is not None


class TaskRun(models.Model):
    """One due time of a task, claimed once: (task, scheduled_for) is unique."""

    class Status(models.TextChoices):
        CLAIMED = "claimed", "Claimed"
        SENT = "sent", "Sent"
        SHADOW = "shadow", "Decided in shadow mode (not sent)"
        SKIPPED = "skipped", "Skipped by an automation control"
        SUPPRESSED = "suppressed", "Suppressed for this learner"
        PENDING_APPROVAL = "pending_approval", "Waiting for approval"
        FAILED = "failed", "Failed"
        UNDELIVERED = "undelivered", "Not delivered: retries gave up"

    task = models.ForeignKey(ScheduledTask, on_delete=models.CASCADE, related_name="runs")
    scheduled_for = models.DateTimeField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CLAIMED)
    output = models.TextField(blank=True, help_text="The message composed (sent, or not in shadow mode).")
    rationale = models.TextField(blank=True)
    error = models.TextField(blank=True)
    llm_event_id = models.BigIntegerField(null=True, blank=True)
    dispatch = models.ForeignKey(
        "classroom.DispatchLog", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Sends to the platform: a one-off's run is sent again after a failed send."
    )

    class Meta:
        ordering = ["-scheduled_for"]
        constraints = [models.UniqueConstraint(fields=["task", "scheduled_for"], name="one_run_per_due_time")]

    def __str__(self) -> str:
        return f"run of {self.task} at {self.scheduled_for:%Y-%m-%d %H:%M}: {self.status}"

    def audit_scope(self) -> dict[str, object]:
        return self.task.audit_scope()


class ObservedPattern(models.Model):
    """A regularity the detector found in a learner's activity, with the evidence for it."""

    student = models.ForeignKey("classroom.Student", on_delete=models.CASCADE, related_name="patterns")
    kind = models.CharField(max_length=40)
    description = models.CharField(max_length=300)
    evidence = models.JSONField(default=dict)
    confidence = models.FloatField()
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["-last_seen"]
        constraints = [models.UniqueConstraint(fields=["student", "kind"], name="one_pattern_per_kind")]

    def __str__(self) -> str:
        return f"{self.kind} of {self.student}"


class EngagementEvent(models.Model):
    """How a learner answered a suggestion: what calibration learns from."""

    class Response(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        DISMISSED = "dismissed", "Dismissed"
        IGNORED = "ignored", "Ignored"

    student = models.ForeignKey("classroom.Student", on_delete=models.CASCADE, related_name="engagement")
    suggestion_type = models.CharField(max_length=16)
    response = models.CharField(max_length=12, choices=Response.choices)
    run = models.ForeignKey(TaskRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["student", "suggestion_type", "at"], name="engagement_recent")]

    def __str__(self) -> str:
        return f"{self.suggestion_type} {self.response} by {self.student}"


class ProactivenessSettings(models.Model):
    class Level(models.TextChoices):
        OFF = "off", "Off"
        LOW = "low", "Low"
        NORMAL = "normal", "Normal"
        HIGH = "high", "High"

    student = models.OneToOneField(
        "classroom.Student", on_delete=models.CASCADE, related_name="proactiveness"
    )
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.NORMAL)
    suppressed_types = models.JSONField(default=list)
    calibration_reset = models.JSONField(
        default=dict,
        help_text="Per type, when its suppression was taken back: older dismissals no longer count.",
    )
    paused = models.BooleanField(default=False, help_text="Per-student pause of every proactive message.")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "proactiveness settings"

    def __str__(self) -> str:
        return f"proactiveness of {self.student}: {self.level}"


class AutomationSwitch(models.Model):
    """The switches: the kill switch (nothing is sent) and shadow mode (decide and log, never send),
    global to an organisation's automation, or (no organisation) to every organisation, flipped by
    the operators. Read by the dispatcher at every task, so a flip applies to the next due task."""

    class Name(models.TextChoices):
        KILL_SWITCH = "kill_switch", "Kill switch"
        SHADOW_MODE = "shadow_mode", "Shadow mode"

    organisation = models.ForeignKey(
        "classroom.Organisation", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    name = models.CharField(max_length=16, choices=Name.choices)
    on = models.BooleanField(default=False)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "name"],
                condition=Q(organisation__isnull=False),
                name="switch_per_org",
            ),
            models.UniqueConstraint(
                fields=["name"], condition=Q(organisation__isnull=True), name="switch_everywhere"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_name_display()}: {'on' if self.on else 'off'}"


class ToolProposal(models.Model):
    """A tool call of the tutor model that would change what a learner receives (a schedule, its
    state, their proactiveness, a dismissal that counts towards suppression), held until a
    teacher confirms it in the chat, which runs the service as that teacher, or dismisses it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for your confirmation"
        CONFIRMED = "confirmed", "Confirmed"
        DISMISSED = "dismissed", "Dismissed"
        FAILED = "failed", "Could not be done"

    student = models.ForeignKey("classroom.Student", on_delete=models.CASCADE, related_name="tool_proposals")
    message = models.ForeignKey(
        ChatMessage, on_delete=models.CASCADE, related_name="proposals", help_text="The tutor's answer."
    )
    tool = models.CharField(max_length=40)
    input = models.JSONField(help_text="The tool call's input, validated against its schema.")
    description = models.TextField(help_text="What confirming will do, in the teacher's words.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True, help_text="What the service returned on confirmation.")
    error = models.TextField(blank=True, help_text="Why confirming failed; nothing was changed.")

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["student", "status"], name="proposal_student_status")]

    def __str__(self) -> str:
        return f"{self.tool} for {self.student} ({self.status})"

    def audit_scope(self) -> dict[str, object]:
        return {"organisation_id": self.student.organisation_id, "student_id": self.student_id}


class AgentSignal(models.Model):
    """The orchestrator's cache of one agent's answer for one learner (`clo`, `alex`, `ta`,
    `socratic`), with its ETag. Fresh for the agent's window after it was last confirmed; a stale
    one is revalidated with If-None-Match, and used as it is when the agent fails."""

    student = models.ForeignKey("classroom.Student", on_delete=models.CASCADE, related_name="agent_signals")
    agent = models.CharField(max_length=16)
    data = models.JSONField(default=dict)
    etag = models.CharField(max_length=200, blank=True)
    fetched_at = models.DateTimeField(help_text="When this answer was first received.")
    checked_at = models.DateTimeField(help_text="When the agent last confirmed it (a 200 or a 304).")
    last_error = models.CharField(max_length=300, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["student", "agent"], name="one_signal_per_agent")]

    def __str__(self) -> str:
        return f"{self.agent} for {self.student}"


class RateBucket(models.Model):
    """A token bucket (GCRA) kept in the database so that every web process shares it: `tat` is
    the theoretical arrival time, in seconds since the epoch, of the next request that conforms."""

    key = models.CharField(max_length=200, primary_key=True)
    tat = models.FloatField()

    def __str__(self) -> str:
        return self.key
