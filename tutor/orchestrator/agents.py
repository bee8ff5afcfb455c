"""The four signal sources of a learner's day, built in over our own data.

Each answers the same question (`AgentRequest`: this learner, this day) with a small JSON
document; any of them can instead be a remote HTTP agent (`tutor.orchestrator.remote`) when
`ORCHESTRATOR_AGENT_URLS` names one. Built-in agents read the database, so they run in the
request's thread; remote ones run on threads meanwhile.

- `clo`: the curriculum and learning objectives: the published study plan, its curricula from
  the catalogue, and which objectives are due for review (FSRS, replayed from the learner's
  completed days and their confidence).
- `ta`: assignments, deadlines and recent performance, from the platform mirrors.
- `alex`: the learner's profile from the proactive engine: patterns, proactiveness, engagement.
- `socratic`: questions for today, through the LLM gateway (templates without a model).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from django.utils import timezone
from fsrs import Card, Rating, Scheduler

from classroom.models import Assignment, DailyPerformance, Student, StudyPlanProgress
from plans.models import Curriculum, DailySession, LearnerIntent, StudyPlan
from tutor.chat.prompts import DATA_RULE, data_section
from tutor.llm import gateway
from tutor.llm.pseudonyms import Pseudonyms
from tutor.models import EngagementEvent, ObservedPattern, ProactivenessSettings
from tutor.orchestrator.contract import AgentRequest

BuiltIn = Callable[[Student, LearnerIntent, AgentRequest], dict[str, Any]]

# Days are reviewed, not minutes: no learning steps, and no fuzz, so a replay gives the same dates.
_SCHEDULER = Scheduler(learning_steps=(), relearning_steps=(), enable_fuzzing=False)


def review_rating(confidence: int) -> Rating:
    """A day's confidence (1 to 10) as an FSRS rating: 1-3 again, 4-5 hard, 6-8 good, 9-10 easy."""
    if confidence <= 3:
        return Rating.Again
    if confidence <= 5:
        return Rating.Hard
    return Rating.Good if confidence <= 8 else Rating.Easy


def reviews_due(student: Student, objective_ids: list[str], on: date, tz: tzinfo) -> list[dict[str, Any]]:
    """Each objective the learner has practised, with when FSRS next asks for it: the learner's
    completed days that covered it, replayed in order with their confidence. Due first. Due on
    `on` means by the end of that day on the learner's clock (`tz`), not UTC's: a learner in New
    York who finishes at 9 pm is asked again the next evening, not two days on."""
    cards: dict[str, Card] = {}
    completed = (
        DailySession.objects.filter(student=student, completed_at__isnull=False, confidence__isnull=False)
        .order_by("completed_at")
        .values_list("plan_json_summary", "confidence", "completed_at")
    )
    for summary, confidence, completed_at in completed:
        for objective_id in (summary or {}).get("objectives", []):
            if objective_id in objective_ids:
                card = cards.get(objective_id) or Card(card_id=objective_ids.index(objective_id) + 1)
                cards[objective_id], _ = _SCHEDULER.review_card(
                    card, review_rating(confidence), review_datetime=completed_at
                )
    end_of_day = datetime.combine(on, datetime.max.time(), tzinfo=tz)
    due = [
        {
            "objective_id": objective_id,
            "due_on": card.due.astimezone(tz).date().isoformat(),
            "due": card.due <= end_of_day,
        }
        for objective_id, card in cards.items()
    ]
    return sorted(due, key=lambda item: item["due_on"])


def clo(student: Student, intent: LearnerIntent, request: AgentRequest) -> dict[str, Any]:
    study_plan = StudyPlan.objects.filter(student=student).select_related("current_version").first()
    document = study_plan.current_version.document if study_plan and study_plan.current_version else None
    if document is None:
        return {"objectives": [], "curricula": [], "milestones": [], "reviews": [], "has_plan": False}
    on = date.fromisoformat(request.date)
    titles = dict(
        Curriculum.objects.filter(
            organisation_id=student.organisation_id, code__in=document["curricula"]
        ).values_list("code", "title")
    )
    objectives = [{"id": o["id"], "text": o["text"]} for o in document["objectives"]]
    return {
        "has_plan": True,
        "objectives": objectives,
        "curricula": [{"code": code, "title": titles.get(code, code)} for code in document["curricula"]],
        "milestones": [m for m in document["milestones"] if m["due"] >= request.date][:5],
        "weekly_minutes": document["pacing"]["weekly_minutes"],
        "reviews": reviews_due(student, [o["id"] for o in objectives], on, intent.tz),
    }


