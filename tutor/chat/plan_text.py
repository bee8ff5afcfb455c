"""A teacher's plain-text plan edit, read by the model through the gateway, or by the rule-based
parser (plans.textedit) when there is no model or it fails. plans calls `interpret` through
settings.PLAN_TEXT_INTERPRETER. The current plan goes to the model as data, staff by their role
(`tutor.chat.prompts`); what the model kept of it comes back as it was."""

from __future__ import annotations

import json

from django.utils import timezone

from classroom.models import Student, User
from plans import schema
from plans.interpret import Interpretation
from plans.selectors import catalogue_of
from plans.textedit import parse_edit
from tutor.chat.prompts import DATA_RULE, data_section
from tutor.chat.selectors import staff_names
from tutor.chat.tools import propose_plan_edit, without_nulls
from tutor.llm.gateway import FallbackAnswer, complete
from tutor.llm.pseudonyms import Pseudonyms

SYSTEM = """You edit study plans for a teacher. You get the student's current plan as JSON and the
teacher's requested change in plain words. Call propose_plan_edit with the WHOLE plan after the
change: keep every objective's id, change only what the teacher asked, and list what you applied
(understood) and what you could not apply (not_understood, quoting the teacher). Curricula are
codes from this catalogue: {catalogue}. Today is {today}; dates are YYYY-MM-DD. Never invent a
curriculum, and never add anything the teacher did not ask for. {data_rule} The current plan
comes in a data section; the teacher's change follows it."""


def interpret(*, student: Student, by: User, text: str, base: schema.PlanDocument) -> Interpretation:
    catalogue = catalogue_of(student)
    today = timezone.localdate()
    pseudonyms = Pseudonyms.for_student(student)
    staff = staff_names(student, by)
    sent = without_nulls(base.as_json())

    def rules(reason: str) -> Interpretation:
        result = parse_edit(text, base=base, catalogue=catalogue, today=today)
        return Interpretation(
            plan=result.plan,
            read_by="rules",
            understood=list(result.understood),
            not_understood=list(result.not_understood),
            fallback_reason=reason,
        )

    plan = json.dumps(staff.mask_data(sent), ensure_ascii=False)
    reply = complete(
        purpose="read a plain-text study-plan edit",
        system=SYSTEM.format(
            catalogue=data_section(
                ", ".join(f"{code} ({title})" for code, title in catalogue.items()) or "empty"
            ),
            today=today.isoformat(),
            data_rule=DATA_RULE,
        ),
        messages=[
            {
                "role": "user",
                "content": f"Current plan:\n{data_section(plan)}"
                f"\n\nThe teacher's change:\n{staff.mask(text)}",
            }
        ],
        tools=[propose_plan_edit(list(catalogue))],
        tool_choice={"type": "tool", "name": "propose_plan_edit"},
        fallback=lambda: FallbackAnswer(text=""),
        actor=by,
        organisation_id=student.organisation_id,
        student_id=student.pk,
        pseudonyms=pseudonyms,
    )
    if reply.is_fallback:
        return rules(for_teachers(reply.fallback_reason))
    calls = [call for call in reply.tool_calls if call.name == "propose_plan_edit"]
    if not calls:
        problems = "; ".join(reply.filtered) or "it answered without a proposal"
        return rules(f"the model's proposal could not be used ({problems})")
    proposal = pseudonyms.unmask_data(calls[0].input)
    return Interpretation(
        plan=staff.restore(proposal["plan"], sent),
        read_by="model",
        understood=proposal["understood"],
        not_understood=proposal["not_understood"],
    )


def for_teachers(reason: str) -> str:
    """The gateway's reason for falling back, in words a teacher reads (the audit event keeps it whole)."""
    if "ANTHROPIC_API_KEY" in reason:
        return "no AI model is configured"
    return f"the AI model did not answer ({reason})"
