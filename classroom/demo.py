"""The demo school: people, classes and eight weeks of platform history with every risk case.

The history is the one the platform simulator serves (`classroom.platform.history`), written
straight into the mirrors so the demo works before any sync; a re-run on the same day writes
the same rows. The students of Algebra I · Period 2 have learner logins (`learner1`, `learner2`,
…, in the class's order) for the learner app's API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.hashers import check_password, make_password
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
from classroom.platform import history
from classroom.platform.history import BLOCK, HISTORY_DAYS, DemoStudent
from classroom.services import alerts_recompute
from classroom.signals import demo_seeded

BATCH = 2000
# The class whose students sign in to the learner app, and their one demo password.
LEARNER_CLASS = "alg1-p2"
LEARNER_PASSWORD = "demo-learner"
DEMO_LIVE_SECRET = "demo-live-secret"


@dataclass
class SeedResult:
    organisation: Organisation
    classes: int = 0
    students: int = 0
    performance_rows: int = 0
    assignments: int = 0
    milestones: int = 0
    profiles: dict[str, int] = field(default_factory=dict)
    learner_logins: int = 0
    alerts_opened: int = 0


def demo_school_seed(*, class_size: int = BLOCK, now: datetime | None = None) -> SeedResult:
    """Create or update the demo school; idempotent for a given day."""
    if class_size < 1:
        raise ValueError("class size must be at least 1")
    now = now or timezone.now()
    spec = history.fixture()
    with transaction.atomic():
        organisation, _ = Organisation.objects.get_or_create(
            slug=spec["organisation"]["slug"], defaults={"name": spec["organisation"]["name"]}
        )
        if not organisation.live_secret:
            # What the platform simulator signs the demo's live-session signals with.
            organisation.live_secret = DEMO_LIVE_SECRET
            organisation.save(update_fields=["live_secret"])
        users = {u["username"]: _user(organisation, u) for u in spec["users"]}
        result = SeedResult(organisation=organisation)
        for class_index, class_spec in enumerate(spec["classes"]):
            school_class = _school_class(organisation, class_spec, users)
            students = _students(organisation, school_class, class_index, class_size, spec, now)
            _history(students, school_class, now, result)
            if school_class.platform_id == LEARNER_CLASS:
                result.learner_logins = _learner_logins(organisation, [s for s, _ in students])
            result.classes += 1
            result.students += len(students)
        demo_seeded.send(sender=demo_school_seed, organisation=organisation, users=users, now=now)
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
                "learner_logins": result.learner_logins,
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


def _learner_logins(organisation: Organisation, students: list[Student]) -> int:
    """`learner1`, `learner2`, … for `students` in order: role learner, the demo password, linked
    through `Student.user`. Written in bulk like the students themselves (the `demo.seeded` event
    counts them): one password hash serves every new login, so a large class costs one hash, and
    a password changed since the last seed is set back (which ends that login's API tokens)."""
    wanted = {f"learner{n}": student for n, student in enumerate(students, 1)}
    existing = {user.username: user for user in User.objects.filter(username__in=wanted)}
    demo_hashes = {h for h in {u.password for u in existing.values()} if check_password(LEARNER_PASSWORD, h)}
    encoded = min(demo_hashes) if demo_hashes else make_password(LEARNER_PASSWORD)
    fresh = []
    for username, student in wanted.items():
        profile = {
            "organisation": organisation,
            "role": User.Role.LEARNER,
            "first_name": student.first_name,
            "last_name": student.last_name,
            "email": student.email,
            "is_active": True,
        }
        user = existing.get(username)
        if user is None:
            fresh.append(User(username=username, password=encoded, **profile))
            continue
        for name, value in profile.items():
            setattr(user, name, value)
        if user.password not in demo_hashes:
            user.set_password(LEARNER_PASSWORD)
            user.save(update_fields=["password"])
    User.objects.bulk_create(fresh, batch_size=BATCH)
    User.objects.bulk_update(
        list(existing.values()),
        ["organisation", "role", "first_name", "last_name", "email", "is_active"],
        batch_size=BATCH,
    )
    ids = dict(User.objects.filter(username__in=wanted).values_list("username", "pk"))
    relinked = [(ids[username], s) for username, s in wanted.items() if s.user_id != ids[username]]
    if relinked:
        # Student.user is one-to-one: whoever holds one of these logins now lets go of it first.
        Student.objects.filter(user_id__in=[pk for pk, _ in relinked]).update(user=None)
        for pk, student in relinked:
            student.user_id = pk
        Student.objects.bulk_update([s for _, s in relinked], ["user"], batch_size=BATCH)
    return len(wanted)


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
) -> list[tuple[Student, DemoStudent]]:
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
    return [(s, DemoStudent.parse(s.platform_id)) for s in students]


def _history(
    students: list[tuple[Student, DemoStudent]],
    school_class: SchoolClass,
    now: datetime,
    result: SeedResult,
) -> None:
    today = timezone.localdate(now)
    performance: list[DailyPerformance] = []
    assignments: list[Assignment] = []
    milestones: list[StudyPlanProgress] = []
    sync_states: list[StudentSyncState] = []
    for student, demo in students:
        result.profiles[demo.profile] = result.profiles.get(demo.profile, 0) + 1
        synced_at = history.last_synced_at(demo, now)
        as_of = synced_at or now
        performance += [
            DailyPerformance(student=student, synced_at=as_of, **day) for day in history.days(demo, today)
        ]
        assignments += [
            Assignment(
                student=student,
                school_class=school_class,
                platform_id=row["id"],
                title=row["title"],
                due_at=row["due_at"],
                submitted_at=row["submitted_at"],
                synced_at=as_of,
            )
            for row in history.assignments(demo, today, as_of)
        ]
        milestones += [
            StudyPlanProgress(
                student=student,
                platform_id=row["id"],
                title=row["title"],
                due_on=row["due_on"],
                completed_on=row["completed_on"],
                synced_at=as_of,
            )
            for row in history.milestones(today)
        ]
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