def ta(student: Student, intent: LearnerIntent, request: AgentRequest) -> dict[str, Any]:
    on = date.fromisoformat(request.date)
    now = timezone.now()
    open_work = Assignment.objects.filter(student=student, submitted_at__isnull=True).order_by("due_at")
    recent = list(
        DailyPerformance.objects.filter(student=student, date__gt=on - timedelta(days=14), date__lte=on)
        .order_by("date")
        .values_list("date", "study_minutes", "mastery")
    )
    mastery = [m for _, _, m in recent if m is not None]
    return {
        "deadlines": [
            {"title": a.title, "due_at": a.due_at.isoformat(), "overdue": a.due_at < now}
            for a in open_work.filter(due_at__lte=now + timedelta(days=7))[:5]
        ],
        "milestones": [
            {"title": m.title, "due_on": m.due_on.isoformat()}
            for m in StudyPlanProgress.objects.filter(
                student=student, completed_on__isnull=True, due_on__gte=on, due_on__lte=on + timedelta(days=7)
            )[:5]
        ],
        "recent_minutes": sum(minutes for _, minutes, _ in recent),
        "mastery": round(mastery[-1], 2) if mastery else None,
        "mastery_trend": round(mastery[-1] - mastery[0], 3) if len(mastery) >= 2 else None,
    }


def alex(student: Student, intent: LearnerIntent, request: AgentRequest) -> dict[str, Any]:
    since = timezone.now() - timedelta(days=30)
    responses = list(
        EngagementEvent.objects.filter(student=student, at__gte=since).values_list("response", flat=True)
    )
    prefs = ProactivenessSettings.objects.filter(student=student).first()
    minutes = list(
        DailyPerformance.objects.filter(student=student, study_minutes__gt=0)
        .order_by("-date")
        .values_list("study_minutes", flat=True)[:14]
    )
    accepted = responses.count(EngagementEvent.Response.ACCEPTED)
    return {
        "patterns": [
            {"kind": kind, "description": description}
            for kind, description in ObservedPattern.objects.filter(student=student).values_list(
                "kind", "description"
            )
        ],
        "proactiveness": prefs.level if prefs else ProactivenessSettings.Level.NORMAL,
        "acceptance_rate": round(accepted / len(responses), 2) if responses else None,
        "typical_session_minutes": sorted(minutes)[len(minutes) // 2] if minutes else None,
    }


QUESTION_TEMPLATES = {
    LearnerIntent.Depth.SURFACE: [
        "In one sentence, what is {topic} about?",
        "Where might you meet {topic} outside class?",
        "What is one word you learned about {topic}, and what does it mean?",
    ],
    LearnerIntent.Depth.INFORMED: [
        "How would you explain the main idea of {topic} to a friend who missed the lesson?",
        "What mistake is easy to make with {topic}, and how would you spot it?",
        "How does today's work on {topic} bring you closer to: {goal}?",
    ],
    LearnerIntent.Depth.EXPERT: [
        "What assumption behind {topic} would you test first, and how?",
        "Where does the usual method for {topic} break down?",
        "How would you teach {topic} so that a learner could reach: {goal}?",
    ],
}


def template_questions(intent: LearnerIntent) -> list[str]:
    return [q.format(topic=intent.topic, goal=intent.end_goal) for q in QUESTION_TEMPLATES[intent.depth]]


def socratic(student: Student, intent: LearnerIntent, request: AgentRequest) -> dict[str, Any]:
    """Three questions for today through the LLM gateway; without a model, the depth's templates."""
    templates = template_questions(intent)
    pseudonyms = Pseudonyms.for_student(student)
    reply = gateway.complete(
        purpose="the learner's questions for today",
        system=(
            "You write three short Socratic questions for a learner's study session today, one per "
            f"line, no numbering, no answers. {DATA_RULE}"
        ),
        messages=[
            {
                "role": "user",
                "content": data_section(
                    f"Topic: {intent.topic}\nDepth: {intent.depth}\nGoal: {intent.end_goal}\n"
                    f"Week {request.week}, day {request.day}"
                ),
            }
        ],
        fallback=lambda: "\n".join(templates),
        actor="system:orchestrator",
        organisation_id=student.organisation_id,
        student_id=student.pk,
        pseudonyms=pseudonyms,
    )
    lines = [line.strip(" -•\t") for line in pseudonyms.unmask(reply.text).splitlines()]
    questions = [line for line in lines if line][:3]
    return {"questions": questions or templates, "source": reply.source}


BUILT_IN: dict[str, BuiltIn] = {"clo": clo, "alex": alex, "ta": ta, "socratic": socratic}
