"""The tools the tutor model is offered, with strict input schemas (tutor.llm.schema's subset)."""

from __future__ import annotations

from typing import Any

from tutor.llm.gateway import Tool


def plan_schema(catalogue: list[str]) -> dict[str, Any]:
    """plans.schema.PlanDocument as a JSON schema the gateway checks tool inputs against."""
    text = {"type": "string", "minLength": 2, "maxLength": 300}
    day = {"type": "string", "minLength": 10, "maxLength": 10, "description": "a date, YYYY-MM-DD"}
    return {
        "type": "object",
        "properties": {
            "starts_on": day,
            "ends_on": day,
            "objectives": {
                "type": "array",
                "minItems": 1,
                "maxItems": 20,
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "maxLength": 20, "description": "keep an objective's id"},
                        "text": text,
                    },
                    "required": ["text"],
                    "additionalProperties": False,
                },
            },
            "pacing": {
                "type": "object",
                "properties": {
                    "weekly_minutes": {"type": "integer", "minimum": 0, "maximum": 3000},
                    "sessions_per_week": {"type": "integer", "minimum": 1, "maximum": 14},
                },
                "required": ["weekly_minutes", "sessions_per_week"],
                "additionalProperties": False,
            },
            "curricula": {"type": "array", "maxItems": 10, "items": {"type": "string", "enum": catalogue}},
            "milestones": {
                "type": "array",
                "maxItems": 40,
                "items": {
                    "type": "object",
                    "properties": {"title": text, "due": day},
                    "required": ["title", "due"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["starts_on", "objectives", "pacing", "curricula", "milestones"],
        "additionalProperties": False,
    }


def propose_plan_edit(catalogue: list[str]) -> Tool:
    return Tool(
        name="propose_plan_edit",
        description="Give the whole study plan with the teacher's requested change applied, and say "
        "which parts of the request you applied and which you could not.",
        input_schema={
            "type": "object",
            "properties": {
                "plan": plan_schema(catalogue),
                "understood": {"type": "array", "items": {"type": "string", "maxLength": 300}},
                "not_understood": {"type": "array", "items": {"type": "string", "maxLength": 300}},
            },
            "required": ["plan", "understood", "not_understood"],
            "additionalProperties": False,
        },
    )


def save_study_plan_draft(catalogue: list[str]) -> Tool:
    return Tool(
        name="save_study_plan_draft",
        description="Save a draft change to this student's study plan for the teacher to review and "
        "publish. Give the whole proposed plan (keep objective ids) and why it should change. "
        "Nothing is published: the teacher decides.",
        input_schema={
            "type": "object",
            "properties": {
                "plan": plan_schema(catalogue),
                "rationale": {"type": "string", "minLength": 3, "maxLength": 2000},
            },
            "required": ["plan", "rationale"],
            "additionalProperties": False,
        },
    )


def without_nulls(plan: dict[str, Any]) -> dict[str, Any]:
    """A plan document as a tool input: the schema subset has no nullable fields."""
    return {key: value for key, value in plan.items() if value is not None}
