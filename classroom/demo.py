"""The demo school: people, classes and eight weeks of platform history with every risk case.

Every student's history follows one profile, chosen by their place in the roster, so each class
(of any size) holds students who are fine, each risk pattern, and students with missing data.
Values come from a random generator seeded by the student's platform id, so a re-run on the
same day writes the same rows.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import record
from classroom.models import (
    Assignment,
    DailyPerformance,
    Enrollment,
    Organisation,
    SchoolClass,
    Student,
    StudentSyncState,
    StudyPlanProgress,
    TeacherAssignment,
    User,
)
from classroom.services import alerts_recompute

FIXTURE = Path(settings.BASE_DIR) / "fixtures" / "demo_school.json"
HISTORY_DAYS = 56
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
# Profiles by place in each block of 25 students: the first eight are the cases above, the rest are fine.
BLOCK = 25
BATCH = 2000


def profile_for(index: int) -> str:
    slot = index % BLOCK
    return PROFILES[slot] if slot < len(PROFILES) else "fine"


@dataclass
class SeedResult:
    organisation: Organisation
    classes: int = 0
    students: int = 0
    performance_rows: int = 0
    assignments: int = 0
    milestones: int = 0
    profiles: dict[str, int] = field(default_factory=dict)
    alerts_opened: int = 0


def demo_school_seed(*, class_size: int = BLOCK, now: datetime | None = None) -> SeedResult:
    """Create or update the demo school; idempotent for a given day."""
    if class_size < 1:
        raise ValueError("class size must be at least 1")
    now = now or timezone.now()
    spec = json.loads(FIXTURE.read_text())
    with transaction.atomic():
        organisation, _ = Organisation.objects.get_or_create(
            slug=spec["organisation"]["slug"], defaults={"name": spec["organisation"]["name"]}
        )
        users = {u["username"]: _user(organisation, u) for u in spec["users"]}
        result = SeedResult(organisation=organisation)
        for class_index, class_spec in enumerate(spec["classes"]):
            school_class = _school_class(organisation, class_spec, users)
            students = _students(organisation, school_class, class_index, class_size, spec, now)
            _history(students, school_class, spec, now, result)
            result.classes += 1
            result.students += len(students)
        record(
            verb="demo.seeded",
            actor_name="system:seed_demo",
            organisation_id=organisation.pk,
            target=organisation,
            why="demo school created or refreshed",
            details={
                "class_size": class_size,
                "classes": result.classes,
                "students": result.students,
                "performance_rows": result.performance_rows,
                "profiles": result.profiles,
            },
        )
    result.alerts_opened = alerts_recompute(organisation=organisation, now=now).opened
    return result


def _user(organisation: Organisation, spec: dict[str, Any]) -> User:
    superuser = spec.get("superuser", False)
    user, _ = User.objects.update_or_create(
        username=spec["username"],
        defaults={
            "organisation": organisation,
            "role": spec["role"],
            "first_name": spec["first_name"],
            "last_name": spec["last_name"],
            "email": spec["email"],
            "is_staff": superuser,
            "is_superuser": superuser,
        },
    )
    if not user.check_password(spec["password"]):
        user.set_password(spec["password"])
        user.save(update_fields=["password"])
    return user


def _school_class(organisation: Organisation, spec: dict[str, Any], users: dict[str, User]) -> SchoolClass:
    school_class, _ = SchoolClass.objects.update_or_create(
        organisation=organisation,
        platform_id=spec["platform_id"],
        defaults={"name": spec["name"], "subject": spec["subject"], "is_active": True},
    )
    TeacherAssignment.objects.get_or_create(teacher=users[spec["teacher"]], school_class=school_class)
    return school_class


def _students(
    organisation: Organisation,
    school_class: SchoolClass,
    class_index: int,
    class_size: int,
    spec: dict[str, Any],
    now: datetime,
) -> list[tuple[Student, str]]:
    firsts, lasts = spec["first_names"], spec["last_names"]
    wanted = [
        Student(
            organisation=organisation,
            platform_id=f"{school_class.platform_id}-{i + 1:04d}",
            first_name=firsts[(i * 7 + class_index * 3) % len(firsts)],
            last_name=lasts[(i * 11 + class_index * 5 + i // len(lasts)) % len(lasts)],
        )
        for i in range(class_size)
    ]
    Student.objects.bulk_create(
        wanted,
        batch_size=BATCH,
        update_conflicts=True,
        unique_fields=["organisation", "platform_id"],
        update_fields=["first_name", "last_name"],
    )
    by_platform_id = {
        s.platform_id: s
        for s in Student.objects.filter(
            organisation=organisation, platform_id__in=[w.platform_id for w in wanted]
        )
    }
    students = [by_platform_id[w.platform_id] for w in wanted]
    for s in students:
        s.email = f"{s.platform_id}@learners.northfield.example"
    Student.objects.bulk_update(students, ["email"], batch_size=BATCH)
    Enrollment.objects.bulk_create(
        [
            Enrollment(
                student=s,
                school_class=school_class,
                enrolled_on=(now - timedelta(days=HISTORY_DAYS + 14)).date(),
            )
            for s in students
        ],
        batch_size=BATCH,
        ignore_conflicts=True,
    )
    return [(s, profile_for(i)) for i, s in enumerate(students)]


def _history(
    students: list[tuple[Student, str]],
    school_class: SchoolClass,
    spec: dict[str, Any],
    now: datetime,
    result: SeedResult,
) -> None:
    today = timezone.localdate(now)
    performance: list[DailyPerformance] = []
    assignments: list[Assignment] = []
    milestones: list[StudyPlanProgress] = []
    sync_states: list[StudentSyncState] = []
    for student, profile in students:
        rng = random.Random(student.platform_id)
        result.profiles[profile] = result.profiles.get(profile, 0) + 1
        synced_at = _synced_at(profile, now, rng)
        performance += _days(student, profile, today, synced_at or now, rng)
        assignments += _assignments(student, school_class, profile, today, synced_at or now, spec, rng)
        milestones += _milestones(student, today, synced_at or now, spec)
        sync_states.append(
            StudentSyncState(
                student=student,
                last_synced_at=synced_at,
                last_attempted_at=synced_at,
                last_status=StudentSyncState.Status.OK if synced_at else "",
            )
        )
    _upsert(
        DailyPerformance,
        performance,
        ["student", "date"],
        ["study_minutes", "mastery", "confidence", "checked_in", "synced_at"],
    )
    _upsert(
        Assignment,
        assignments,
        ["student", "platform_id"],
        ["school_class", "title", "due_at", "submitted_at", "synced_at"],
    )
    _upsert(
        StudyPlanProgress,
        milestones,
        ["student", "platform_id"],
        ["title", "due_on", "completed_on", "synced_at"],
    )
    _upsert(
        StudentSyncState, sync_states, ["student"], ["last_synced_at", "last_attempted_at", "last_status"]
    )
    result.performance_rows += len(performance)
    result.assignments += len(assignments)
    result.milestones += len(milestones)


def _upsert(model: type, rows: list, unique: list[str], update: list[str]) -> None:
    model.objects.bulk_create(
        rows, batch_size=BATCH, update_conflicts=True, unique_fields=unique, update_fields=update
    )


def _synced_at(profile: str, now: datetime, rng: random.Random) -> datetime | None:
    if profile == "no_data":
        return None
    if profile == "gone_quiet":
        return now - timedelta(days=9, hours=rng.randint(0, 12))
    return now - timedelta(minutes=rng.randint(20, 6 * 60))


def _days(
    student: Student, profile: str, today: date, synced_at: datetime, rng: random.Random
) -> list[DailyPerformance]:
    if profile == "no_data":
        return []
    rows = []
    mastery = rng.uniform(0.3, 0.55)
    last_day = today - timedelta(days=10) if profile == "gone_quiet" else today
    for offset in range(HISTORY_DAYS - 1, -1, -1):
        day = today - timedelta(days=offset)
        if day > last_day or (rng.random() < 0.12 and offset > 5):
            continue
        recent = offset < 14
        if profile == "stalled" and recent:
            mastery_today = mastery - 0.002 * (14 - offset) + rng.uniform(-0.004, 0.004)
        else:
            mastery = min(0.98, mastery + rng.uniform(0.003, 0.011))
            mastery_today = mastery
        confidence = rng.choice([3, 4, 4, 5])
        if profile in ("low_confidence", "overdue_and_low_confidence") and offset < 4:
            confidence = rng.choice([1, 2])
        if profile == "borderline" and offset < 2:
            confidence = 2
        rows.append(
            DailyPerformance(
                student=student,
                date=day,
                study_minutes=rng.randint(8, 25) if profile == "stalled" and recent else rng.randint(15, 65),
                mastery=None if profile == "unassessed" else round(max(0.0, min(1.0, mastery_today)), 3),
                confidence=confidence,
                checked_in=rng.random() < (0.55 if profile == "low_confidence" else 0.92),
                synced_at=synced_at,
            )
        )
    return rows


def _assignments(
    student: Student,
    school_class: SchoolClass,
    profile: str,
    today: date,
    synced_at: datetime,
    spec: dict[str, Any],
    rng: random.Random,
) -> list[Assignment]:
    titles = spec["assignment_titles"]
    tz = timezone.get_current_timezone()
    # One assignment a week for eight weeks, plus two ahead: due on the same weekday at 17:00.
    rows = []
    for week in range(-8, 2):
        due_on = today + timedelta(days=week * 7 + 3)
        due_at = datetime.combine(due_on, time(17, 0), tzinfo=tz)
        past = due_at < synced_at
        late_ones = profile in ("overdue", "overdue_and_low_confidence") and week in (-2, -1)
        submitted_at = None
        if past and not late_ones:
            submitted_at = due_at - timedelta(hours=rng.randint(1, 40))
        rows.append(
            Assignment(
                student=student,
                school_class=school_class,
                platform_id=f"{school_class.platform_id}-w{week + 8:02d}",
                title=titles[(week + 8) % len(titles)],
                due_at=due_at,
                submitted_at=submitted_at,
                synced_at=synced_at,
            )
        )
    return rows


def _milestones(
    student: Student, today: date, synced_at: datetime, spec: dict[str, Any]
) -> list[StudyPlanProgress]:
    titles = spec["milestone_titles"]
    offsets = (-35, -14, 5, 26, 47)
    return [
        StudyPlanProgress(
            student=student,
            platform_id=f"ms-{i + 1}",
            title=titles[i],
            due_on=today + timedelta(days=offset),
            completed_on=today + timedelta(days=offset - 2) if offset < 0 else None,
            synced_at=synced_at,
        )
        for i, offset in enumerate(offsets)
    ]
