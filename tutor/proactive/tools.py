"""The six tools of the proactive engine (shared/seeds/001), offered to the tutor model through tool
use: strict input schemas (checked by the gateway before anything runs) over the services. They
act for one learner, the one the conversation is about, on behalf of the teacher in it.

The four that change what the learner receives (`PROPOSED`: a schedule, its state, their
proactiveness, a dismissal that counts towards suppressing a type) never act when the model
calls them: `propose` checks the call and says in words what it would do, and it runs (`run`)
only when a teacher confirms it in the chat, as that teacher. record_pattern stays direct (an
observation: it sends nothing and changes no setting) and so does get_user_profile (a read)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from classroom.models import Student, User
from plans.services import can_edit
from tutor.llm.gateway import Tool
from tutor.models import EngagementEvent, ProactivenessSettings, ScheduledTask
from tutor.proactive import selectors, services
from tutor.proactive.timing import ScheduleInvalid, next_after, zone

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
PROPOSED = {"create_schedule", "manage_schedule", "adjust_proactiveness", "record_engagement"}
WAITING = "waiting for the teacher to confirm it in the chat; nothing has changed yet"


def run(name: str, data: dict[str, Any], *, student: Student, by: User) -> dict[str, Any]:
    """Run a validated tool call; the result as plain JSON for the model. Raises ScheduleInvalid or
    PermissionDenied with what is wrong."""
    return json.loads(json.dumps(HANDLERS[name](data, student, by), cls=DjangoJSONEncoder))


@dataclass(frozen=True)
class Proposed:
    """A checked call of one of the `PROPOSED` tools, not yet run: what a ToolProposal stores."""

    tool: str
    input: dict[str, Any]
    description: str

    def for_model(self) -> dict[str, Any]:
        return {"status": "proposed", "proposal": self.description, "next": WAITING}


def propose(name: str, data: dict[str, Any], *, student: Student, by: User) -> Proposed:
    """Check a call that changes what the learner receives, and say what confirming it will do,
    without doing it: the call runs through its service as it would when confirmed, and is rolled
    back. So the checks are the services' own (never a copy that drifts from them), and a refusal
    (a bad cron, a schedule that is not the learner's) goes back to the model at once. Raises
    ScheduleInvalid or PermissionDenied like `run`; never call it inside a transaction that must
    keep what it wrote."""
    before = services.settings_peek(student)
    with transaction.atomic():
        outcome = run(name, data, student=student, by=by)
        transaction.set_rollback(True)
    return Proposed(tool=name, input=data, description=DESCRIBE[name](data, outcome, before, student))


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
    # Run when the teacher confirms: the teacher sets the level, the tutor only proposed it.
    return selectors.settings_json(services.proactiveness_adjust(student=student, by=by, level=data["level"]))


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


# What confirming a proposal will do, in the teacher's words, from the call and its rolled-back
# outcome (and the learner's settings before it, for what would change).


def _kind(value: str, *, plural: bool = False) -> str:
    label = ScheduledTask.Kind(value).label.lower()
    if plural:
        return f"{label}s"
    return f"{'an' if label[0] in 'aeiou' else 'a'} {label}"


def _at(moment: datetime, time_zone: str) -> str:
    return f"{timezone.localtime(moment, zone(time_zone)):%a %d %b %H:%M}"


def _when(schedule: dict[str, Any]) -> str:
    time_zone = schedule["time_zone"]
    if schedule["cron"]:
        return f"on cron {schedule['cron']} ({time_zone})"
    return f"once, {_at(datetime.fromisoformat(schedule['run_at']), time_zone)} ({time_zone})"


def _describe_create(
    data: dict[str, Any], outcome: dict[str, Any], before: ProactivenessSettings, student: Student
) -> str:
    first = datetime.fromisoformat(outcome["next_run_at"])
    when = _when(outcome)
    if outcome["cron"]:
        # Two due times say how often better than the expression: every minute shows at once.
        then = next_after(outcome["cron"], outcome["time_zone"], first)
        when += f": first {_at(first, outcome['time_zone'])}, then {_at(then, outcome['time_zone'])}"
    return (
        f"Schedule {_kind(outcome['kind'])} for {student.first_name} {when}; active as soon as you "
        f"confirm. It says: “{outcome['intent']}”"
    )


def _describe_manage(
    data: dict[str, Any], outcome: dict[str, Any], before: ProactivenessSettings, student: Student
) -> str:
    consequence = {
        "pause": "nothing is sent while it is paused",
        "resume": "it is sent again from its next due time",
        "cancel": "a cancelled schedule cannot be resumed",
    }[data["action"]]
    kind = ScheduledTask.Kind(outcome["kind"]).label.lower()
    return (
        f"{data['action'].capitalize()} {student.first_name}'s {kind} “{outcome['intent'][:120]}” "
        f"({_when(outcome)}): {consequence}."
    )


def _describe_adjust(
    data: dict[str, Any], outcome: dict[str, Any], before: ProactivenessSettings, student: Student
) -> str:
    level, was = ProactivenessSettings.Level(data["level"]), ProactivenessSettings.Level(before.level)
    return f"Set {student.first_name}'s proactiveness to {level.label.lower()} (now {was.label.lower()})."


def _describe_engagement(
    data: dict[str, Any], outcome: dict[str, Any], before: ProactivenessSettings, student: Student
) -> str:
    kind, response = data["suggestion_type"], data["response"]
    text = f"Record that {student.first_name} {response} {_kind(kind)}"
    if kind in outcome["suppressed_types"] and kind not in before.suppressed_types:
        threshold = settings.PROACTIVE_DISMISSALS_TO_SUPPRESS
        return (
            f"{text}: with {threshold} dismissals in a row this suppresses {_kind(kind, plural=True)} "
            f"for {student.first_name} until you undo it."
        )
    return f"{text}."


DESCRIBE: dict[str, Callable[[dict[str, Any], dict[str, Any], ProactivenessSettings, Student], str]] = {
    "create_schedule": _describe_create,
    "manage_schedule": _describe_manage,
    "adjust_proactiveness": _describe_adjust,
    "record_engagement": _describe_engagement,
}
