"""Retention: events older than AUDIT_RETENTION_DAYS keep what happened but lose who and why.

The actor name, the rationale and the details of an expired event are blanked; ids, verb, target,
status, time and the chain stay, so the log still proves what happened and `verify_audit` still
passes (the hash covers the personal columns through a digest that redaction keeps). Field history
rows of django-auditlog older than the cut-off are deleted, since their diffs are personal data too.

Only events past the retention age may be blanked, and nothing may be with AUDIT_RETENTION_DAYS=0.
This service refuses a later cut-off; on PostgreSQL the append-only trigger refuses it too, reading
the age from `audit_retention_days()`, a function `migrate` re-creates from the setting after every
run (so changing AUDIT_RETENTION_DAYS needs a `migrate`); and `verify_audit` names a redacted event
younger than the cut-off of every authentic `audit.redacted` event, on SQLite too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from auditlog.models import LogEntry
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, models, transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone

from audit import chain
from audit.models import ActivityEvent
from audit.services import record

BATCH = 5000
# The database's own cut-off, in the same transaction as its trigger's check.
DATABASE_CUTOFF = "now() - make_interval(days => audit_retention_days())"


class RetentionRefusedError(Exception):
    """A redaction the retention rules do not allow; the message says why, in one line."""


@dataclass(frozen=True)
class Redaction:
    cutoff: datetime
    events: int
    field_history: int


def retention_cutoff(now: datetime | None = None) -> datetime | None:
    days = settings.AUDIT_RETENTION_DAYS
    return None if days <= 0 else (now or timezone.now()) - timedelta(days=days)


def install_database_retention(*, using: str = DEFAULT_DB_ALIAS, **signal: Any) -> None:
    """(Re)create `audit_retention_days()`, which PostgreSQL's append-only trigger reads, from
    AUDIT_RETENTION_DAYS. Connected to `post_migrate`: the database follows the setting as of the
    latest `migrate`. SQLite has no trigger, so nothing to install."""
    database = connections[using]
    if database.vendor != "postgresql":
        return
    days = max(int(settings.AUDIT_RETENTION_DAYS), 0)
    with database.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION audit_retention_days() RETURNS integer "
            f"LANGUAGE sql STABLE AS $$ SELECT {days} $$"
        )


def database_retention_days() -> int | None:
    """The retention age PostgreSQL enforces (None on SQLite, or if `migrate` never installed it)."""
    if connection.vendor != "postgresql":
        return None
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT audit_retention_days()")
            return int(cursor.fetchone()[0])
    except DatabaseError:
        return None


def check_cutoff(cutoff: datetime) -> None:
    """Refuse a cut-off the retention rules do not allow (RetentionRefusedError)."""
    days = settings.AUDIT_RETENTION_DAYS
    allowed = retention_cutoff()
    if allowed is None:
        raise RetentionRefusedError("AUDIT_RETENTION_DAYS is 0: no event may be redacted")
    if cutoff > allowed:
        raise RetentionRefusedError(
            f"redacting before {cutoff:%Y-%m-%d} is refused: that is later than the retention cut-off "
            f"{allowed:%Y-%m-%d %H:%M} UTC (AUDIT_RETENTION_DAYS={days})"
        )
    if connection.vendor == "postgresql" and (enforced := database_retention_days()) != days:
        enforcing = f"enforces {enforced}" if enforced is not None else "enforces no retention age yet"
        raise RetentionRefusedError(
            f"AUDIT_RETENTION_DAYS is {days} but the database {enforcing}: run `python manage.py migrate` "
            "after changing it"
        )


def redact_before(cutoff: datetime, *, actor_name: str = "system:retention") -> Redaction:
    """Blank the personal details of every event before `cutoff`, in batches; record one event
    that names the cut-off. Raises RetentionRefusedError for a cut-off later than retention allows."""
    check_cutoff(cutoff)
    postgres = connection.vendor == "postgresql"
    cast = "::jsonb" if postgres else ""
    details = chain.canonical(chain.REDACTED_DETAILS).decode()
    expired = ActivityEvent.objects.filter(occurred_at__lt=cutoff, redacted_at__isnull=True)
    if postgres:
        # Clocks differ a little between machines: take only what the database also calls
        # expired, so that its trigger never refuses a batch.
        expired = expired.filter(
            occurred_at__lt=RawSQL(DATABASE_CUTOFF, (), output_field=models.DateTimeField())
        )
    redacted = 0
    while True:
        with transaction.atomic():
            ids = list(expired.order_by("id").values_list("id", flat=True)[:BATCH])
            if not ids:
                break
            with connection.cursor() as cursor:
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
            verb=chain.REDACTION_VERB,
            actor_name=actor_name,
            # The cut-off in a hashed column that is not personal: verify_audit reads it to tell
            # a retention run's redactions from anyone else's, long after this event is redacted.
            target_type=chain.REDACTION_CUTOFF,
            target_id=cutoff.astimezone(UTC).isoformat(timespec="microseconds"),
            why=f"retention: personal details of events before {cutoff:%Y-%m-%d %H:%M} UTC blanked",
            details={
                "cutoff": cutoff.isoformat(),
                "events_redacted": redacted,
                "field_history_deleted": history,
                "retention_days": settings.AUDIT_RETENTION_DAYS,
            },
        )
    return Redaction(cutoff=cutoff, events=redacted, field_history=history)
