"""What the orchestrator's endpoints and the teacher's student page read, in a fixed number of
queries whatever the learner's history."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Avg, Count, Q, Sum
from django.utils import timezone

from classroom.models import Student
from plans.models import DailySession, LearnerIntent
from tutor.models import AgentSignal
from tutor.orchestrator.contract import AGENTS
from tutor.orchestrator.services import next_run
from tutor.orchestrator.signals import is_fresh

# The streak is counted over at most this many of the latest completed days.
STREAK_HORIZON = 400


def moment(value: datetime | None) -> str | None:
    """A time as the API gives it: UTC, ISO 8601, with a Z."""
    if value is None:
        return None
    return value.astimezone(ZoneInfo("UTC")).isoformat().replace("+00:00", "Z")


def intent_json(intent: LearnerIntent) -> dict[str, Any]:
    return {
        "intent_id": str(intent.pk),
        "active": intent.active,
        "topic": intent.topic,
        "depth": intent.depth,
        "end_goal": intent.end_goal,
        "time_per_day_min": intent.time_per_day_min,
        "user_tz": intent.user_tz,
        "created_at": moment(intent.created_at),
    }


def day_run_json(session: DailySession) -> dict[str, Any]:
    return {
        "session_id": str(session.pk),
        "plan_md": session.plan_md,
        "plan_json_summary": session.plan_json_summary,
        "degraded_mode": session.degraded_mode,
        "cache_hits": session.cache_hits,
        "cache_misses": session.cache_misses,
        "signal_quality": session.signal_quality,
    }


def completion_json(session: DailySession) -> dict[str, Any] | None:
    if session.completed_at is None:
        return None
    return {
        "completion_time_min": session.completion_time_min,
        "confidence": session.confidence,
        "notes": session.notes,
        "completed_at": moment(session.completed_at),
    }


def day_done_json(session: DailySession) -> dict[str, Any]:
    return {
        "ok": True,
        "next_day_hint": session.next_day_hint,
        "completion_summary": {"session_id": str(session.pk), **(completion_json(session) or {})},
    }


def streak_days(completed: list[datetime], tz: ZoneInfo, today: date) -> int:
    """Consecutive days, in the learner's zone, with a completed session, ending today (or
    yesterday: today is not over yet)."""
    days = {timezone.localtime(at, tz).date() for at in completed}
    day = today if today in days else today - timedelta(days=1)
    streak = 0
    while day in days:
        streak += 1
        day -= timedelta(days=1)
    return streak


def status(student: Student, *, now: datetime | None = None) -> dict[str, Any]:
    """The seed's `status`: intent, latest session, each agent's freshness, the next run and the
    learning stats. Six queries."""
    now = now or timezone.now()
    intent = LearnerIntent.objects.filter(student=student, active=True).select_related("student").first()
    sessions = DailySession.objects.filter(student=student)
    latest = sessions.select_related("intent").order_by("-date", "-created_at").first()
    cached = {row.agent: row for row in AgentSignal.objects.filter(student=student)}
    stats = sessions.aggregate(
        total=Count("pk"),
        completed=Count("pk", filter=Q(completed_at__isnull=False)),
        minutes=Sum("completion_time_min"),
        confidence=Avg("confidence"),
    )
    completed = list(
        sessions.filter(completed_at__isnull=False)
        .order_by("-completed_at")
        .values_list("completed_at", flat=True)[:STREAK_HORIZON]
    )
    tz = intent.tz if intent else ZoneInfo("UTC")
    return {
        "user_id": student.platform_id,
        "active_intent": _active_intent_json(intent),
        "latest_session": _latest_json(latest),
        "signal_freshness": {
            name: {
                "available": name in cached,
                "fresh": name in cached and is_fresh(cached[name], now),
                "last_updated": moment(cached[name].checked_at) if name in cached else None,
            }
            for name in AGENTS
        },
        "next_scheduled_run": next_run(intent, latest, now=now) if intent else None,
        "learning_stats": {
            "total_sessions": stats["total"],
            "completed_sessions": stats["completed"],
            "total_time_min": stats["minutes"] or 0,
            "average_confidence": round(stats["confidence"], 1) if stats["confidence"] is not None else None,
            "current_streak_days": streak_days(completed, tz, timezone.localtime(now, tz).date()),
        },
    }


def _active_intent_json(intent: LearnerIntent | None) -> dict[str, Any] | None:
    if intent is None:
        return None
    data = intent_json(intent)
    data["id"] = data.pop("intent_id")
    data.pop("active")
    return data


def _latest_json(session: DailySession | None) -> dict[str, Any] | None:
    if session is None:
        return None
    return {
        "id": str(session.pk),
        "week": session.week,
        "day": session.day,
        "topic": session.intent.topic,
        "plan_title": (session.plan_json_summary or {}).get("title", ""),
        "degraded_mode": session.degraded_mode,
        "created_at": moment(session.created_at),
        "completion": completion_json(session),
    }


def recent_sessions(student: Student, *, limit: int = 14) -> list[DailySession]:
    """The teacher's view: the learner's latest days, newest first."""
    return list(
        DailySession.objects.filter(student=student).select_related("intent").order_by("-date")[:limit]
    )


def teacher_panel(student: Student, *, now: datetime | None = None) -> dict[str, Any]:
    """The "Learner's day" panel of the teacher's student page: the active intent, today's plan
    (today in the learner's zone), the latest 14 sessions and the current streak, as ready values.
    Three queries whatever the history (one for a learner without an intent)."""
    intent = LearnerIntent.objects.filter(student=student, active=True).first()
    if intent is None:
        return {"intent": None}
    now = now or timezone.now()
    tz = intent.tz
    today = timezone.localtime(now, tz).date()
    sessions = recent_sessions(student)
    completed = list(
        DailySession.objects.filter(student=student, completed_at__isnull=False)
        .order_by("-completed_at")
        .values_list("completed_at", flat=True)[:STREAK_HORIZON]
    )
    todays = next((s for s in sessions if s.date == today), None)
    return {
        "intent": intent,
        "today": today,
        "plan": _panel_plan(todays) if todays is not None else None,
        "sessions": [_panel_row(s, today) for s in sessions],
        "streak_days": streak_days(completed, tz, today),
    }


def _panel_plan(session: DailySession) -> dict[str, Any]:
    summary = session.plan_json_summary or {}
    blocks = [
        {"title": b.get("title", ""), "minutes": b.get("minutes", 0), "reason": b.get("reason", "")}
        for b in summary.get("blocks", [])
        if isinstance(b, dict)
    ]
    replanned_from = summary.get("replanned_from")
    return {
        "session": session,
        "title": summary.get("title", ""),
        "description": summary.get("description", ""),
        "blocks": blocks,
        "total_minutes": summary.get("total_minutes") or sum(b["minutes"] for b in blocks),
        "by_model": session.plan_source == "model",
        "replanned_from": date.fromisoformat(replanned_from) if replanned_from else None,
    }


def _panel_row(session: DailySession, today: date) -> dict[str, Any]:
    if session.completed_at is not None:
        state = "done"
    else:
        state = "missed" if session.date < today else "today" if session.date == today else "planned"
    return {
        "date": session.date,
        "week": session.week,
        "day": session.day,
        "title": (session.plan_json_summary or {}).get("title", ""),
        "state": state,
        "minutes": session.completion_time_min,
        "confidence": session.confidence,
        "degraded": session.degraded_mode,
    }
