"""The unified activity log: one row per action, human or automated."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ActivityEvent(models.Model):
    """Who did what to which target, when, why, with what outcome.

    Targets are stored as (type, id) plus plain student and class ids, so this app imports no
    other app and a row survives whatever happens to the rows it describes.
    """

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        PENDING = "pending", "Pending"

    class Source(models.TextChoices):
        PAGE = "page", "Page"
        API = "api", "API"
        ADMIN = "admin", "Admin"
        WORKER = "worker", "Worker"
        COMMAND = "command", "Command"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"

    occurred_at = models.DateTimeField(db_index=True)
    organisation_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    # No database constraint: events outlive the users they name, and the log is never rewritten.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, help_text="Username, or system:<component> for automation.")
    verb = models.CharField(
        max_length=80, db_index=True, help_text="Dotted action name, e.g. alert.acknowledged."
    )
    target_type = models.CharField(max_length=80, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    student_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    class_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    why = models.TextField(blank=True, help_text="Rationale or a controlled reason code.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUCCEEDED)
    source = models.CharField(max_length=16, choices=Source.choices)
    correlation_id = models.CharField(max_length=64, db_index=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["organisation_id", "-occurred_at", "-id"], name="audit_org_time"),
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
        ]

    def __str__(self) -> str:
        target = f"{self.target_type}:{self.target_id}"
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.actor_name} {self.verb} {target}"
