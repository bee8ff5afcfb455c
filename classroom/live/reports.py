"""The session report (`/live/<id>/report/` and `/live/<id>/report.csv`): what a teacher reads
after the class and a compliance reviewer keeps, built from the session's ticks and anomalies.

Class-level figures only, like the live page: the ticks and anomalies hold counts and rates, and
nothing here reads the participants or the raw events (which expire after
LIVE_SIGNAL_RETENTION_HOURS; the report does not). A session still live gets its report so far.

The selectors read in a fixed number of queries; `report_export` is the one write (the audit
event of a CSV export). It lives here rather than in `classroom.live.services` only so that the
report is one module; it follows the services' rules.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from statistics import fmean
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import ActivityEvent
from audit.selectors import neutralise
from audit.services import record
from classroom.live.models import LiveAnomaly, LiveSession, LiveTick
from classroom.live.selectors import moment, score_chart
from classroom.models import User

TICK_COLUMNS = (
    "time",
    "elapsed_seconds",
    "score",
    "category",
    "present",
    "chat_per_min",
    "active_users",
    "poll_participation",
    "reactions_per_min",
)
ANOMALY_COLUMNS = (
    "time",
    "elapsed_seconds",
    "type",
    "severity",
    "description",
    "cleared_at",
    "evidence",
)
CSV_PARTS = {"ticks": TICK_COLUMNS, "anomalies": ANOMALY_COLUMNS}
# Ticks are read for the CSV in keyset chunks of this many (2.8 hours of class at one tick every
# 5 s): constant memory, and no server-side cursor held open while the client downloads.
CSV_CHUNK = 2000
CSV_ROWS_PER_WRITE = 500
# The report's chart draws at most this many points; a longer session is drawn in buckets of
# consecutive ticks, each at its mean (the peak and the lowest moment are in the figures).
CHART_POINTS = 300
CATEGORIES = (
    ("high", "High"),
    ("moderate", "Moderate"),
    ("low", "Low"),
    ("critical", "Critical"),
    ("empty", "Nobody present"),
)


def report(session: LiveSession, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything the report page shows, ready to render: the session's facts, the summary
    figures, the time in each category, the anomalies counted by type and severity and listed
    one by one, and the chart of the whole session. Three queries (who started it, the ticks,
    the anomalies) however long the session.

    The score figures (mean, lowest, highest) count the ticks past the anomaly rules' warm-up
    (LIVE_ANOMALY["warm_up_seconds"]) when anyone was present: while the class is still joining
    the score is low by construction, and an empty room scores 0; either would otherwise be every
    session's lowest moment. The time in each category counts every tick as LIVE_TICK_SECONDS, so
    `measured_minutes` is less than the duration when the conductor missed ticks."""
    started_by = session.started_by
    ticks = list(
        LiveTick.objects.filter(session=session)
        .order_by("at")
        .values_list("at", "score", "category", "present")
    )
    anomalies = list(LiveAnomaly.objects.filter(session=session).order_by("at", "pk"))
    start = session.started_at
    end = session.ended_at or max(now or timezone.now(), ticks[-1][0] if ticks else start)
    warmed_up = start + timedelta(seconds=settings.LIVE_ANOMALY["warm_up_seconds"])
    measured = [(at, score) for at, score, category, _ in ticks if category != "empty" and at >= warmed_up]
    peak = max(measured, key=lambda tick: tick[1], default=None)
    lowest = min(measured, key=lambda tick: tick[1], default=None)
    tick_seconds = settings.LIVE_TICK_SECONDS
    rows = [_anomaly_row(anomaly, start) for anomaly in anomalies]
    return {
        "session": session,
        "started_by": started_by.display_name if started_by else "the platform",
        "start": start,
        "end": end,
        "is_live": session.is_live,
        "duration": _duration(end - start),
        "ticks": len(ticks),
        "measured_minutes": round(len(ticks) * tick_seconds / 60, 1),
        "warm_up": _duration(warmed_up - start),
        "score": {
            "mean": round(fmean(score for _, score in measured), 1) if measured else None,
            "lowest": _moment(lowest, start) if lowest else None,
            "highest": _moment(peak, start) if peak else None,
        },
        "categories": _categories([category for _, _, category, _ in ticks], tick_seconds),
        "anomaly_counts": _anomaly_counts(anomalies),
        "anomalies": rows,
        "chart": score_chart(
            _chart_points([(at, score) for at, score, _, _ in ticks]),
            rows,
            start=start,
            span=max(end - start, timedelta(seconds=tick_seconds)),
        ),
    }


def _moment(tick: tuple[datetime, float], start: datetime) -> dict[str, Any]:
    return {"at": tick[0], "elapsed": _elapsed(tick[0] - start), "score": tick[1]}


