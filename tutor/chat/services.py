"""The tutor chat: a teacher talks with the tutor about one student; the tutor may propose a plan
draft (save_study_plan_draft), which the teacher then reviews and publishes in the plan panel."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from audit.services import record
from classroom.models import Student, User
from plans import schema
from plans.models import PlanDraft
from plans.selectors import catalogue_of
from plans.services import can_edit, published_document, save_study_plan_draft, schema_summary
from tutor.chat import tools
from tutor.chat.rules import rules_answer
from tutor.chat.selectors import context_bundle, conversation
from tutor.llm.gateway import FallbackAnswer, Reply, ToolCall, assistant_turn, complete, tool_results_turn
from tutor.llm.pseudonyms import Pseudonyms
from tutor.models import ChatMessage
from tutor.proactive import tools as proactive_tools
from tutor.proactive.timing import ScheduleInvalid

AGENT = "agent:tutor"
SYSTEM = """You help a teacher with one student, called {pseudonym}. Answer briefly and plainly,
from the context below; say when the context does not tell you something. When the teacher asks to
change the study plan, call save_study_plan_draft with the WHOLE proposed plan (keep objective
ids; curricula only from: {catalogue}) and a one-sentence rationale. It saves a draft for the
teacher to review and publish: never say the plan is published. To schedule reminders, check-ins
or nudges for the student, or to look at or adjust what the tutor knows about them, use the
schedule and profile tools. Today is {today}.

Context:
{bundle}

Published plan (JSON): {plan}"""


class ChatError(ValueError):
    """The message cannot be sent; says why."""


def chat_send(*, student: Student, by: User, text: str) -> ChatMessage:
    """Store the teacher's message, ask the tutor (model or rules) with the context bundle, run
    the draft it proposes through the plans service, and store its answer. Never inside a
    transaction: the model call may take a while."""
    if not can_edit(by, student):
        raise PermissionDenied("only the student's teachers and organisation admins talk with the tutor")
    text = text.strip()
    if not text:
        raise ChatError("message: write something to ask the tutor")
    if len(text) > 4000:
        raise ChatError("message: at most 4000 characters")
    with transaction.atomic():
        asked = ChatMessage.objects.create(
            student=student, teacher=by, role=ChatMessage.Role.TEACHER, text=text
        )
        record(verb="chat.asked", actor=by, target=asked, student_id=student.pk, why="asked the tutor")
    today = timezone.localdate()
    bundle = context_bundle(student)
    base, _ = published_document(student)
    catalogue = catalogue_of(student)
    pseudonyms = Pseudonyms.for_student(student)
    offered = [tools.save_study_plan_draft(list(catalogue)), *proactive_tools.TOOLS]
    call = {
        "purpose": "tutor chat",
        "system": SYSTEM.format(
            pseudonym=pseudonyms.pseudonym_for(student.pk),
            catalogue=", ".join(catalogue) or "none",
            today=today.isoformat(),
            bundle=bundle.as_prompt(),
            plan=json.dumps(tools.without_nulls(base.as_json())) if base else "none yet",
        ),
        "tools": offered,
        "actor": by,
        "organisation_id": student.organisation_id,
        "student_id": student.pk,
        "pseudonyms": pseudonyms,
    }
    messages = _turns(conversation(student, by))
    reply = complete(
        **call,
        messages=messages,
        fallback=lambda: rules_answer(text, bundle=bundle, base=base, catalogue=catalogue, today=today),
    )
    results, draft = _run_tools(reply, student=student, by=by, text=text, pseudonyms=pseudonyms)
    answer_text = reply.text
    if results and not reply.is_fallback:
        follow = complete(
            **call,
            messages=[*messages, assistant_turn(reply), tool_results_turn(results)],
            fallback=lambda: FallbackAnswer(text=_describe(results)),
        )
        answer_text = follow.text
    elif results or not answer_text:
        answer_text = _describe(results) if results else _rejected(reply)
    with transaction.atomic():
        answer = ChatMessage.objects.create(
            student=student,
            teacher=by,
            role=ChatMessage.Role.TUTOR,
            text=pseudonyms.unmask(answer_text),
            source=reply.source,
            fallback_reason=reply.fallback_reason[:300],
            draft=draft,
            llm_event_id=reply.event_id or None,
        )
        record(
            verb="chat.replied",
            actor_name=AGENT,
            source="agent",
            target=answer,
            student_id=student.pk,
            why=f"answered {by.get_username()}" + (f", proposing draft {draft.pk}" if draft else ""),
            details={
                "source": reply.source,
                "fallback_reason": reply.fallback_reason,
                "llm_event_id": reply.event_id,
                "draft_id": draft.pk if draft else None,
                "filtered": reply.filtered,
            },
        )
    return answer


def _turns(history: list[ChatMessage]) -> list[dict[str, Any]]:
    """The conversation as Messages API turns: alternating, starting with the teacher."""
    turns: list[dict[str, Any]] = []
    for message in history:
        role = "user" if message.role == ChatMessage.Role.TEACHER else "assistant"
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n\n" + message.text
        elif turns or role == "user":
            turns.append({"role": role, "content": message.text})
    return turns


def _run_tools(
    reply: Reply, *, student: Student, by: User, text: str, pseudonyms: Pseudonyms
) -> tuple[list[tuple[ToolCall, dict[str, Any] | str, bool]], PlanDraft | None]:
    results: list[tuple[ToolCall, dict[str, Any] | str, bool]] = []
    draft = None
    for call in reply.tool_calls:
        data = pseudonyms.unmask_data(call.input)
        if call.name in proactive_tools.NAMES:
            try:
                results.append((call, proactive_tools.run(call.name, data, student=student, by=by), False))
            except (ScheduleInvalid, PermissionDenied) as refused:
                results.append((call, f"refused: {refused}", True))
            continue
        if call.name != "save_study_plan_draft":
            continue
        try:
            draft = save_study_plan_draft(
                student=student,
                by=by,
                plan=data["plan"],
                rationale=data["rationale"],
                source=PlanDraft.Source.TUTOR_RULES if reply.is_fallback else PlanDraft.Source.TUTOR,
                source_text=text,
                agent=AGENT,
            )
        except schema.PlanInvalid as invalid:
            results.append((call, "not saved: " + "; ".join(invalid.errors), True))
            continue
        results.append(
            (
                call,
                {
                    "saved": True,
                    "draft_id": draft.pk,
                    "changes": schema_summary(draft),
                    "high_impact": draft.high_impact,
                },
                False,
            )
        )
    return results, draft


def _describe(results: list[tuple[ToolCall, dict[str, Any] | str, bool]]) -> str:
    lines = []
    for call, result, is_error in results:
        if is_error:
            lines.append(f"I could not do that ({call.name}), {result}.")
            continue
        assert isinstance(result, dict)
        if call.name != "save_study_plan_draft":
            lines.append(f"Done: {call.name.replace('_', ' ')}.")
            continue
        changes = "; ".join(result["changes"])
        lines.append(f"I saved draft {result['draft_id']} for you to review in the plan panel: {changes}.")
        if result["high_impact"]:
            lines.append(f"It needs a second approver when published ({'; '.join(result['high_impact'])}).")
    return " ".join(lines)


def _rejected(reply: Reply) -> str:
    return "I could not turn that into a valid plan change: " + ("; ".join(reply.filtered) or "no answer")
