"""Live class sessions (seeds/004_*, phases 1 and 2): the session, what the platform reported of
it, who is in it, its engagement score series and the anomalies found in that series.

Class-level figures only: a participant row says whether someone is present and when they were
last active, never how attentive they are. The models live here and are registered with the
`classroom` app (imported by `classroom.models`).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class LiveSession(models.Model):
    class Status(models.TextChoices):
        LIVE = "live", "Live"
        ENDED = "ended", "Ended"

    organisation = models.ForeignKey(
        "classroom.Organisation", on_delete=models.CASCADE, related_name="live_sessions"
    )
    school_class = models.ForeignKey(
        "classroom.SchoolClass", on_delete=models.CASCADE, related_name="live_sessions"
    )
    topic = models.CharField(max_length=200)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.LIVE)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    opened_by_platform = models.BooleanField(default=False)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="live", ended_at__isnull=True) | Q(status="ended", ended_at__isnull=False),
                name="live_session_ended_at_iff_ended",
            ),
        ]
        indexes = [models.Index(fields=["status", "started_at"], name="live_session_status")]

    def __str__(self) -> str:
        return f"{self.school_class} · {self.topic}"

    def audit_scope(self) -> dict[str, int | None]:
        return {"organisation_id": self.organisation_id, "class_id": self.school_class_id}

    @property
    def is_live(self) -> bool:
        return self.status == self.Status.LIVE


class LiveEvent(models.Model):
    """One event the platform reported, stored once per (session, event id) however often it is
    sent. Expires after LIVE_SIGNAL_RETENTION_HOURS; the ticks keep the class-level figures."""

    class Type(models.TextChoices):
        CHAT = "chat", "Chat message"
        JOIN = "join", "Joined"
        LEAVE = "leave", "Left"
        POLL_VOTE = "poll_vote", "Poll vote"
        POLL_CLOSED = "poll_closed", "Poll closed"
        REACTION = "reaction", "Reaction"

    session = models.ForeignKey(LiveSession, on_delete=models.CASCADE, related_name="events")
    event_id = models.CharField(max_length=100)
    type = models.CharField(max_length=16, choices=Type.choices)
    at = models.DateTimeField()
    participant = models.CharField(max_length=64, blank=True, help_text="The platform's id of who did it.")
    data = models.JSONField(
        default=dict, blank=True, help_text="poll_id and option, a leave's reason, a chat's text."
    )
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "event_id"], name="live_event_once"),
        ]
        indexes = [
            models.Index(fields=["session", "at"], name="live_event_session_at"),
            models.Index(fields=["received_at"], name="live_event_received"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id} at {self.at:%H:%M:%S}"


class LiveParticipant(models.Model):
    """Who is in the session now, kept up to date as events arrive (the tick reads this instead of
    replaying every join and leave). A leave marked `disconnect` by the platform counts as an
    exit only when the participant is not back within LIVE_DISCONNECT_GRACE_SECONDS."""

    session = models.ForeignKey(LiveSession, on_delete=models.CASCADE, related_name="participants")
    participant = models.CharField(max_length=64)
    present = models.BooleanField(default=True)
    joined_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)
    left_reason = models.CharField(max_length=16, blank=True)
    last_event_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "participant"], name="live_participant_once"),
        ]

    def __str__(self) -> str:
        return f"{self.participant} ({'present' if self.present else 'gone'})"


class LiveTick(models.Model):
    """The session's engagement every LIVE_TICK_SECONDS: the score (0-100) over the last
    LIVE_WINDOW_SECONDS, its category and the components it was made from."""

    session = models.ForeignKey(LiveSession, on_delete=models.CASCADE, related_name="ticks")
    at = models.DateTimeField()
    score = models.FloatField()
    category = models.CharField(max_length=16)
    present = models.PositiveIntegerField()
    signals = models.JSONField(
        default=dict, help_text="chat_per_min, active_users, poll_participation, reactions_per_min, leaves."
    )
    components = models.JSONField(default=dict, help_text="Each weighted part of the score, 0 to 1.")

    class Meta:
        ordering = ["session", "at"]
        constraints = [models.UniqueConstraint(fields=["session", "at"], name="live_tick_once")]

    def __str__(self) -> str:
        return f"{self.score:.0f} ({self.category}) at {self.at:%H:%M:%S}"


class LiveAnomaly(models.Model):
    class Type(models.TextChoices):
        SUDDEN_DROP = "SUDDEN_DROP", "Sudden drop"
        GRADUAL_DECLINE = "GRADUAL_DECLINE", "Gradual decline"
        MASS_EXIT = "MASS_EXIT", "Mass exit"
        LOW_ENGAGEMENT = "LOW_ENGAGEMENT", "Low engagement"

    class Severity(models.TextChoices):
        WARNING = "WARNING", "Warning"
        CRITICAL = "CRITICAL", "Critical"

    session = models.ForeignKey(LiveSession, on_delete=models.CASCADE, related_name="anomalies")
    type = models.CharField(max_length=16, choices=Type.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    at = models.DateTimeField()
    description = models.CharField(max_length=300)
    evidence = models.JSONField(default=dict, help_text="The numbers that triggered it.")
    cleared_at = models.DateTimeField(
        null=True, blank=True, help_text="When the class came back above the type's level; open until then."
    )

    class Meta:
        ordering = ["session", "at"]
        indexes = [models.Index(fields=["session", "type", "at"], name="live_anomaly_session_type")]

    def __str__(self) -> str:
        return f"{self.get_type_display()} ({self.severity.lower()}) at {self.at:%H:%M:%S}"


class ConductorLease(models.Model):
    """Which conductor process ticks a live session, until when. A conductor renews its leases on
    every tick; a lease past `expires_at` is free for any other conductor to take."""

    session = models.OneToOneField(
        LiveSession, on_delete=models.CASCADE, primary_key=True, related_name="lease"
    )
    holder = models.CharField(max_length=100)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"session {self.session_id} held by {self.holder or 'nobody'} until {self.expires_at:%H:%M:%S}"
