"""A learner's day plan made from the agents' signals, and the hint for the next day.

The rules lay the day out: blocks that add up to the learner's minutes, each with a reason a
learner can read. With a model (the LLM gateway, pseudonyms and the content filter), the model
writes the day through the `day_plan` tool in the same shape; a plan that does not fit the
minutes, or no model, leaves the rules' day, labelled as such.

After a missed day the plan re-plans: the unfinished focus comes first, and nothing is doubled.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from classroom.models import Student
from plans.models import DailySession, LearnerIntent
from tutor.chat.prompts import DATA_RULE, data_section
from tutor.llm import gateway
from tutor.llm.pseudonyms import Pseudonyms
from tutor.orchestrator.signals import Signals

TOOL = gateway.Tool(
    name="day_plan",
    description="The learner's plan for today: a title, one sentence, and timed blocks with reasons.",
    input_schema={
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 120},
            "description": {"type": "string", "maxLength": 300},
            "blocks": {
                "type": "array",
                "minItems": 1,
                "maxItems": 8,
                "items": {
                    "type": "object",
                    "properties": {
                        "title": {"type": "string", "maxLength": 160},
                        "minutes": {"type": "integer", "minimum": 1, "maximum": 480},
                        "reason": {"type": "string", "maxLength": 300},
                    },
                    "required": ["title", "minutes", "reason"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["title", "description", "blocks"],
        "additionalProperties": False,
    },
)


@dataclass
class Block:
    title: str
    minutes: int
    reason: str
    source: str  # the agent (or "plan") it came from


@dataclass
class DayPlan:
    title: str
    description: str
    blocks: list[Block]
    objectives: list[str] = field(default_factory=list)
    replanned_from: str | None = None
    composer: str = "rules"
    fallback_reason: str = ""

    @property
    def total_minutes(self) -> int:
        return sum(block.minutes for block in self.blocks)

    def summary(self) -> dict[str, Any]:
        """The seed's `plan_json_summary` (title, description, steps) and the detail behind it."""
        return {
            "title": self.title,
            "description": self.description,
            "steps": [block.title for block in self.blocks],
            "blocks": [vars(block) for block in self.blocks],
            "total_minutes": self.total_minutes,
            "objectives": self.objectives,
            "replanned_from": self.replanned_from,
            "composer": self.composer,
        }

    def markdown(self, *, week: int, day: int) -> str:
        lines = [f"# Daily Learning Plan: week {week}, day {day}", "", f"## Today's Focus: {self.title}", ""]
        lines += [self.description, ""]
        if self.replanned_from:
            lines += [
                f"> Re-planned: the plan of {self.replanned_from} was not finished, so it comes first today.",
                "",
            ]
        for n, block in enumerate(self.blocks, 1):
            lines.append(f"{n}. **{block.title}** ({block.minutes} min): {block.reason}")
        lines += ["", f"Total: {self.total_minutes} minutes."]
        if self.composer == "rules":
            lines += ["", "_Made by the rule-based planner (no model was used)._"]
        return "\n".join(lines)


@dataclass(frozen=True)
class History:
    """What the days before say: the last unfinished plan when the day before was missed."""

    missed_days: int
    unfinished: DailySession | None


def compose(
    *, student: Student, intent: LearnerIntent, signals: Signals, history: History, on: date
) -> DayPlan:
    """The day's plan: the model's when it gives one that fits, else the rules'."""
    rules_plan = plan_by_rules(intent=intent, signals=signals, history=history, on=on)
    pseudonyms = Pseudonyms.for_student(student)
    reply = gateway.complete(
        purpose="the learner's day plan",
        system=(
            "You plan one study day for a learner. Call day_plan once. The blocks' minutes must add up "
            f"to at most {intent.time_per_day_min}. Give each block a reason the learner understands, "
            f"drawn from the signals. Start from the draft plan and improve it. {DATA_RULE}"
        ),
        messages=[{"role": "user", "content": data_section(_prompt_data(intent, signals, rules_plan))}],
        fallback=lambda: gateway.FallbackAnswer(text="", tool_calls=[("day_plan", _tool_input(rules_plan))]),
        actor="system:orchestrator",
        organisation_id=student.organisation_id,
        student_id=student.pk,
        pseudonyms=pseudonyms,
        tools=[TOOL],
        tool_choice={"type": "tool", "name": TOOL.name},
    )
    if reply.is_fallback:
        rules_plan.fallback_reason = reply.fallback_reason
        return rules_plan
    call = next((c for c in reply.tool_calls if c.name == TOOL.name), None)
    if call is None:
        rules_plan.fallback_reason = "the model gave no day_plan"
        return rules_plan
    given = pseudonyms.unmask_data(call.input)
    blocks = [Block(b["title"], b["minutes"], b["reason"], "model") for b in given["blocks"]]
    if sum(b.minutes for b in blocks) > intent.time_per_day_min:
        rules_plan.fallback_reason = "the model's plan did not fit the learner's minutes"
        return rules_plan
    return DayPlan(
        title=given["title"],
        description=given["description"],
        blocks=blocks,
        objectives=rules_plan.objectives,
        replanned_from=rules_plan.replanned_from,
        composer="model",
    )


