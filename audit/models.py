"""The unified activity log: one row per action, human or automated."""

from __future__ import annotations

from typing import Any, NoReturn

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove an activity event through the ORM."""


def _refuse(*args: Any, **kwargs: Any) -> NoReturn:
    raise AppendOnlyError("the activity log is append-only: events are never updated or deleted")


class ActivityEventQuerySet(models.QuerySet):
    update = _refuse
    delete = _refuse
    bulk_update = _refuse
    bulk_create = _refuse  # events are chained through audit.services.record_events
    update_or_create = _refuse

    def append_chained(self, events: list[ActivityEvent]) -> list[ActivityEvent]:
        """The one INSERT of `audit.services.record_events`, after it has chained the events
        (seq and hash) under their heads' locks; nothing else may call it."""
        return super().bulk_create(events)


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
    student_id = models.BigIntegerField(null=True, blank=True)
    class_id = models.BigIntegerField(null=True, blank=True)
    why = models.TextField(blank=True, help_text="Rationale or a controlled reason code.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUCCEEDED)
    source = models.CharField(max_length=16, choices=Source.choices)
    correlation_id = models.CharField(max_length=64, db_index=True)
    details = models.JSONField(default=dict, blank=True)
    # Tamper evidence (audit.chain): position in the organisation's chain and the hashes.
    seq = models.BigIntegerField(help_text="Position in its organisation's hash chain, from 1.")
    key_id = models.CharField(
        max_length=32, help_text="The chain key its digest and hash are under (AUDIT_CHAIN_KEY_ID)."
    )
    personal_digest = models.CharField(
        max_length=64, help_text="HMAC-SHA256 of actor name, rationale, details under the chain key."
    )
    hash = models.CharField(
        max_length=64, help_text="HMAC-SHA256 under the chain key over this event and the previous hash."
    )
    redacted_at = models.DateTimeField(
        null=True, blank=True, help_text="When retention blanked the personal details."
    )

    objects = ActivityEventQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["organisation_id", "-occurred_at", "-id"], name="audit_org_time"),
            models.Index(
                fields=["organisation_id", "status", "-occurred_at", "-id"], name="audit_org_status"
            ),
            models.Index(fields=["student_id", "-occurred_at", "-id"], name="audit_student_time"),
            models.Index(fields=["class_id", "-occurred_at", "-id"], name="audit_class_time"),
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
        ]
        constraints = [
            models.UniqueConstraint(Coalesce("organisation_id", 0), "seq", name="audit_chain_seq_unique"),
        ]

    def __str__(self) -> str:
        target = f"{self.target_type}:{self.target_id}"
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.actor_name} {self.verb} {target}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            _refuse()
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()


class ChainHead(models.Model):
    """The newest link of one organisation's chain (organisation 0: events of no organisation).

    Only ever moved forward, once per append (on PostgreSQL a trigger refuses anything else).
    """

    organisation_id = models.BigIntegerField(primary_key=True)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"chain of organisation {self.organisation_id} at seq {self.seq}"


class Checkpoint(models.Model):
    """A signed copy of one organisation's chain head, taken daily and sent to its notification
    channels, so that the head is also known outside the database (audit.checkpoints)."""

    organisation_id = models.BigIntegerField()
    seq = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    taken_at = models.DateTimeField()
    key_id = models.CharField(max_length=32)
    signature = models.CharField(max_length=64, help_text="HMAC-SHA256 under the chain key's checkpoint key.")

    class Meta:
        ordering = ["-taken_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["organisation_id", "seq"], name="checkpoint_once_per_head")
        ]

    def __str__(self) -> str:
        return f"checkpoint of organisation {self.organisation_id} at seq {self.seq}"


class Failure(models.Model):
    """A failed action someone must look at: one open row per failing thing, however often it fails.

    The failed events themselves stay in the log; this row tracks what the log cannot (it is
    append-only): whether the failure is still open, who resolved it, and how often it recurred.
    """

    class Severity(models.TextChoices):
        HIGH = "high", "High"
        NORMAL = "normal", "Normal"

    class State(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    organisation_id = models.BigIntegerField(null=True, blank=True)
    fingerprint = models.CharField(max_length=200, help_text="What failed: verb and target.")
    verb = models.CharField(max_length=80)
    target_type = models.CharField(max_length=80, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    student_id = models.BigIntegerField(null=True, blank=True)
    class_id = models.BigIntegerField(null=True, blank=True)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.NORMAL)
    summary = models.TextField(help_text="What went wrong, from the newest failed event.")
    remediation = models.TextField(help_text="What to do about it.")
    escalation = models.TextField(help_text="Who takes it further if the remediation does not work.")
    occurrences = models.PositiveIntegerField(default=1)
    first_event = models.ForeignKey(
        ActivityEvent, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    last_event = models.ForeignKey(
        ActivityEvent, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    resolution_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        indexes = [
            models.Index(fields=["organisation_id", "state", "-last_seen_at"], name="failure_org_state")
        ]
        constraints = [
            models.UniqueConstraint(
                Coalesce("organisation_id", 0),
                "fingerprint",
                condition=models.Q(state="open"),
                name="failure_one_open_per_fingerprint",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_severity_display()} failure: {self.fingerprint} ({self.get_state_display()})"


class NotificationSettings(models.Model):
    """Where an organisation's audit notifications go: email recipients and a Slack incoming webhook."""

    organisation_id = models.BigIntegerField(primary_key=True)
    email_recipients = models.TextField(
        blank=True, help_text="Comma-separated addresses; empty sends no email."
    )
    slack_webhook_url = models.URLField(
        blank=True, help_text="A Slack incoming-webhook URL; empty sends nothing."
    )
    notify_high_failures = models.BooleanField(default=True)
    notify_pending_approvals = models.BooleanField(default=True)

    class Meta:
        verbose_name_plural = "notification settings"

    def __str__(self) -> str:
        return f"notifications of organisation {self.organisation_id}"

    @property
    def recipients(self) -> list[str]:
        return [address.strip() for address in self.email_recipients.split(",") if address.strip()]


class NotificationDelivery(models.Model):
    """One item (a failure, a pending approval) on one channel: claimed once, so it is sent once."""

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        SLACK = "slack", "Slack"

    class Status(models.TextChoices):
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    organisation_id = models.BigIntegerField()
    item_key = models.CharField(max_length=120, help_text="e.g. failure:12 or approval:plans.draft:7")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    claimed_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "notification deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["organisation_id", "item_key", "channel"], name="notification_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.item_key} by {self.channel}: {self.status}"
