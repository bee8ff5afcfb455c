"""The demo school's study plans: a catalogue, a published plan for every student, and a few open
drafts (one expiring soon, one high-impact waiting for a second approver). Idempotent."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.dispatch import receiver
from django.utils import timezone

from audit.services import record
from classroom.models import Enrollment, Organisation, Student, User
from classroom.signals import demo_seeded
from plans import schema
from plans.models import Curriculum, PlanDraft, PlanVersion, StudyPlan
from plans.services import approval_request, drafts_expire

CATALOGUE = {
    "alg1-core": ("Algebra I Core", "Mathematics"),
    "alg1-plus": ("Algebra I Plus", "Mathematics"),
    "geo-bridge": ("Geometry Bridge", "Mathematics"),
    "stats-intro": ("Intro to Statistics", "Mathematics"),
    "bio-found": ("Biology Foundations", "Science"),
    "bio-lab": ("Biology Lab Skills", "Science"),
}
PLANS_BY_SUBJECT = {
    "Mathematics": {
        "objectives": [
            "Solve two-step linear equations",
            "Graph linear functions from tables and equations",
            "Interpret slope and intercept in context",
        ],
        "curricula": ["alg1-core"],
        "pacing": {"weekly_minutes": 150, "sessions_per_week": 3},
    },
    "Science": {
        "objectives": [
            "Describe the structure and function of cells",
            "Explain how energy flows through ecosystems",
            "Design a controlled experiment",
        ],
        "curricula": ["bio-found"],
        "pacing": {"weekly_minutes": 120, "sessions_per_week": 3},
    },
}
MILESTONES = [
    "Foundations review",
    "Core unit complete",
    "Mid-term checkpoint",
    "Extension topic",
    "Final review",
]
MILESTONE_WEEKS = [4, 8, 12, 16, 19]


def demo_document(subject: str, today: Any) -> dict[str, Any]:
    """A plan that started eight weeks ago (a Monday) and runs twenty weeks."""
    spec = PLANS_BY_SUBJECT.get(subject, PLANS_BY_SUBJECT["Mathematics"])
    starts_on = today - timedelta(days=today.weekday() + 56)
    return schema.parse(
        {
            "starts_on": starts_on.isoformat(),
            "ends_on": (starts_on + timedelta(weeks=20)).isoformat(),
            "objectives": [{"text": text} for text in spec["objectives"]],
            "pacing": spec["pacing"],
            "curricula": spec["curricula"],
            "milestones": [
                {"title": title, "due": (starts_on + timedelta(weeks=week, days=4)).isoformat()}
                for title, week in zip(MILESTONES, MILESTONE_WEEKS, strict=True)
            ],
        }
    ).as_json()


@receiver(demo_seeded)
def seed_demo_plans(
    sender: Any, *, organisation: Organisation, users: dict[str, User], now: datetime, **kwargs: Any
) -> None:
    for code, (title, subject) in CATALOGUE.items():
        Curriculum.objects.update_or_create(
            organisation=organisation, code=code, defaults={"title": title, "subject": subject}
        )
    today = timezone.localdate(now)
    enrollments = (
        Enrollment.objects.filter(student__organisation=organisation, student__study_plan__isnull=True)
        .select_related("school_class")
        .prefetch_related("school_class__teacher_assignments__teacher")
        .order_by("student_id", "pk")
    )
    first_class: dict[int, Any] = {}
    for enrollment in enrollments:
        first_class.setdefault(enrollment.student_id, enrollment.school_class)
    plans = StudyPlan.objects.bulk_create([StudyPlan(student_id=pk) for pk in first_class])
    versions = []
    for study_plan in plans:
        school_class = first_class[study_plan.student_id]
        teacher = next((a.teacher for a in school_class.teacher_assignments.all()), users["admin"])
        versions.append(
            PlanVersion(
                plan=study_plan,
                number=1,
                document=demo_document(school_class.subject, today),
                rationale="Plan for the term, agreed at the start of the course",
                changes=["First plan of the term"],
                published_by=teacher,
                published_at=now - timedelta(weeks=8),
            )
        )
    PlanVersion.objects.bulk_create(versions)
    for study_plan, version in zip(plans, versions, strict=True):
        study_plan.current_version, study_plan.version_number = version, 1
    StudyPlan.objects.bulk_update(plans, ["current_version", "version_number"])
    drafts = _demo_drafts(organisation, users, now, today) if plans else 0
    if plans:
        record(
            verb="plans.demo_seeded",
            actor_name="system:seed_demo",
            target=organisation,
            why="demo study plans created",
            details={"plans": len(plans), "drafts": drafts, "catalogue": sorted(CATALOGUE)},
        )


def _demo_drafts(organisation: Organisation, users: dict[str, User], now: datetime, today: Any) -> int:
    """The first student of Algebra I · Period 2 has a draft expiring tomorrow (the dashboard's
    expiring-drafts alert); the second a curriculum swap waiting for a second approver."""
    students = list(
        Student.objects.filter(organisation=organisation, enrollments__school_class__platform_id="alg1-p2")
        .select_related("study_plan__current_version")
        .order_by("pk")[:2]
    )
    made = 0
    for n, student in enumerate(students):
        base = student.study_plan.current_version.document
        proposed = {**base, "pacing": {**base["pacing"]}}
        if n == 0:
            proposed["pacing"]["weekly_minutes"] += 15
            rationale = "Quiz scores slipping: a little more practice each week"
            created = now - timedelta(days=6)
        else:
            proposed["curricula"] = ["alg1-plus"]
            rationale = "Ready for more challenge: finished the core unit early"
            created = now - timedelta(hours=30)
        document = schema.parse(proposed)
        diff = schema.diff(schema.PlanDocument.model_validate(base), document)
        draft = PlanDraft.objects.create(
            plan=student.study_plan,
            base_number=1,
            document=document.as_json(),
            diff=diff.as_json(),
            rationale=rationale,
            source=PlanDraft.Source.FORM,
            author=users["ms.rivera"],
            created_at=created,
            expires_at=created + timedelta(days=7),
        )
        if n == 1:
            approval_request(draft=draft, by=users["ms.rivera"], reasons=["a new curriculum: alg1-plus"])
        made += 1
    drafts_expire(now=now)
    return made