def _tool_input(plan: DayPlan) -> dict[str, Any]:
    return {
        "title": plan.title,
        "description": plan.description,
        "blocks": [{"title": b.title, "minutes": b.minutes, "reason": b.reason} for b in plan.blocks],
    }


def _prompt_data(intent: LearnerIntent, signals: Signals, draft: DayPlan) -> str:
    return json.dumps(
        {
            "intent": {
                "topic": intent.topic,
                "depth": intent.depth,
                "end_goal": intent.end_goal,
                "time_per_day_min": intent.time_per_day_min,
            },
            "signals": {name: signal.data for name, signal in signals.by_agent.items() if signal.available},
            "draft_plan": _tool_input(draft),
        },
        ensure_ascii=False,
        default=str,
    )


def plan_by_rules(*, intent: LearnerIntent, signals: Signals, history: History, on: date) -> DayPlan:
    """The day laid out from the signals, fitting `time_per_day_min`.

    1. The focus: the unfinished focus of a missed day, else an objective FSRS says is due for
       review, else the first objective the learner has not practised, else the one whose review
       comes soonest, else (no study plan) the intent's topic.
    2. A deadline within two days (ta) takes a block first.
    3. Review (due objectives), the focus, questions (socratic), and a short reflection share
       what is left; a learner whose sessions run short (alex) gets shorter blocks.
    """
    clo, ta, alex, socratic = (signals.data(name) for name in ("clo", "ta", "alex", "socratic"))
    budget = intent.time_per_day_min
    objectives = {o["id"]: o["text"] for o in clo.get("objectives", [])}
    due_reviews = [
        r["objective_id"] for r in clo.get("reviews", []) if r.get("due") and r["objective_id"] in objectives
    ]
    practised = {r["objective_id"] for r in clo.get("reviews", [])}
    fresh_objective = next((oid for oid in objectives if oid not in practised), None)
    # The reviews come soonest due first: the one the learner would forget first.
    upcoming = next(
        (
            (r["objective_id"], r.get("due_on", ""))
            for r in clo.get("reviews", [])
            if r["objective_id"] in objectives
        ),
        None,
    )

    focus_title, focus_reason, focus_objectives, replanned_from = _focus(
        intent, objectives, due_reviews, fresh_objective, upcoming, history
    )
    blocks: list[Block] = []
    urgent = [
        d
        for d in ta.get("deadlines", [])
        if d.get("overdue") or d.get("due_at", "")[:10] <= _plus_days(on, 2)
    ]
    if urgent:
        deadline = urgent[0]
        when = "overdue" if deadline.get("overdue") else f"due {deadline['due_at'][:10]}"
        blocks.append(
            Block(f"Work on {deadline['title']}", 0, f"It is {when}, so it comes before new work.", "ta")
        )
    reviews = [oid for oid in due_reviews if oid not in focus_objectives][:2]
    if reviews:
        titles = "; ".join(objectives[oid] for oid in reviews)
        blocks.append(
            Block(
                f"Review: {titles}",
                0,
                "Spaced review says you are about to forget this: a short recall now keeps it.",
                "clo",
            )
        )
    focus = Block(focus_title, 0, focus_reason, "clo" if focus_objectives else "plan")
    blocks.append(focus)
    questions = socratic.get("questions", [])
    if questions:
        blocks.append(
            Block(
                "Answer in your own words: " + " / ".join(questions[:2]),
                0,
                "Explaining it yourself shows what you really understood.",
                "socratic",
            )
        )
    reflection = Block("Reflect: what was hard, what clicked", 0, "Your notes shape tomorrow's plan.", "plan")
    blocks.append(reflection)
    _share(blocks, focus=focus, reflection=reflection, budget=budget, cap=alex.get("typical_session_minutes"))
    blocks = [b for b in blocks if b.minutes > 0]
    description = (
        f"{intent.time_per_day_min} minutes on {intent.topic} ({intent.depth}), towards: {intent.end_goal}."
    )
    if replanned_from:
        description = f"Catching up calmly after a missed day. {description}"
    return DayPlan(
        title=focus_title,
        description=description,
        blocks=blocks,
        objectives=focus_objectives + reviews,
        replanned_from=replanned_from,
    )


