"""The demo school's history as the platform holds it: deterministic, for any student id.

Both the demo seed (which writes it straight into the mirrors) and the platform simulator
(which serves it over HTTP) read it from here, so a sync against the simulator agrees with the
seeded mirrors. A student's profile follows from their place in the class (the number at the
end of their platform id): in every block of 25, the first eight are the risk and missing-data
cases, the rest are fine. Values come from generators seeded by the platform id.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

HISTORY_DAYS = 56
BLOCK = 25
PROFILES = (
    "overdue",
    "stalled",
    "low_confidence",
    "no_data",
    "gone_quiet",
    "overdue_and_low_confidence",
    "unassessed",
    "borderline",
)
_STUDENT_ID = re.compile(r"^(?P<class_id>[a-z0-9-]+?)-(?P<number>\d{4})$")


@cache
def fixture() -> dict[str, Any]:
    return json.loads((Path(settings.BASE_DIR) / "fixtures" / "demo_school.json").read_text())


def profile_for(index: int) -> str:
    slot = index % BLOCK
    return PROFILES[slot] if slot < len(PROFILES) else "fine"


@dataclass(frozen=True)
class DemoStudent:
    platform_id: str
    class_platform_id: str
    profile: str

    @classmethod
    def parse(cls, platform_id: str) -> DemoStudent | None:
        """The demo student behind a platform id such as `alg1-p2-0007`, or None if it is not one."""
        match = _STUDENT_ID.match(platform_id)
        if match is None or int(match["number"]) < 1:
            return None
        return cls(platform_id, match["class_id"], profile_for(int(match["number"]) - 1))


def last_synced_at(student: DemoStudent, now: datetime) -> datetime | None:
    """When the seeded mirror pretends it last synced: never, nine days ago, or within six hours."""
    rng = random.Random(f"{student.platform_id}:sync")
    if student.profile == "no_data":
        return None
    if student.profile == "gone_quiet":
        return now - timedelta(days=9, hours=rng.randint(0, 12))
    return now - timedelta(minutes=rng.randint(20, 6 * 60))


def days(student: DemoStudent, today: date) -> list[dict[str, Any]]:
    """Daily performance for the last eight weeks up to `today`."""
    if student.profile == "no_data":
        return []
    rng = random.Random(f"{student.platform_id}:days")
    rows = []
    mastery = rng.uniform(0.3, 0.55)
    last_day = today - timedelta(days=10) if student.profile == "gone_quiet" else today
    for offset in range(HISTORY_DAYS - 1, -1, -1):
        day = today - timedelta(days=offset)
        skipped = rng.random() < 0.12 and offset > 5
        if day > last_day or skipped:
            continue
        recent = offset < 14
        if student.profile == "stalled" and recent:
            mastery_today = mastery - 0.002 * (14 - offset) + rng.uniform(-0.004, 0.004)
        else:
            mastery = min(0.98, mastery + rng.uniform(0.003, 0.011))
            mastery_today = mastery
        confidence = rng.choice([3, 4, 4, 5])
        if student.profile in ("low_confidence", "overdue_and_low_confidence") and offset < 4:
            confidence = rng.choice([1, 2])
        if student.profile == "borderline" and offset < 2:
            confidence = 2
        clamped = round(min(1.0, max(0.0, mastery_today)), 3)
        minutes = rng.randint(8, 25) if student.profile == "stalled" and recent else rng.randint(15, 65)
        checked_in = rng.random() < (0.55 if student.profile == "low_confidence" else 0.92)
        rows.append(
            {
                "date": day,
                "study_minutes": minutes,
                "mastery": None if student.profile == "unassessed" else clamped,
                "confidence": confidence,
                "checked_in": checked_in,
            }
        )
    return rows


def assignments(student: DemoStudent, today: date, as_of: datetime) -> list[dict[str, Any]]:
    """One assignment a week for eight weeks and two ahead, due at 17:00; submitted as of `as_of`."""
    rng = random.Random(f"{student.platform_id}:assignments")
    titles = fixture()["assignment_titles"]
    tz = timezone.get_current_timezone()
    rows = []
    for week in range(-8, 2):
        due_at = datetime.combine(today + timedelta(days=week * 7 + 3), time(17, 0), tzinfo=tz)
        hours_early = rng.randint(1, 40)
        late_ones = student.profile in ("overdue", "overdue_and_low_confidence") and week in (-2, -1)
        submitted = due_at < as_of and not late_ones
        rows.append(
            {
                "id": f"{student.class_platform_id}-w{week + 8:02d}",
                "class_id": student.class_platform_id,
                "title": titles[(week + 8) % len(titles)],
                "due_at": due_at,
                "submitted_at": due_at - timedelta(hours=hours_early) if submitted else None,
            }
        )
    return rows


def milestones(today: date) -> list[dict[str, Any]]:
    """Five study-plan milestones, the two past ones completed two days early."""
    titles = fixture()["milestone_titles"]
    offsets = (-35, -14, 5, 26, 47)
    return [
        {
            "id": f"ms-{i + 1}",
            "title": titles[i],
            "due_on": today + timedelta(days=offset),
            "completed_on": today + timedelta(days=offset - 2) if offset < 0 else None,
        }
        for i, offset in enumerate(offsets)
    ]
