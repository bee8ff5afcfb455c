"""`/api/orchestrator/...`: the learner's day, as seeds/003_* gives it, field for field.

Who may call: a learner with their own bearer token (for themselves); a service token of the
learner app (`create_api_token --service NAME`), for a learner of its organisation named by
`X-User-ID` (the learner's platform id); for status, a teacher for a student in their classes
(`?student_id=`). Each learner's calls go through a token bucket per endpoint (429 with
Retry-After).
"""

from __future__ import annotations

import json
import math
from typing import Any
from uuid import UUID
from zoneinfo import available_timezones

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from ninja import Field, Header, Router, Schema, Status
from pydantic import field_validator

from classroom.access import get_student_for_user
from classroom.inputs import NOTE, Id
from classroom.models import Student, User
from plans.models import DailySession, LearnerIntent
from tutor.orchestrator import ratelimit, selectors, services
from tutor.orchestrator.services import OrchestratorError

router = Router(tags=["learner orchestrator"])
META_BYTES = 8 * 1024
_ZONES = frozenset(available_timezones())


class ErrorOut(Schema):
    error: str
    detail: str
    fields: dict[str, list[str]] = {}


class IntentIn(Schema):
    topic: str = Field(min_length=1, max_length=200)
    depth: LearnerIntent.Depth
    end_goal: str = Field(min_length=1, max_length=500)
    time_per_day_min: int = Field(ge=5, le=480)
    user_tz: str = Field(default=settings.TIME_ZONE, max_length=64, description="An IANA time zone.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Free-form, at most 8 KiB as JSON.")

    @field_validator("topic", "end_goal")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("user_tz")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value not in _ZONES:
            raise ValueError(f"{value[:64]!r} is not an IANA time zone (such as America/New_York)")
        return value

    @field_validator("meta")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value, ensure_ascii=False).encode()) > META_BYTES:
            raise ValueError(f"is larger than {META_BYTES // 1024} KiB as JSON")
        return value


class IntentOut(Schema):
    intent_id: str
    active: bool
    topic: str
    depth: str
    end_goal: str
    time_per_day_min: int
    user_tz: str
    created_at: str


class DayRunIn(Schema):
    week: int = Field(ge=1, le=520)
    day: int = Field(ge=1, le=7)
    force_refresh: bool = False


class SignalQuality(Schema):
    available: bool
    fresh: bool


class DayRunOut(Schema):
    session_id: str
    plan_md: str
    plan_json_summary: dict[str, Any]
    degraded_mode: bool
    cache_hits: int
    cache_misses: int
    signal_quality: dict[str, SignalQuality]


class DayDoneIn(Schema):
    session_id: UUID
    completion_time_min: int = Field(ge=0, le=1440)
    confidence: int = Field(ge=1, le=10)
    notes: str = Field(default="", max_length=NOTE)


class CompletionSummary(Schema):
    session_id: str
    completion_time_min: int
    confidence: int
    notes: str
    completed_at: str


class DayDoneOut(Schema):
    ok: bool
    next_day_hint: str
    completion_summary: CompletionSummary


class StatusOut(Schema):
    user_id: str
    active_intent: dict[str, Any] | None
    latest_session: dict[str, Any] | None
    signal_freshness: dict[str, dict[str, Any]]
    next_scheduled_run: dict[str, Any] | None
    learning_stats: dict[str, Any]


USER_HEADER = Header(
    default=None,
    alias="X-User-ID",
    max_length=64,
    description="The learner's platform id; only with a service token (create_api_token --service).",
)
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 429: ErrorOut}


def learner_for(request: HttpRequest, x_user_id: str | None) -> Student:
    """The learner the call is for: the caller, or the one a service token names."""
    user: User = request.auth
    if user.role == User.Role.SERVICE:
        if not x_user_id:
            raise OrchestratorError(
                400, "bad_request", "X-User-ID: a service token names the learner", "X-User-ID"
            )
        student = Student.objects.filter(organisation_id=user.organisation_id, platform_id=x_user_id).first()
        if student is None:
            raise Http404
        return student
    if x_user_id is not None:
        raise PermissionDenied(
            "X-User-ID is only for a learner app's service token; a learner acts for themselves"
        )
    if user.role != User.Role.LEARNER:
        raise PermissionDenied("only a learner, or their learner app, runs a learner's day")
    student = Student.objects.filter(user=user).first()
    if student is None:
        raise Http404
    return student


def throttle(student: Student, endpoint: str) -> None:
    per_minute, burst = ratelimit.limit_for(endpoint)
    decision = ratelimit.take(f"orchestrator:{endpoint}:{student.pk}", per_minute=per_minute, burst=burst)
    if not decision.allowed:
        wait = max(1, math.ceil(decision.retry_after))
        raise OrchestratorError(
            429,
            "rate_limited",
            f"too many {endpoint} calls for this learner: at most {per_minute} a minute "
            f"(bursts of {burst}); try again in {wait} s",
            retry_after=wait,
        )


@router.post("/intent.sync", response={200: IntentOut, **ERRORS})
def intent_sync(request: HttpRequest, body: IntentIn, x_user_id: str | None = USER_HEADER) -> dict[str, Any]:
    """Create or update the learner's intent: the same intent again changes nothing; another
    one becomes the active intent and the former is kept, inactive."""
    student = learner_for(request, x_user_id)
    throttle(student, "intent.sync")
    intent = services.intent_sync(student=student, by=request.auth, **body.dict())
    return selectors.intent_json(intent)


@router.post("/day.run", response={200: DayRunOut, 201: DayRunOut, **ERRORS})
def day_run(request: HttpRequest, body: DayRunIn, x_user_id: str | None = USER_HEADER) -> Status:
    """The plan of (week, day): made now from the agents' signals (201), or the stored one (200);
    `force_refresh` makes it again. 409 NO_ACTIVE_INTENT without an intent."""
    student = learner_for(request, x_user_id)
    throttle(student, "day.run")
    run = services.day_run(
        student=student, by=request.auth, week=body.week, day=body.day, force_refresh=body.force_refresh
    )
    return Status(201 if run.created else 200, selectors.day_run_json(run.session))


@router.post("/day.done", response={200: DayDoneOut, **ERRORS})
def day_done(request: HttpRequest, body: DayDoneIn, x_user_id: str | None = USER_HEADER) -> dict[str, Any]:
    """Complete a session of the learner's: the same body again answers the same; another body
    for a completed session is 409 ALREADY_COMPLETED; someone else's session is 404."""
    student = learner_for(request, x_user_id)
    throttle(student, "day.done")
    session = DailySession.objects.filter(pk=body.session_id, student=student).first()
    if session is None:
        raise Http404
    done = services.day_done(
        session=session,
        by=request.auth,
        completion_time_min=body.completion_time_min,
        confidence=body.confidence,
        notes=body.notes.strip(),
    )
    return selectors.day_done_json(done.session)


@router.get("/status", response={200: StatusOut, **ERRORS})
def status(
    request: HttpRequest, student_id: Id | None = None, x_user_id: str | None = USER_HEADER
) -> dict[str, Any]:
    """The learner's intent, latest session, signal freshness, next run and stats. A teacher
    reads a student of their classes with `?student_id=`."""
    if student_id is not None:
        if x_user_id is not None:
            raise PermissionDenied("give either X-User-ID or student_id, not both")
        student = get_student_for_user(request.auth, student_id)
    else:
        student = learner_for(request, x_user_id)
        throttle(student, "status")
    return selectors.status(student)
