"""`/api/schedules` and `/api/proactive/*`: learner apps read their own schedules, runs, settings
and profile; teachers and organisation admins read the students they reach (classroom.access) and
create schedules for them. Errors are the house format; a bad schedule is 400 `invalid_schedule`
naming the field (tutor/api.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Query, Router, Schema, Status
from ninja.errors import ValidationError
from pydantic import ConfigDict, Field

from classroom.access import get_student_for_user
from classroom.inputs import INTENT, Id
from classroom.models import Student, User
from tutor.models import ObservedPattern, ScheduledTask, TaskRun
from tutor.proactive import selectors, services
from tutor.proactive.timing import MAX_CRON, MAX_ZONE_NAME

schedules_router = Router(tags=["schedules"])
proactive_router = Router(tags=["proactive"])


class ErrorOut(Schema):
    error: str
    detail: str
    fields: dict[str, list[str]] = {}


# Past any list a person pages through, and far from the 64-bit bound offset + limit must stay under.
MAX_OFFSET = 1_000_000


class PageIn(Schema):
    limit: int = Field(default=50, ge=1, le=200, description="How many rows (at most 200).")
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET, description="How many rows to skip.")


class ScheduleFilterIn(PageIn):
    student_id: Id | None = Field(default=None, description="Only this student's schedules.")
    status: str | None = Field(
        default=None,
        description="Only schedules in this status.",
        json_schema_extra={"enum": ScheduledTask.Status.values},
    )


class ScheduleIn(Schema):
    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["cron"]}, {"required": ["run_at"]}]})

    student_id: Id = Field(description="A student in your classes.")
    kind: str = Field(json_schema_extra={"enum": ScheduledTask.Kind.values})
    intent: str = Field(
        min_length=3, max_length=INTENT, description="What the message should say or ask, in your words."
    )
    cron: str = Field(
        default="",
        max_length=MAX_CRON,
        description="Recurring: five cron fields (minute hour day month weekday) read in `time_zone`. "
        "Give this or `run_at`.",
    )
    run_at: datetime | None = Field(
        default=None, description="Once, at this time (read in `time_zone` when it has no offset)."
    )
    time_zone: str = Field(
        default="", max_length=MAX_ZONE_NAME, description="IANA name; the server's zone if empty."
    )
    pattern_id: Id | None = Field(default=None, description="The student's observed pattern it rests on.")


READ_ERRORS = {400: ErrorOut, 401: ErrorOut, 404: ErrorOut}


def _bad(field: str, problem: str) -> ValidationError:
    return ValidationError([{"loc": ("query", field), "msg": problem}])


def _is_learner(user: User) -> bool:
    return user.role == User.Role.LEARNER and not user.is_superuser


def _student(user: User, student_id: int | None) -> Student:
    """A learner's own record (student_id optional, and only theirs), or a student the staff member
    reaches (student_id required); 404 for anything else."""
    if _is_learner(user):
        own = Student.objects.filter(user=user).first()
        if own is None or student_id not in (None, own.pk):
            raise Http404
        return own
    if student_id is None:
        raise _bad("student_id", "pass ?student_id= with a student in your classes")
    return get_student_for_user(user, student_id)


def _schedules(user: User) -> QuerySet[ScheduledTask]:
    if _is_learner(user):
        return ScheduledTask.objects.filter(student__user=user).select_related("student", "owner", "pattern")
    return selectors.schedules_for(user)


def _page(rows: QuerySet, page: PageIn, to_json: Any) -> dict[str, Any]:
    return {
        "count": rows.count(),
        "limit": page.limit,
        "offset": page.offset,
        "items": [to_json(row) for row in rows[page.offset : page.offset + page.limit]],
    }


@schedules_router.get("", response={200: dict, **READ_ERRORS})
def schedule_list(request: HttpRequest, filters: Query[ScheduleFilterIn]) -> dict[str, Any]:
    """The schedules you reach (a learner: their own), soonest due first; `{count, limit, offset, items}`."""
    rows = _schedules(request.user)
    if filters.student_id is not None:
        rows = rows.filter(student=_student(request.user, filters.student_id))
    if filters.status is not None:
        if filters.status not in ScheduledTask.Status.values:
            raise _bad("status", f"must be one of {', '.join(ScheduledTask.Status.values)}")
        rows = rows.filter(status=filters.status)
    rows = rows.order_by(F("next_run_at").asc(nulls_last=True), "pk")
    return _page(rows, filters, selectors.schedule_json)


@schedules_router.get("/{schedule_id}", response={200: dict, **READ_ERRORS})
def schedule_get(request: HttpRequest, schedule_id: Id) -> dict[str, Any]:
    return selectors.schedule_json(get_object_or_404(_schedules(request.user), pk=schedule_id))


@schedules_router.get("/{schedule_id}/runs", response={200: dict, **READ_ERRORS})
def schedule_runs(request: HttpRequest, schedule_id: Id, page: Query[PageIn]) -> dict[str, Any]:
    """The schedule's runs, newest first: what was sent or why not, with its duration."""
    task = get_object_or_404(_schedules(request.user), pk=schedule_id)
    rows = TaskRun.objects.filter(task=task).order_by("-scheduled_for", "-pk")
    return {"schedule_id": task.pk, **_page(rows, page, selectors.run_json)}


@schedules_router.post("", response={201: dict, 403: ErrorOut, **READ_ERRORS})
def schedule_create(request: HttpRequest, body: ScheduleIn) -> Status:
    """A recurring (`cron`) or one-off (`run_at`) message for a student in your classes. Only their
    teachers and organisation admins schedule (403 otherwise); a bad cron, time zone or time is
    400 naming the field with the reason."""
    if not request.user.can_act_on_alerts:
        raise PermissionDenied("only the student's teachers and organisation admins schedule for them")
    student = get_student_for_user(request.user, body.student_id)
    pattern = None
    if body.pattern_id is not None:
        pattern = ObservedPattern.objects.filter(student=student, pk=body.pattern_id).first()
        if pattern is None:
            raise ValidationError([{"loc": ("body", "pattern_id"), "msg": "not a pattern of this student"}])
    task = services.schedule_create(
        by=request.user,
        student=student,
        kind=body.kind,
        intent=body.intent,
        cron=body.cron,
        run_at=body.run_at,
        time_zone=body.time_zone,
        pattern=pattern,
    )
    return Status(201, selectors.schedule_json(task))


@proactive_router.get("/settings", response={200: dict, **READ_ERRORS})
def settings_get(request: HttpRequest, student_id: Id | None = None) -> dict[str, Any]:
    """Proactiveness level, suppressed suggestion types and the pause. A learner reads their own;
    staff pass `?student_id=`."""
    student = _student(request.user, student_id)
    return {"student_id": student.pk, **selectors.settings_json(services.settings_peek(student))}


@proactive_router.get("/profile", response={200: dict, **READ_ERRORS})
def profile_get(request: HttpRequest, student_id: Id | None = None) -> dict[str, Any]:
    """ "What do you know about me?": the patterns with their evidence and confidence, the settings,
    and the schedules not cancelled. A learner reads their own; staff pass `?student_id=`."""
    return selectors.profile(_student(request.user, student_id))
