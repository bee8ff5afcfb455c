"""Retention: events older than AUDIT_RETENTION_DAYS keep what happened but lose who and why.

The actor name, the rationale and the details of an expired event are blanked; ids, verb, target,
status, time and the chain stay, so the log still proves what happened and `verify_audit` still
passes (the hash covers the personal columns through a digest that redaction keeps). Field history
rows of django-auditlog older than the cut-off are deleted, since their diffs are personal data too.
On PostgreSQL the append-only trigger lets this UPDATE through only with `audit.redaction` set for
the transaction, and only when nothing but the personal columns changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from auditlog.models import LogEntry
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit import chain
from audit.models import ActivityEvent
from audit.services import record

BATCH = 5000


@dataclass(frozen=True)
class Redaction:
    cutoff: datetime
    events: int
    field_history: int


def retention_cutoff(now: datetime | None = None) -> datetime | None:
    days = settings.AUDIT_RETENTION_DAYS
    return None if days <= 0 else (now or timezone.now()) - timedelta(days=days)


def redact_before(cutoff: datetime, *, actor_name: str = "system:retention") -> Redaction:
    """Blank the personal details of every event before `cutoff`, in batches; record one event."""
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    details = chain.canonical(chain.REDACTED_DETAILS).decode()
    redacted = 0
    while True:
        with transaction.atomic():
            ids = list(
                ActivityEvent.objects.filter(occurred_at__lt=cutoff, redacted_at__isnull=True)
                .order_by("id")
                .values_list("id", flat=True)[:BATCH]
            )
            if not ids:
                break
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    cursor.execute("SET LOCAL audit.redaction = 'on'")
                cursor.execute(
                    "UPDATE audit_activityevent SET actor_name = %s, "
                    "why = CASE WHEN why = '' THEN '' ELSE %s END, "
                    f"details = %s{cast}, redacted_at = %s WHERE id IN ({', '.join(['%s'] * len(ids))})",
                    [chain.REDACTED, chain.REDACTED, details, timezone.now(), *ids],
                )
                redacted += cursor.rowcount
    with transaction.atomic():
        history, _ = LogEntry.objects.filter(timestamp__lt=cutoff).delete()
        record(
            verb="audit.redacted",
            actor_name=actor_name,
            why=f"retention: personal details of events before {cutoff:%Y-%m-%d %H:%M} UTC blanked",
            details={
                "cutoff": cutoff.isoformat(),
                "events_redacted": redacted,
                "field_history_deleted": history,
                "retention_days": settings.AUDIT_RETENTION_DAYS,
            },
        )
    return Redaction(cutoff=cutoff, events=redacted, field_history=history)
