"""Reads of the activity log for the audit pages and the export: filters, scoping and keyset pages.

Pages are keyset-paginated on (occurred_at, id), newest first: the cost of a page does not depend
on how deep it is, so the log stays fast at millions of rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db import connection
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from audit.directory import Reach, directory
from audit.models import ActivityEvent, Failure

EXPORT_CHUNK = 2000


@dataclass(frozen=True)
class Filters:
    """The search of `/audit/` and `/audit/export.csv`; empty values do not filter."""

    student: str = ""
    student_id: int | None = None
    class_id: int | None = None
    actor: str = ""
    action: str = ""
    status: str = ""
    since: date | None = None
    until: date | None = None
    q: str = ""

    def as_params(self) -> dict[str, str]:
        """The query string that reproduces this search (for links, the export and its event)."""
        params = {
            "student": self.student,
            "student_id": self.student_id,
            "class": self.class_id,
            "actor": self.actor,
            "action": self.action,
            "status": self.status,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "q": self.q,
        }
        return {key: str(value) for key, value in params.items() if value not in (None, "")}


def visible_events(reach: Reach) -> QuerySet[ActivityEvent]:
    return ActivityEvent.objects.filter(reach.q())


def search(user: Any, reach: Reach, filters: Filters) -> QuerySet[ActivityEvent]:
    events = visible_events(reach)
    if filters.student_id is not None:
        events = events.filter(student_id=filters.student_id)
    if filters.student:
        events = events.filter(student_id__in=directory().find_students(user, filters.student))
    if filters.class_id is not None:
        events = events.filter(class_id=filters.class_id)
    if filters.actor:
        actor = filters.actor.strip()
        events = events.filter(
            Q(actor_name__startswith="system:") if actor == "system" else Q(actor_name__iexact=actor)
        )
    if filters.action:
        action = filters.action.strip().rstrip(".")
        events = events.filter(Q(verb=action) | Q(verb__startswith=f"{action}."))
    if filters.status:
        events = events.filter(status=filters.status)
    if filters.since:
        events = events.filter(occurred_at__gte=_day_start(filters.since))
    if filters.until:
        events = events.filter(occurred_at__lt=_day_start(filters.until + timedelta(days=1)))
    if filters.q:
        events = events.filter(_text_matches(filters.q.strip()))
    return events


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _text_matches(text: str) -> Q:
    """Free text over rationale, actor, action and target id.

    On PostgreSQL the same expression has a trigram index (migration 0004), so a rare word does
    not scan the table; elsewhere it is a plain case-insensitive match.
    """
    if connection.vendor == "postgresql":
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return Q(
            RawSQL(
                "(why || ' ' || actor_name || ' ' || verb || ' ' || target_id) ILIKE %s",
                [pattern],
                output_field=BooleanField(),
            )
        )
    return (
        Q(why__icontains=text)
        | Q(actor_name__icontains=text)
        | Q(verb__icontains=text)
        | Q(target_id__iexact=text)
    )


@dataclass
class Page:
    events: list[ActivityEvent]
    next_cursor: str = ""


def encode_cursor(event: ActivityEvent) -> str:
    return f"{event.occurred_at.isoformat()}~{event.pk}"


def decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    try:
        moment, _, pk = cursor.partition("~")
        return datetime.fromisoformat(moment), int(pk)
    except ValueError:
        return None


def after(events: QuerySet[ActivityEvent], cursor: tuple[datetime, int] | None) -> QuerySet[ActivityEvent]:
    """The events older than the cursor, newest first. The plain `<=` keeps the index range."""
    events = events.order_by("-occurred_at", "-id")
    if cursor is None:
        return events
    moment, pk = cursor
    return events.filter(occurred_at__lte=moment).exclude(occurred_at=moment, id__gte=pk)


def page(events: QuerySet[ActivityEvent], cursor: str, size: int) -> Page:
    rows = list(after(events, decode_cursor(cursor) if cursor else None)[: size + 1])
    result = Page(events=rows[:size], next_cursor=encode_cursor(rows[size - 1]) if len(rows) > size else "")
    label_events(result.events)
    return result


def label_events(events: list[ActivityEvent]) -> None:
    """Give each event `student_name` and `class_name` for display: one query each per page."""
    students, classes = directory().labels(
        {e.student_id for e in events if e.student_id}, {e.class_id for e in events if e.class_id}
    )
    for event in events:
        event.student_name = students.get(event.student_id, "")
        event.class_name = classes.get(event.class_id, "")


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets a leading apostrophe (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


EXPORT_COLUMNS = (
    "id",
    "occurred_at",
    "organisation_id",
    "seq",
    "actor_id",
    "actor_name",
    "verb",
    "target_type",
    "target_id",
    "student_id",
    "class_id",
    "status",
    "source",
    "correlation_id",
    "why",
    "details",
    "redacted_at",
    "hash",
)


def export_rows(events: QuerySet[ActivityEvent]) -> Iterator[tuple[Any, ...]]:
    """Every matching event in page order, fetched by keyset chunks: constant memory, no long
    transaction or server-side cursor held open while the client downloads."""
    cursor: tuple[datetime, int] | None = None
    while True:
        chunk = list(after(events, cursor).values_list(*EXPORT_COLUMNS)[:EXPORT_CHUNK])
        if not chunk:
            return
        yield from chunk
        last = chunk[-1]
        cursor = (last[1], last[0])
        if len(chunk) < EXPORT_CHUNK:
            return


def correlated(reach: Reach, event: ActivityEvent, limit: int = 200) -> list[ActivityEvent]:
    """The other events of the same request or job, in the order they happened."""
    return list(
        visible_events(reach)
        .filter(correlation_id=event.correlation_id)
        .order_by("occurred_at", "id")[:limit]
    )


def failure_of(event: ActivityEvent) -> Failure | None:
    return Failure.objects.filter(Q(last_event_id=event.pk) | Q(first_event_id=event.pk)).first()


def open_failures(reach: Reach) -> QuerySet[Failure]:
    failures = Failure.objects.filter(state=Failure.State.OPEN)
    if reach.organisation_ids is not None:
        failures = failures.filter(organisation_id__in=reach.organisation_ids)
    if not reach.whole_organisation:
        failures = failures.filter(
            Q(class_id__in=reach.class_ids or ()) | Q(student_id__in=reach.student_ids or ())
        )
    return failures.order_by("severity", "-last_seen_at")  # "high" sorts before "normal"
