"""`/api/plans/...`: a student's plan and open drafts, and new drafts from text or a plan document."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import ConfigDict, Field

from classroom.access import can_act_for, get_student_for_user
from classroom.inputs import PLAN_TEXT, RATIONALE, Id
from plans import schema, selectors, services
from plans.interpret import interpret
from plans.models import PlanDraft

router = Router(tags=["study plans"])


class DraftIn(Schema):
    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["text"]}, {"required": ["plan"]}]})

    text: str | None = Field(default=None, max_length=PLAN_TEXT, description="A change in plain words.")
    plan: dict[str, Any] | None = Field(default=None, description="A whole proposed plan document.")
    rationale: str = Field(default="", max_length=RATIONALE, description="Why the plan should change.")
    dry_run: bool = Field(default=False, description="Validate and diff only; store nothing.")


class ErrorOut(Schema):
    error: str
    detail: str
    fields: dict[str, list[str]] = {}


@router.get("/{student_id}", response={200: dict, 400: ErrorOut, 401: ErrorOut, 404: ErrorOut})
def plan_get(request: HttpRequest, student_id: Id) -> dict[str, Any]:
    """The published version (or null) and the open drafts of a student in your classes."""
    return selectors.plan_json(get_student_for_user(request.user, student_id))


@router.post(
    "/{student_id}/drafts",
    response={200: dict, 201: dict, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut},
)
def draft_create(request: HttpRequest, student_id: Id, body: DraftIn) -> Status:
    """Propose a change as `{"text": ...}` or `{"plan": {...}}` with a `rationale`: answers the
    validated proposal and its diff against the published version, and the stored draft (201),
    or 400 naming each field that is wrong. `dry_run` only validates."""
    student = get_student_for_user(request.user, student_id)
    if not can_act_for(request.user, student):
        raise PermissionDenied("only the student's teachers and organisation admins propose plan changes")
    if (body.text is None) == (body.plan is None):
        raise schema.PlanInvalid(["text: give either text or plan, not both or neither"])
    source, text, interpretation = PlanDraft.Source.API, "", None
    if body.text is not None:
        text = body.text.strip()
        base, _ = services.published_document(student)
        if not text:
            raise schema.PlanInvalid(["text: write the change you want"])
        if base is None:
            raise schema.PlanInvalid(["text: the student has no published plan yet; send a whole plan"])
        interpretation = interpret(student=student, by=request.user, text=text, base=base)
        plan = interpretation.plan
        source = PlanDraft.Source.TEXT if interpretation.read_by == "model" else PlanDraft.Source.TEXT_RULES
    else:
        plan = body.plan
    proposal = services.plan_propose(student=student, plan=plan)
    if interpretation is not None:
        proposal.understood, proposal.not_understood = (
            interpretation.understood,
            interpretation.not_understood,
        )
        proposal.read_by, proposal.fallback_reason = interpretation.read_by, interpretation.fallback_reason
    if not proposal.ok:
        raise schema.PlanInvalid(proposal.errors)
    if body.dry_run:
        return Status(200, {"proposal": proposal.as_json(), "draft": None})
    draft = services.save_study_plan_draft(
        student=student, by=request.user, plan=plan, rationale=body.rationale, source=source, source_text=text
    )
    return Status(201, {"proposal": proposal.as_json(), "draft": selectors.draft_json(draft)})
