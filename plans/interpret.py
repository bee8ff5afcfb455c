"""Plain text to a structured proposal, through whatever reads text (settings.PLAN_TEXT_INTERPRETER).

The tutor app implements it with the LLM gateway, falling back to the rule-based parser in
`plans.textedit`; plans asks through the dotted path because it never imports tutor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from classroom.models import Student, User
from plans import schema


@dataclass
class Interpretation:
    plan: dict[str, Any]
    read_by: str  # "model" or "rules"
    understood: list[str] = field(default_factory=list)
    not_understood: list[str] = field(default_factory=list)
    fallback_reason: str = ""  # why the rules read it, when a model was expected


def interpret(*, student: Student, by: User, text: str, base: schema.PlanDocument) -> Interpretation:
    return import_string(settings.PLAN_TEXT_INTERPRETER)(student=student, by=by, text=text, base=base)
