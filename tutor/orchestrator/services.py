"""Every write of the learner orchestrator: intents, day plans and their completion.

Each use case checks who is acting, writes in one transaction with its audit event, and never
holds a transaction open while agents or a model are asked (a day.run can take the whole budget).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Min
from django.utils import timezone

from audit.services import record
from classroom.models import Student, User
from classroom.services import check_in_record
from plans.models import DailySession, LearnerIntent
from tutor.models import AgentSignal
from tutor.orchestrator import compose
from tutor.orchestrator.contract import AGENTS, AgentRequest
from tutor.orchestrator.signals import freshness, gather

SYSTEM = "system:orchestrator"
# Active learners the daily job looks at per round of queries.
PREPARE_CHUNK = 1000
MAX_DAYS_AHEAD = 7
INTENT_FIELDS = ("topic", "depth", "end_goal", "time_per_day_min", "user_tz", "meta")


class OrchestratorError(Exception):
    """A refusal the API answers with `status` and `code` (the seed's codes)."""

    def __init__(
        self, status: int, code: str, detail: str, field: str = "", *, retry_after: int | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.field = status, code, detail, field
        self.retry_after = retry_after


def no_active_intent() -> OrchestratorError:
    return OrchestratorError(
        409, "NO_ACTIVE_INTENT", "this learner has no active intent: POST /api/orchestrator/intent.sync first"
    )


def active_intent(student: Student) -> LearnerIntent | None:
    return LearnerIntent.objects.filter(student=student, active=True).first()


def programme_start(student: Student, tz: ZoneInfo) -> date:
    """Week 1, day 1: the day of the learner's first intent, in their time zone."""
    first = (
        LearnerIntent.objects.filter(student=student)
        .order_by("created_at")
        .values_list("created_at", flat=True)
    )
    return timezone.localtime(first[0], tz).date()


def programme_date(start: date, week: int, day: int) -> date:
    return start + timedelta(days=(week - 1) * 7 + day - 1)


def programme_day(start: date, on: date) -> tuple[int, int]:
    offset = max(0, (on - start).days)
    return offset // 7 + 1, offset % 7 + 1


def _actor(by: User | None) -> dict[str, Any]:
    return {"actor": by} if by is not None else {"actor_name": SYSTEM}


@transaction.atomic
def intent_sync(*, student: Student, by: User | None, **fields: Any) -> LearnerIntent:
    """Make `fields` the learner's active intent. The same intent again changes nothing; another
    one deactivates the current (kept, inactive) and becomes the active one."""
    # One intent.sync at a time per learner: two at once would both deactivate and both insert.
    Student.objects.select_for_update().filter(pk=student.pk).first()
    current = active_intent(student)
    if current is not None and all(getattr(current, name) == fields[name] for name in INTENT_FIELDS):
        return current
    now = timezone.now()
    changes: dict[str, Any] = {}
    if current is not None:
        changes = {
            name: [getattr(current, name), fields[name]]
            for name in INTENT_FIELDS
            if name != "meta" and getattr(current, name) != fields[name]
        }
        LearnerIntent.objects.filter(pk=current.pk).update(active=False, deactivated_at=now)
    intent = LearnerIntent.objects.create(student=student, created_at=now, **fields)
    record(
        verb="orchestrator.intent_changed" if current else "orchestrator.intent_created",
        target=intent,
        why=(
            f"learning intent: {intent.topic} ({intent.depth}), {intent.time_per_day_min} min a day"
            + (f", replacing {current.topic}" if current and current.topic != intent.topic else "")
        ),
        details={
            "previous_intent_id": str(current.pk) if current else None,
            "changes": changes,
            "user_tz": intent.user_tz,
            "meta_keys": sorted(intent.meta),
        },
        **_actor(by),
    )
    return intent


@dataclass(frozen=True)
class DayRun:
    session: DailySession
    created: bool
    seconds: float


def day_run(*, student: Student, by: User | None, week: int, day: int, force_refresh: bool = False) -> DayRun:
    """The learner's plan for (week, day): the stored one, or (when there is none, or
    `force_refresh`) one made now from the agents' signals within ORCHESTRATOR_DAY_RUN_BUDGET.

    1. Refuse without an active intent (409) or for a day more than a week ahead (400).
    2. A day that has its session answers it as it is, unless `force_refresh`.
    3. Ask the agents (the cache first; degraded mode when they fail), compose the plan.
    4. Store it: the first of two concurrent runs wins, the other answers the winner's session.
    """
    started = time.monotonic()
    intent = active_intent(student)
    if intent is None:
        raise no_active_intent()
    tz = intent.tz
    start = programme_start(student, tz)
    on = programme_date(start, week, day)
    today = timezone.localtime(timezone.now(), tz).date()
    if on > today + timedelta(days=MAX_DAYS_AHEAD):
        raise OrchestratorError(
            400,
            "bad_request",
            f"week: week {week}, day {day} is {on}, more than {MAX_DAYS_AHEAD} days ahead; "
            "plans are made at most a week ahead",
            field="week",
        )
    existing = DailySession.objects.filter(student=student, week=week, day=day).first()
    if existing is not None and not force_refresh:
        return DayRun(existing, False, time.monotonic() - started)
    deadline = started + settings.ORCHESTRATOR_DAY_RUN_BUDGET
    # A forced refresh asks anew (a new idempotency key); retries within one run share theirs.
    run_tag = "" if existing is None else str((existing.refreshed_at or existing.created_at).timestamp())
    requests = {name: _agent_request(name, student, intent, week, day, on, run_tag) for name in AGENTS}
    signals = gather(
        student=student, intent=intent, requests=requests, force_refresh=force_refresh, deadline=deadline
    )
    plan = compose.compose(
        student=student, intent=intent, signals=signals, history=_history(student, on), on=on
    )
    values = {
        "intent": intent,
        "date": on,
        "plan_md": plan.markdown(week=week, day=day),
        "plan_json_summary": plan.summary(),
        "plan_source": plan.composer,
        "degraded_mode": signals.degraded,
        "degraded_reasons": signals.degraded_reasons,
        "cache_hits": signals.cache_hits,
        "cache_misses": signals.cache_misses,
        "signal_quality": signals.quality(),
    }
    session, created = _store(student, week, day, values, by=by, existing=existing, plan=plan)
    return DayRun(session, created, time.monotonic() - started)


def _agent_request(
    name: str, student: Student, intent: LearnerIntent, week: int, day: int, on: date, run_tag: str
) -> AgentRequest:
    key = hashlib.sha256(f"{intent.pk}:{week}:{day}:{name}:{run_tag}".encode()).hexdigest()[:40]
    return AgentRequest(
        agent=name,
        learner_id=student.platform_id,
        topic=intent.topic,
        depth=intent.depth,
        end_goal=intent.end_goal,
        time_per_day_min=intent.time_per_day_min,
        week=week,
        day=day,
        date=on.isoformat(),
        idempotency_key=key,
    )


def _history(student: Student, on: date) -> compose.History:
    """Days missed since the last completed one before `on`, and the latest unfinished plan."""
    before = list(
        DailySession.objects.filter(student=student, date__lt=on)
        .order_by("-date")
        .only("date", "week", "day", "plan_json_summary", "completed_at")[:14]
    )
    last_done = next((s.date for s in before if s.completed_at is not None), None)
    unfinished = next(
        (s for s in before if s.completed_at is None and (last_done is None or s.date > last_done)), None
    )
    if not before:
        return compose.History(missed_days=0, unfinished=None)
    since = last_done or before[-1].date - timedelta(days=1)
    return compose.History(missed_days=max(0, (on - since).days - 1), unfinished=unfinished)


def _store(
    student: Student,
    week: int,
    day: int,
    values: dict[str, Any],
    *,
    by: User | None,
    existing: DailySession | None,
    plan: compose.DayPlan,
) -> tuple[DailySession, bool]:
    try:
        with transaction.atomic():
            if existing is not None:
                values["refreshed_at"] = timezone.now()
                DailySession.objects.filter(pk=existing.pk).update(**values)
                session = DailySession.objects.select_related("student").get(pk=existing.pk)
                created = False
            else:
                session = DailySession.objects.create(student=student, week=week, day=day, **values)
                created = True
            record(
                verb="orchestrator.day_planned" if created else "orchestrator.day_replanned",
                target=session,
                why=(
                    f"week {week}, day {day}: {plan.title} ({plan.total_minutes} min, "
                    f"{'rules' if plan.composer == 'rules' else 'model'})"
                    + (
                        f"; degraded: {len(values['degraded_reasons'])} agent(s) failed"
                        if values["degraded_mode"]
                        else ""
                    )
                ),
                details={
                    "week": week,
                    "day": day,
                    "date": values["date"].isoformat(),
                    "composer": plan.composer,
                    "fallback_reason": plan.fallback_reason,
                    "degraded_mode": values["degraded_mode"],
                    "degraded_reasons": values["degraded_reasons"],
                    "cache_hits": values["cache_hits"],
                    "cache_misses": values["cache_misses"],
                    "signal_quality": values["signal_quality"],
                    "replanned_from": plan.replanned_from,
                },
                **_actor(by),
            )
    except IntegrityError:
        # Another day.run for the same day stored its session first: that one is the answer.
        return DailySession.objects.get(student=student, week=week, day=day), False
    return session, created


@dataclass(frozen=True)
class Completion:
    session: DailySession
    replayed: bool


def confidence_on_check_in_scale(confidence: int) -> int:
    """1-10 as the platform's check-in scale of 1-5: 1-2 → 1, 3-4 → 2, ... 9-10 → 5."""
    return math.ceil(confidence / 2)


@transaction.atomic
def day_done(
    *, session: DailySession, by: User | None, completion_time_min: int, confidence: int, notes: str
) -> Completion:
    """Complete the day. The same completion again answers as the first did; another one for a
    completed day is a conflict. The learner's confidence becomes their check-in of that day,
    which the low-confidence alert reads."""
    session = DailySession.objects.select_for_update().select_related("intent", "student").get(pk=session.pk)
    given = (completion_time_min, confidence, notes)
    if session.completed_at is not None:
        if (session.completion_time_min, session.confidence, session.notes) == given:
            return Completion(session, replayed=True)
        raise OrchestratorError(
            409,
            "ALREADY_COMPLETED",
            f"session {session.pk} was completed at {session.completed_at.isoformat()} with other values; "
            "a completed day is not changed",
        )
    now = timezone.now()
    session.completion_time_min, session.confidence, session.notes = given
    session.completed_at = now
    session.next_day_hint = compose.next_day_hint(
        session=session,
        minutes=completion_time_min,
        confidence=confidence,
        notes=notes,
        time_per_day_min=session.intent.time_per_day_min,
    )
    session.save(
        update_fields=["completion_time_min", "confidence", "notes", "completed_at", "next_day_hint"]
    )
    tz = session.intent.tz
    check_in_record(
        student=session.student,
        day=timezone.localtime(now, tz).date(),
        confidence=confidence_on_check_in_scale(confidence),
    )
    record(
        verb="orchestrator.day_completed",
        target=session,
        why=(
            f"week {session.week}, day {session.day} done: "
            f"{completion_time_min} min, confidence {confidence}/10"
        ),
        # The notes are the learner's own words: the log keeps their length, never the text.
        details={
            "week": session.week,
            "day": session.day,
            "completion_time_min": completion_time_min,
            "confidence": confidence,
            "notes_chars": len(notes),
        },
        **_actor(by),
    )
    # What clo knows changed: this day's confidence moves the objectives' next reviews.
    AgentSignal.objects.filter(student_id=session.student_id, agent="clo").update(
        checked_at=now - freshness("clo")
    )
    student_id = session.student_id
    transaction.on_commit(lambda: _recompute_alerts(student_id))
    return Completion(session, replayed=False)


def _recompute_alerts(student_id: int) -> None:
    from django_q.tasks import async_task

    async_task(
        "classroom.tasks.recompute_student_alerts", student_id, task_name=f"alerts-student-{student_id}"
    )


def next_run(
    intent: LearnerIntent, latest: DailySession | None, *, now: datetime | None = None
) -> dict[str, Any]:
    """The seed's `next_scheduled_run`: the next programme day without a plan, and when the daily
    job prepares it (ORCHESTRATOR_PREPARE_AT in the learner's zone; now, if that has passed)."""
    tz = intent.tz
    now = now or timezone.now()
    today = timezone.localtime(now, tz).date()
    start = programme_start(intent.student, tz)
    on = today if latest is None or latest.date < today else latest.date + timedelta(days=1)
    week, day = programme_day(start, on)
    hour, minute = (int(part) for part in settings.ORCHESTRATOR_PREPARE_AT.split(":"))
    at = datetime.combine(on, datetime.min.time().replace(hour=hour, minute=minute), tzinfo=tz)
    return {
        "week": week,
        "day": day,
        "estimated_time": max(at, now).astimezone(ZoneInfo("UTC")).isoformat().replace("+00:00", "Z"),
        "timezone": intent.user_tz,
    }


def due_preparations(*, now: datetime | None = None) -> list[tuple[int, int, int]]:
    """The daily job's work: (student id, week, day) of each active learner whose local time has
    reached ORCHESTRATOR_PREPARE_AT and who has no plan for today yet. Three queries per
    PREPARE_CHUNK active learners, whatever their history."""
    now = now or timezone.now()
    hour, minute = (int(part) for part in settings.ORCHESTRATOR_PREPARE_AT.split(":"))
    active = (
        LearnerIntent.objects.filter(active=True).order_by("student_id").values_list("student_id", "user_tz")
    )
    due = []
    for chunk in _chunks(active.iterator(chunk_size=PREPARE_CHUNK), PREPARE_CHUNK):
        ids = [student_id for student_id, _ in chunk]
        starts = dict(
            LearnerIntent.objects.filter(student_id__in=ids)
            .values("student_id")
            .annotate(first=Min("created_at"))
            .values_list("student_id", "first")
        )
        wanted, today = {}, set()
        for student_id, zone in chunk:
            local = timezone.localtime(now, ZoneInfo(zone))
            if (local.hour, local.minute) >= (hour, minute):
                start = timezone.localtime(starts[student_id], ZoneInfo(zone)).date()
                wanted[student_id] = programme_day(start, local.date())
                today.add(local.date())
        planned = set(
            DailySession.objects.filter(student_id__in=wanted, date__in=today).values_list(
                "student_id", "week", "day"
            )
        )
        due += [(sid, week, day) for sid, (week, day) in wanted.items() if (sid, week, day) not in planned]
    return due


def _chunks(rows: Iterator[tuple[int, str]], size: int) -> Iterator[list[tuple[int, str]]]:
    chunk: list[tuple[int, str]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