def _categories(categories: list[str], tick_seconds: float) -> list[dict[str, Any]]:
    counts = Counter(categories)
    known = dict(CATEGORIES)
    names = [name for name, _ in CATEGORIES] + sorted(set(counts) - set(known))
    return [
        {
            "category": name,
            "label": known.get(name, name),
            "minutes": round(counts[name] * tick_seconds / 60, 1),
            "share": round(100 * counts[name] / len(categories)) if categories else 0,
        }
        for name in names
    ]


def _anomaly_counts(anomalies: list[LiveAnomaly]) -> dict[str, Any]:
    counts = Counter((anomaly.type, anomaly.severity) for anomaly in anomalies)
    severities = LiveAnomaly.Severity.values
    rows = [
        {
            "label": label,
            "by_severity": [counts[kind, severity] for severity in severities],
            "total": sum(counts[kind, severity] for severity in severities),
        }
        for kind, label in LiveAnomaly.Type.choices
    ]
    return {
        "severities": LiveAnomaly.Severity.labels,
        "rows": rows,
        "by_severity": [
            sum(counts[kind, severity] for kind in LiveAnomaly.Type.values) for severity in severities
        ],
        "total": len(anomalies),
    }


def _anomaly_row(anomaly: LiveAnomaly, start: datetime) -> dict[str, Any]:
    return {
        "at": anomaly.at,
        "elapsed": _elapsed(anomaly.at - start),
        "label": anomaly.get_type_display(),
        "severity": anomaly.severity,
        "description": anomaly.description,
        "cleared_at": anomaly.cleared_at,
        "evidence": [(key.replace("_", " "), anomaly.evidence[key]) for key in sorted(anomaly.evidence)],
    }


def _chart_points(ticks: list[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    """At most CHART_POINTS points: each bucket of consecutive ticks at its middle tick's time and
    its mean score."""
    size = math.ceil(len(ticks) / CHART_POINTS) if ticks else 1
    if size <= 1:
        return ticks
    buckets = [ticks[i : i + size] for i in range(0, len(ticks), size)]
    return [(bucket[len(bucket) // 2][0], round(fmean(s for _, s in bucket), 1)) for bucket in buckets]


def _elapsed(delta: timedelta) -> str:
    """+m:ss into the session (+h:mm:ss past an hour)."""
    hours, rest = divmod(max(0, int(delta.total_seconds())), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"+{hours}:{minutes:02d}:{seconds:02d}" if hours else f"+{minutes}:{seconds:02d}"


def _duration(delta: timedelta) -> str:
    hours, rest = divmod(max(0, int(delta.total_seconds())), 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s"


# The CSV export


def tick_rows(session: LiveSession) -> Iterator[tuple[Any, ...]]:
    """One row per tick in TICK_COLUMNS' order, read in keyset chunks of CSV_CHUNK ticks."""
    ticks = LiveTick.objects.filter(session=session).order_by("at")
    after: datetime | None = None
    while True:
        chunk = list(
            (ticks if after is None else ticks.filter(at__gt=after)).values_list(
                "at", "score", "category", "present", "signals"
            )[:CSV_CHUNK]
        )
        for at, score, category, present, signals in chunk:
            yield (
                moment(at),
                int((at - session.started_at).total_seconds()),
                score,
                category,
                present,
                signals.get("chat_per_min"),
                signals.get("active_users"),
                signals.get("poll_participation"),
                signals.get("reactions_per_min"),
            )
        if len(chunk) < CSV_CHUNK:
            return
        after = chunk[-1][0]


def anomaly_rows(session: LiveSession) -> Iterator[tuple[Any, ...]]:
    """One row per anomaly in ANOMALY_COLUMNS' order, the evidence as a JSON object (its keys
    depend on the type). One query: the anomaly rules' cooldowns keep a session's anomalies few."""
    for anomaly in LiveAnomaly.objects.filter(session=session).order_by("at", "pk"):
        yield (
            moment(anomaly.at),
            int((anomaly.at - session.started_at).total_seconds()),
            anomaly.type,
            anomaly.severity,
            anomaly.description,
            moment(anomaly.cleared_at),
            json.dumps(anomaly.evidence, sort_keys=True),
        )


def csv_chunks(columns: Iterable[str], rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    """The header and the rows as CSV, CSV_ROWS_PER_WRITE rows to a piece; text cells that a
    spreadsheet would run as a formula are neutralised as in the audit export."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for count, row in enumerate(rows, start=1):
        writer.writerow(["" if value is None else neutralise(value) for value in row])
        if count % CSV_ROWS_PER_WRITE == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@transaction.atomic
def report_export(*, session: LiveSession, part: str, by: User) -> ActivityEvent:
    """Record that `by` exported `part` ("ticks" or "anomalies") of the session's report as CSV,
    before the file is sent, as `audit.exported` is for the activity log."""
    if part not in CSV_PARTS:
        raise ValueError(f"unknown part {part!r}: one of {', '.join(CSV_PARTS)}")
    return record(
        verb="live.report_exported",
        actor=by,
        target=session,
        why=f"CSV export of the {part} of live session {session.topic!r}",
        details={"part": part, "columns": list(CSV_PARTS[part])},
    )
