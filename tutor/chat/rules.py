"""The tutor's rule-based answers, used when there is no model or it fails (labelled as such)."""

from __future__ import annotations

from datetime import date

from plans import schema
from plans.textedit import parse_edit
from tutor.chat.selectors import ContextBundle
from tutor.chat.tools import without_nulls
from tutor.llm.gateway import FallbackAnswer

HELP = (
    "I am the rule-based assistant (no AI model is answering), so I can read plan changes written "
    "plainly, such as “add 30 minutes a week”, “swap Algebra I Core for Algebra I Plus” or “move "
    "the Unit 3 test to Dec 12”, and save them as a draft for you to review."
)


def rules_answer(
    text: str,
    *,
    bundle: ContextBundle,
    base: schema.PlanDocument | None,
    catalogue: dict[str, str],
    today: date,
) -> FallbackAnswer:
    """A plan change it can read becomes a save_study_plan_draft call; anything else gets the
    student's situation in numbers and what it can do."""
    if base is not None:
        result = parse_edit(text, base=base, catalogue=catalogue, today=today)
        if result.understood:
            rationale = f"Asked in the tutor chat: {text}"[:2000]
            return FallbackAnswer(
                text="",
                tool_calls=[
                    ("save_study_plan_draft", {"plan": without_nulls(result.plan), "rationale": rationale})
                ],
            )
    return FallbackAnswer(text=f"{situation(bundle)}\n\n{HELP}")


def situation(bundle: ContextBundle) -> str:
    mastery = f"{bundle.mastery_now:.0%}" if bundle.mastery_now is not None else "not assessed yet"
    change = f", {bundle.mastery_change:+.0%} over four weeks" if bundle.mastery_change is not None else ""
    lines = [
        f"Mastery {mastery}{change}; {bundle.minutes_7d} minutes of study and "
        f"{bundle.checkins_7d} of 7 check-ins this week."
    ]
    if bundle.version:
        lines.append(f"Plan version {bundle.version}: {bundle.pacing}.")
    if bundle.milestones:
        title, due, _ = bundle.milestones[0]
        lines.append(f"Next milestone: {title} on {due:%a %d %b}.")
    return " ".join(lines)
