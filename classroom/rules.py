"""The risk rules: pure functions from a student's mirrored history to findings.

Each returns a Finding with the numbers that triggered it, or None. They know nothing of the
database, so tests can feed them hand-built histories and the recompute service can feed them
a whole roster loaded in a fixed number of queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class DayFact:
    date: date
    mastery: float | None
    confidence: int | None


@dataclass(frozen=True)
class AssignmentFact:
    title: str
    due_at: datetime
    submitted_at: datetime | None


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: int
    summary: str
    metrics: dict[str, Any] = field(default_factory=dict)


def overdue_assignments(
    assignments: Sequence[AssignmentFact], *, now: datetime, thresholds: dict[str, Any]
) -> Finding | None:
    """Unsubmitted assignments more than the grace period past their due time."""
    cutoff = now - timedelta(hours=thresholds["overdue_grace_hours"])
    overdue = sorted(
        (a for a in assignments if a.submitted_at is None and a.due_at <= cutoff), key=lambda a: a.due_at
    )
    if not overdue or len(overdue) < thresholds["overdue_min_count"]:
        return None
    oldest_days = (now - overdue[0].due_at).days
    return Finding(
        kind="overdue_assignments",
        severity=len(overdue) * 10 + min(oldest_days, 9),
        summary=f"{len(overdue)} overdue, oldest {oldest_days} days late",
        metrics={
            "overdue_count": len(overdue),
            "oldest_days_overdue": oldest_days,
            "titles": [a.title for a in overdue[:5]],
            "min_count": thresholds["overdue_min_count"],
        },
    )


def stalled_mastery(days: Sequence[DayFact], *, today: date, thresholds: dict[str, Any]) -> Finding | None:
    """Mastery gained less than the minimum over the window, given enough measured days to judge."""
    window_days = thresholds["stalled_window_days"]
    start = today - timedelta(days=window_days - 1)
    measured = sorted(
        (d for d in days if start <= d.date <= today and d.mastery is not None), key=lambda d: d.date
    )
    if len(measured) < thresholds["stalled_min_points"]:
        return None
    first, last = measured[0].mastery, measured[-1].mastery
    gain = round(last - first, 3)
    if gain >= thresholds["stalled_min_gain"]:
        return None
    return Finding(
        kind="stalled_mastery",
        severity=int(round((thresholds["stalled_min_gain"] - gain) * 1000)),
        summary=f"mastery {first:.0%} → {last:.0%} in {window_days} days ({gain * 100:+.0f} pts)",
        metrics={
            "mastery_from": first,
            "mastery_to": last,
            "gain": gain,
            "window_days": window_days,
            "measured_days": len(measured),
            "min_gain": thresholds["stalled_min_gain"],
        },
    )


def low_confidence_streak(days: Sequence[DayFact], *, thresholds: dict[str, Any]) -> Finding | None:
    """The latest consecutive rated check-ins at or below the level; unrated days are skipped."""
    level = thresholds["low_confidence_level"]
    rated = sorted((d for d in days if d.confidence is not None), key=lambda d: d.date, reverse=True)
    streak = []
    for day in rated:
        if day.confidence > level:
            break
        streak.append(day)
    if not streak or len(streak) < thresholds["low_confidence_streak_days"]:
        return None
    return Finding(
        kind="low_confidence_streak",
        severity=len(streak) * 10 + (level + 1 - min(d.confidence for d in streak)),
        summary=f"{len(streak)} check-ins in a row at confidence ≤ {level}/5",
        metrics={
            "streak_days": len(streak),
            "since": streak[-1].date.isoformat(),
            "ratings": [d.confidence for d in reversed(streak)],
            "level": level,
            "min_streak": thresholds["low_confidence_streak_days"],
        },
    )


def evaluate(
    *,
    days: Sequence[DayFact],
    assignments: Sequence[AssignmentFact],
    now: datetime,
    today: date,
    thresholds: dict[str, Any],
) -> list[Finding]:
    findings = [
        overdue_assignments(assignments, now=now, thresholds=thresholds),
        stalled_mastery(days, today=today, thresholds=thresholds),
        low_confidence_streak(days, thresholds=thresholds),
    ]
    return [f for f in findings if f is not None]


# How far back the recompute service must load history for these rules.
def history_days_needed(thresholds: dict[str, Any]) -> int:
    return max(int(thresholds["stalled_window_days"]), 30)
