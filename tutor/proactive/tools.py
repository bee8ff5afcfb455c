"""The six tools of the proactive engine (shared/seeds/001), offered to the tutor model through tool
use: strict input schemas (checked by the gateway before anything runs) over the services. They
act for one learner, the one the conversation is about, on behalf of the teacher in it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder

from classroom.models import Student, User
from plans.services import can_edit
from tutor.llm.gateway import Tool
from tutor.models import EngagementEvent, ProactivenessSettings, ScheduledTask
from tutor.proactive import selectors, services
from tutor.proactive.timing import ScheduleInvalid

AGENT = "agent:tutor"
KINDS = list(ScheduledTask.Kind.values)


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


TOOLS = (
    Tool(
        "create_schedule",
        "Schedule a proactive message for the learner: recurring (cron, five fields, in time_zone) or "
        "once (run_at, ISO 8601). The intent is what to say or ask.",
        _object(
            {
                "kind": {"type": "string", "enum": KINDS},
                "intent": {"type": "string", "minLength": 3, "maxLength": 500},
                "cron": {"type": "string", "maxLength": 100},
                "run_at": {"type": "string", "maxLength": 40},
                "time_zone": {"type": "string", "maxLength": 64},
            },
            ["kind", "intent"],
        ),
    ),
    Tool(
        "manage_schedule",
        "Pause, resume or cancel one of the learner's schedules.",
        _object(
            {
                "schedule_id": {"type": "integer", "minimum": 1},
                "action": {"type": "string", "enum": ["pause", "resume", "cancel"]},
            },
            ["schedule_id", "action"],
        ),
    ),
    Tool(
        "record_pattern",
        "Record a regularity in the learner's activity, with a short summary of the evidence.",
        _object(
            {
                "kind": {"type": "string", "minLength": 3, "maxLength": 40},
                "description": {"type": "string", "minLength": 3, "maxLength": 300},
                "evidence_summary": {"type": "string", "minLength": 3, "maxLength": 500},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            },
            ["kind", "description", "evidence_summary", "confidence"],
        ),
    ),
    Tool(
        "record_engagement",
        "Record how the learner answered a suggestion (three dismissals of a type suppress it).",
        _object(
            {
                "suggestion_type": {"type": "string", "enum": KINDS},
                "response": {"type": "string", "enum": list(EngagementEvent.Response.values)},
            },
            ["suggestion_type", "response"],
        ),
    ),
    Tool(
        "adjust_proactiveness",
        "Set how proactive the tutor is with the learner.",
        _object({"level": {"type": "string", "enum": list(ProactivenessSettings.Level.values)}}, ["level"]),
    ),
    Tool(
        "get_user_profile",
        "What the tutor knows about the learner: patterns with their evidence, settings, schedules.",
        _object({}, []),
    ),
)
NAMES = {tool.name for tool in TOOLS}


def run(name: str, data: dict[str, Any], *, student: Student, by: User) -> dict[str, Any]:
    """Run a validated tool call; the result as plain JSON for the model. Raises ScheduleInvalid or
    PermissionDenied with what is wrong."""
    return json.loads(json.dumps(HANDLERS[name](data, student, by), cls=DjangoJSONEncoder))


def _create(data: dict[str, Any], student: Student, by: User) -> dict[str, Any]:
    run_at = None
    if data.get("run_at"):
        try:
            run_at = datetime.fromisoformat(data["run_at"])
        except ValueError:
            raise ScheduleInvalid("run_at", "must be an ISO 8601 time such as 2026-12-01T16:00") from None
    task = services.schedule_create(
        by=by,
        student=student,
        kind=data["kind"],
        intent=data["intent"],
        cron=data.get("cron", ""),
        run_at=run_at,
        time_zone=data.get("time_zone", ""),
    )
    return selectors.schedule_json(task)


def _manage(data: dict[str, Any], student: Student, by: User) -> dict[str, Any]:
    task = ScheduledTask.objects.filter(pk=data["schedule_id"], student=student).first()
    if task is None:
        raise ScheduleInvalid("schedule_id", "is not one of this learner's schedules")
    return selectors.schedule_json(services.schedule_manage(task=task, by=by, action=data["action"]))


def _pattern(data: dict[str, Any], student: Student, by: User) -> dict[str, Any]:
    _require(by, student)
    pattern = services.pattern_record(
        student=student,
        kind=data["kind"],
        description=data["description"],
        evidence={"summary": data["evidence_summary"], "recorded_by": AGENT},
        confidence=data["confidence"],
    )
    return {"pattern_id": pattern.pk, "kind": pattern.kind, "first_seen": pattern.first_seen.isoformat()}


def _engagement(data: dict[str, Any], student: Student, by: User) -> dict[str, Any]:
    _require(by, student)
    services.engagement_record(
        student=student, suggestion_type=data["suggestion_type"], response=data["response"], actor_name=AGENT
    )
    return {"suppressed_types": services.settings_peek(student).suppressed_types}


def _adjust(data: dict[str, Any], student: Student, by: User) -> dict[str, Any]:
    _require(by, student)
    return selectors.settings_json(
        services.proactiveness_adjust(student=student, by=by, level=data["level"], agent=AGENT)
    )


def _profile(data: dict[str, Any], student: Student, by: User) -> dict[str, Any]:
    _require(by, student)
    return selectors.profile(student)


def _require(by: User, student: Student) -> None:
    if not can_edit(by, student):
        raise PermissionDenied("only the learner's teachers use the tutor's tools for them")


HANDLERS: dict[str, Callable[[dict[str, Any], Student, User], dict[str, Any]]] = {
    "create_schedule": _create,
    "manage_schedule": _manage,
    "record_pattern": _pattern,
    "record_engagement": _engagement,
    "adjust_proactiveness": _adjust,
    "get_user_profile": _profile,
}
