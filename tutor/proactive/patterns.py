"""A rule-based pattern detector over a learner's mirrored activity (the last four weeks).

Each rule looks at daily facts and, when it fires, gives a pattern with the evidence behind it and
a confidence from how much evidence there is. Mirrors hold days, not clock times, so "usual study
hours" become usual study days: which weekdays the learner works and which they skip.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import mean
from typing import Any

WINDOW_DAYS = 28
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
LONG_SESSION_MINUTES = 50
DIP = 1.0  # confidence points lower the day after a long session than on average


@dataclass(frozen=True)
class Fact:
    date: date
    minutes: int
    confidence: int | None


@dataclass(frozen=True)
class Found:
    kind: str
    description: str
    evidence: dict[str, Any]
    confidence: float


def detect(facts: list[Fact], *, today: date) -> list[Found]:
    recent = [f for f in facts if f.date > today - timedelta(days=WINDOW_DAYS)]
    if len(recent) < 7:
        return []
    return [found for rule in (_skipped_weekdays, _study_days, _dips_after_long_sessions, _fading_minutes)
            if (found := rule(recent, today))]  # fmt: skip


def _skipped_weekdays(facts: list[Fact], today: date) -> Found | None:
    studied = Counter(f.date.weekday() for f in facts if f.minutes > 0)
    weeks = WINDOW_DAYS // 7
    skipped = [day for day in range(5) if studied[day] == 0]
    if not skipped:
        return None
    names = [WEEKDAYS[day] for day in skipped]
    return Found(
        "skipped_weekdays",
        f"Does not study on {' and '.join(names)}",
        {
            "weekdays": names,
            "weeks_observed": weeks,
            "days_studied_by_weekday": {WEEKDAYS[d]: n for d, n in studied.items()},
        },
        min(1.0, 0.25 * weeks),
    )


def _study_days(facts: list[Fact], today: date) -> Found | None:
    studied = Counter(f.date.weekday() for f in facts if f.minutes > 0)
    weeks = WINDOW_DAYS // 7
    usual = [WEEKDAYS[day] for day, n in sorted(studied.items()) if n >= weeks - 1]
    if not usual or len(usual) == 7:
        return None
    return Found(
        "usual_study_days",
        f"Usually studies on {', '.join(usual)}",
        {"weekdays": usual, "weeks_observed": weeks},
        min(1.0, 0.2 * weeks),
    )


def _dips_after_long_sessions(facts: list[Fact], today: date) -> Found | None:
    by_day = {f.date: f for f in facts}
    rated = [f.confidence for f in facts if f.confidence is not None]
    after_long = [
        by_day[f.date + timedelta(days=1)].confidence
        for f in facts
        if f.minutes >= LONG_SESSION_MINUTES
        and f.date + timedelta(days=1) in by_day
        and by_day[f.date + timedelta(days=1)].confidence is not None
    ]
    if len(after_long) < 3 or not rated:
        return None
    dip = mean(rated) - mean(after_long)
    if dip < DIP:
        return None
    return Found(
        "confidence_dip_after_long_sessions",
        f"Confidence drops the day after sessions of {LONG_SESSION_MINUTES}+ minutes",
        {
            "long_sessions": len(after_long),
            "confidence_after": round(mean(after_long), 2),
            "confidence_usual": round(mean(rated), 2),
        },
        min(1.0, 0.2 * len(after_long)),
    )


def _fading_minutes(facts: list[Fact], today: date) -> Found | None:
    first = [f.minutes for f in facts if f.date <= today - timedelta(days=14)]
    last = [f.minutes for f in facts if f.date > today - timedelta(days=14)]
    if len(first) < 5 or len(last) < 5 or mean(first) == 0:
        return None
    change = (mean(last) - mean(first)) / mean(first)
    if change > -0.3:
        return None
    return Found(
        "fading_study_time",
        f"Studies {abs(change):.0%} less per day than two weeks before",
        {"minutes_before": round(mean(first)), "minutes_now": round(mean(last))},
        min(1.0, 0.1 * (len(first) + len(last)) / 2),
    )
