"""The demo school's study plans: a catalogue, a published plan for every student, a few open
drafts (one expiring soon, one high-impact waiting for a second approver), and `learner1`'s two
weeks in the learner app (an intent and its daily sessions). Idempotent."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.dispatch import receiver
from django.utils import timezone

from audit.services import record
from classroom.models import Enrollment, LearnerCheckIn, Organisation, Student, User
from classroom.signals import demo_seeded
from plans import schema
from plans.models import Curriculum, DailySession, LearnerIntent, PlanDraft, PlanVersion, StudyPlan
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
    _demo_learner_days(organisation, now)


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


# learner1's two weeks in the learner app: what intent.sync, day.run and day.done would have
# stored, written directly because the days lie in the past. The plans have the shape the
# rule-based planner (`tutor.orchestrator.compose`) gives them: the demo runs without a model.
LEARNER_INTENT = {
    "topic": "Linear equations",
    "depth": LearnerIntent.Depth.INFORMED,
    "end_goal": "Solve, graph and explain linear equations on my own by the mid-term checkpoint",
    "time_per_day_min": 30,
    "user_tz": "America/New_York",
    "meta": {"learning_style": "worked examples first"},
}
QUESTIONS = (
    "How would you explain the main idea of Linear equations to a friend who missed the lesson?",
    "What mistake is easy to make with Linear equations, and how would you spot it?",
)


@dataclass(frozen=True)
class DemoDay:
    """A day of the two weeks: the objective it works on (an index into the study plan's), one it
    reviews, and how it went; a day without minutes was missed."""

    focus: int
    review: int | None = None
    minutes: int | None = None
    confidence: int | None = None
    notes: str = ""
    degraded: bool = False


LEARNER_DAYS = (
    DemoDay(0, None, 28, 5, "Two-step equations confused me at first; the worked example helped."),
    DemoDay(0, None, 32, 6, "Most of them right, still slow when there are negatives."),
    DemoDay(0, None, 30, 6, "Negatives are better. Checked every answer by substituting."),
    DemoDay(0, None, 25, 7, "Finished early, the last three were fine."),
    DemoDay(1),
    DemoDay(1, 0, 30, 6, "Caught up on graphing from tables. Plotting is slow but fine."),
    DemoDay(1, None, 20, 7, "Short day, did the table part only."),
    DemoDay(1, 0, 30, 7, "Graphing from an equation made sense once I found the intercept first."),
    DemoDay(2, None, 35, 8, "Slope clicked with the staircase picture."),
    DemoDay(2),
    DemoDay(2, 1, 30, 6, "Slope is fine, the intercept in word problems is still tricky."),
    DemoDay(2, None, 30, 7, "Phone-plan problems: the monthly fee is the intercept!", degraded=True),
    DemoDay(2, 0, 27, 8, "Did all the word problems without hints."),
    DemoDay(2, 1, 30, 8, "Ready for harder context problems."),
)
AGENTS = ("clo", "alex", "ta", "socratic")


def _demo_learner_days(organisation: Organisation, now: datetime) -> None:
    """An active intent for `learner1` begun 14 days ago and a session each day until yesterday,
    in their time zone: mostly completed, two missed (each re-planned the next day), one degraded
    (an agent failed). Seeded once: a learner who has an intent already keeps what they did since."""
    student = (
        Student.objects.filter(organisation=organisation, user__username="learner1")
        .select_related("study_plan__current_version")
        .first()
    )
    if student is None or LearnerIntent.objects.filter(student=student).exists():
        return
    tz = ZoneInfo(LEARNER_INTENT["user_tz"])
    start = timezone.localtime(now, tz).date() - timedelta(days=len(LEARNER_DAYS))
    document = student.study_plan.current_version.document
    objectives = [(o["id"], o["text"]) for o in document["objectives"]]
    intent = LearnerIntent.objects.create(
        student=student, created_at=_local(start, time(5, 40), tz), **LEARNER_INTENT
    )
    sessions: list[DailySession] = []
    for offset, demo in enumerate(LEARNER_DAYS):
        on = start + timedelta(days=offset)
        week, day = offset // 7 + 1, offset % 7 + 1
        after_missed = sessions[-1] if sessions and sessions[-1].completed_at is None else None
        first_of_focus = offset == 0 or LEARNER_DAYS[offset - 1].focus != demo.focus
        session = DailySession(
            student=student,
            intent=intent,
            week=week,
            day=day,
            date=on,
            created_at=_local(on, time(6, 0), tz),
            **_demo_plan(demo, objectives, week, day, after_missed, first_of_focus),
        )
        if demo.minutes is not None:
            session.completion_time_min, session.confidence = demo.minutes, demo.confidence
            session.notes = demo.notes
            session.completed_at = _local(on, time(16 + offset % 3, 7 * offset % 50 + 5), tz)
            session.next_day_hint = _demo_hint(demo, week, day)
        sessions.append(session)
    DailySession.objects.bulk_create(sessions)
    completed = [s for s in sessions if s.completed_at is not None]
    # What day.done does with each: the learner's rating (1-10) becomes their check-in (1-5).
    LearnerCheckIn.objects.bulk_create(
        [
            LearnerCheckIn(
                student=student,
                date=s.date,
                confidence=math.ceil(s.confidence / 2),
                reported_at=s.completed_at,
            )
            for s in completed
        ],
        ignore_conflicts=True,
    )
    record(
        verb="plans.demo_learner_seeded",
        actor_name="system:seed_demo",
        target=intent,
        why=(
            f"demo learner history written directly: the intent {intent.topic!r} and "
            f"{len(sessions)} days of sessions, {len(completed)} completed"
        ),
        details={
            "first_day": start.isoformat(),
            "last_day": sessions[-1].date.isoformat(),
            "sessions": len(sessions),
            "completed": len(completed),
            "missed": [s.date.isoformat() for s in sessions if s.completed_at is None],
            "degraded": [s.date.isoformat() for s in sessions if s.degraded_mode],
        },
    )


def _local(on: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(on, at, tzinfo=tz)


def _demo_plan(
    demo: DemoDay,
    objectives: list[tuple[str, str]],
    week: int,
    day: int,
    unfinished: DailySession | None,
    first_of_focus: bool,
) -> dict[str, Any]:
    """A day's plan fields: a review (when one is due), the focus, questions and a reflection,
    in the learner's 30 minutes."""
    focus_id, title = objectives[demo.focus]
    reason = (
        "The next objective of your study plan that you have not practised yet."
        if first_of_focus
        else "It is due for review today: practising it now makes it stick."
    )
    replanned_from = unfinished.date.isoformat() if unfinished else None
    if unfinished is not None:
        title = unfinished.plan_json_summary["title"]
        reason = "You missed a day; this is what was left, re-planned for today instead of piled on top."
    blocks = []
    ids = [focus_id]
    if demo.review is not None:
        review_id, review_text = objectives[demo.review]
        ids.append(review_id)
        blocks.append(
            _block(
                f"Review: {review_text}",
                6,
                "Spaced review says you are about to forget this: a short recall now keeps it.",
                "clo",
            )
        )
    blocks += [
        _block(title, 16 if demo.review is not None else 22, reason, "clo"),
        _block(
            "Answer in your own words: " + " / ".join(QUESTIONS),
            5,
            "Explaining it yourself shows what you really understood.",
            "socratic",
        ),
        _block("Reflect: what was hard, what clicked", 3, "Your notes shape tomorrow's plan.", "plan"),
    ]
    description = (
        f"{LEARNER_INTENT['time_per_day_min']} minutes on {LEARNER_INTENT['topic']} "
        f"({LEARNER_INTENT['depth']}), towards: {LEARNER_INTENT['end_goal']}."
    )
    if unfinished is not None:
        description = f"Catching up calmly after a missed day. {description}"
    summary = {
        "title": title,
        "description": description,
        "steps": [b["title"] for b in blocks],
        "blocks": blocks,
        "total_minutes": sum(b["minutes"] for b in blocks),
        "objectives": ids,
        "replanned_from": replanned_from,
        "composer": "rules",
    }
    quality = {name: {"available": True, "fresh": True} for name in AGENTS}
    reasons = []
    if demo.degraded:
        quality["ta"]["fresh"] = False
        reasons.append("ta: 503 three times, gave up after 7.0 s; used its answer from the day before")
    first = week == 1 and day == 1
    return {
        "plan_md": _demo_markdown(summary, week, day),
        "plan_json_summary": summary,
        "plan_source": "rules",
        "degraded_mode": demo.degraded,
        "degraded_reasons": reasons,
        # The first day asks every agent; later ones find clo, alex and socratic still fresh or
        # confirmed (304), and ta (an hour's freshness) with news, unless it failed.
        "cache_hits": 0 if first else 4 if demo.degraded else 3,
        "cache_misses": 4 if first else 0 if demo.degraded else 1,
        "signal_quality": quality,
    }


def _block(title: str, minutes: int, reason: str, source: str) -> dict[str, Any]:
    return {"title": title, "minutes": minutes, "reason": reason, "source": source}


def _demo_markdown(summary: dict[str, Any], week: int, day: int) -> str:
    lines = [
        f"# Daily Learning Plan: week {week}, day {day}",
        "",
        f"## Today's Focus: {summary['title']}",
        "",
    ]
    lines += [summary["description"], ""]
    if summary["replanned_from"]:
        lines += [
            f"> Re-planned: the plan of {summary['replanned_from']} was not finished, "
            "so it comes first today.",
            "",
        ]
    lines += [
        f"{n}. **{b['title']}** ({b['minutes']} min): {b['reason']}"
        for n, b in enumerate(summary["blocks"], 1)
    ]
    lines += ["", f"Total: {summary['total_minutes']} minutes.", ""]
    lines.append("_Made by the rule-based planner (no model was used)._")
    return "\n".join(lines)


def _demo_hint(demo: DemoDay, week: int, day: int) -> str:
    """The next-day hint day.done gives: all these days took about the planned time."""
    next_day = f"day {day + 1}" if day < 7 else f"week {week + 1}, day 1"
    if (demo.confidence or 0) <= 5:
        return f"Good time investment! For {next_day}, revisit today's focus with a worked example first."
    return f"Good time investment! For {next_day}, focus on reinforcing concepts to build confidence."