def _focus(
    intent: LearnerIntent,
    objectives: dict[str, str],
    due_reviews: list[str],
    fresh_objective: str | None,
    upcoming: tuple[str, str] | None,
    history: History,
) -> tuple[str, str, list[str], str | None]:
    unfinished = history.unfinished
    if history.missed_days and unfinished is not None:
        carried = [
            oid for oid in (unfinished.plan_json_summary or {}).get("objectives", []) if oid in objectives
        ]
        title = (unfinished.plan_json_summary or {}).get("title") or intent.topic
        days = "day" if history.missed_days == 1 else f"{history.missed_days} days"
        reason = f"You missed {days}; this is what was left, re-planned for today instead of piled on top."
        return title, reason, carried[:1], unfinished.date.isoformat()
    if due_reviews:
        oid = due_reviews[0]
        return objectives[oid], "It is due for review today: practising it now makes it stick.", [oid], None
    if fresh_objective is not None:
        return (
            objectives[fresh_objective],
            "The next objective of your study plan that you have not practised yet.",
            [fresh_objective],
            None,
        )
    if upcoming is not None:
        oid, due_on = upcoming
        reason = (
            f"You have practised every objective and none is due; this one comes up for review first "
            f"({due_on}), so a little practice now keeps it."
        )
        return objectives[oid], reason, [oid], None
    return f"{intent.topic}: the next step", f"A step towards your goal: {intent.end_goal}.", [], None


def _share(blocks: list[Block], *, focus: Block, reflection: Block, budget: int, cap: int | None) -> None:
    """Give each block its minutes: the reflection 5 (less on a short day), a deadline and a review a
    fifth of the day each, questions a sixth, each at most the learner's usual session (`cap`) and
    together leaving the focus at least a third; the focus takes the rest, in parts of the usual
    session when it is longer."""
    shares = {"ta": 0.2, "clo": 0.2, "socratic": 1 / 6}
    reflection.minutes = min(5, max(1, budget // 10))
    others = [b for b in blocks if b is not focus and b is not reflection]
    for block in others:
        block.minutes = max(1, round(budget * shares.get(block.source, 0.2)))
        if cap:
            block.minutes = min(block.minutes, max(10, cap))
    room = budget - reflection.minutes - max(1, budget // 3)
    while sum(b.minutes for b in others) > room and any(b.minutes > 0 for b in others):
        largest = max(others, key=lambda b: b.minutes)
        largest.minutes -= 1
    focus.minutes = budget - reflection.minutes - sum(b.minutes for b in others)
    part = max(10, cap or 0)
    if cap and focus.minutes > part * 1.5:
        focus.reason += (
            f" Take it in parts of about {part} minutes with a short break:"
            " that is how long your sessions usually last."
        )


_STRUGGLED = re.compile(
    r"struggl|confus|stuck|\blost\b|\bhard\b|difficult|(?:didn't|did not|don't|do not) (?:understand|get)"
    r"|couldn't|could not|mistakes|\bwrong\b|not sure|forgot|more practice|\bstill\b.*\b(?:confus|unsure)"
)
_EASY = re.compile(
    r"\beasy\b|simple|boring|already knew|knew all|straightforward|breez|nailed|too basic|finished early"
    r"|something harder|no problems"
)
_NEGATION = re.compile(r"(?:\bnot|n't|\bnever|\bno)\s+(?:\w+\s+)?$")
_CLAUSES = re.compile(r"[.;!?,]|\bbut\b")


def read_notes(notes: str) -> str:
    """How the learner says the day went: "struggled", "easy" or "neutral". Each clause's cues
    count unless negated just before ("wasn't hard", "not easy"); the side with more wins."""
    score = 0
    for clause in _CLAUSES.split(notes.lower()[:2000]):
        for pattern, sign in ((_STRUGGLED, 1), (_EASY, -1)):
            for match in pattern.finditer(clause):
                if not _NEGATION.search(clause[max(0, match.start() - 20) : match.start()]):
                    score += sign
    return "struggled" if score > 0 else "easy" if score < 0 else "neutral"


def _plus_days(day: date, days: int) -> str:
    return date.fromordinal(day.toordinal() + days).isoformat()


def next_day_hint(
    *, session: DailySession, minutes: int, confidence: int, notes: str, time_per_day_min: int
) -> str:
    """What to do tomorrow, read from how today went: time against the plan, confidence, notes."""
    planned = (session.plan_json_summary or {}).get("total_minutes") or time_per_day_min
    feeling = read_notes(notes)
    struggled, easy = feeling == "struggled", feeling == "easy"
    next_day = f"day {session.day + 1}" if session.day < 7 else f"week {session.week + 1}, day 1"
    if minutes < planned * 0.6:
        time_part = f"You spent {minutes} of {planned} planned minutes"
        advice = "tomorrow's plan starts with what was left, in shorter blocks"
    elif minutes > planned * 1.3:
        time_part = f"You spent {minutes} minutes, more than the {planned} planned"
        advice = "keep an eye on rest: tomorrow stays within your minutes"
    else:
        time_part = "Good time investment"
        advice = ""
    if confidence <= 4 or struggled:
        focus = f"For {next_day}, revisit today's focus with a worked example before anything new."
    elif confidence >= 9 or easy:
        focus = f"For {next_day}, move on to the next objective and try a harder question."
    else:
        focus = f"For {next_day}, focus on reinforcing concepts to build confidence."
    opening = f"{time_part}; {advice}." if advice else f"{time_part}!"
    return f"{opening} {focus}"
