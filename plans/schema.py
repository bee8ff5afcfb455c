"""The study-plan document: one schema, its validation, the organisation's policy checks and the diff.

A plan document is what a plan version holds and what a draft proposes:

    {
      "starts_on": "2026-09-01", "ends_on": "2027-01-29",
      "objectives": [{"id": "o1", "text": "Solve two-step linear equations"}],
      "pacing": {"weekly_minutes": 150, "sessions_per_week": 3},
      "curricula": ["alg1-core"],
      "milestones": [{"title": "Unit 2 quiz", "due": "2026-10-16"}]
    }

Every problem is reported as `path: problem`, the path as a teacher's JSON would spell it
(`milestones[2].due: date is before the plan starts`, positions counted from 0), so a form, the
API and the tutor's tool all say the same thing about the same mistake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_WEEKLY_MINUTES = 3000
MAX_SESSIONS_PER_WEEK = 14


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Objective(_Strict):
    id: str = Field(default="", max_length=20, description="Stable id (o1, o2, ...); given to new ones.")
    text: str = Field(min_length=3, max_length=300)


class Pacing(_Strict):
    weekly_minutes: int = Field(ge=0, le=MAX_WEEKLY_MINUTES)
    sessions_per_week: int = Field(ge=1, le=MAX_SESSIONS_PER_WEEK)


class Milestone(_Strict):
    title: str = Field(min_length=2, max_length=200)
    due: date


class PlanDocument(_Strict):
    starts_on: date
    ends_on: date | None = None
    objectives: list[Objective] = Field(min_length=1, max_length=20)
    pacing: Pacing
    curricula: list[str] = Field(default_factory=list, max_length=10)
    milestones: list[Milestone] = Field(default_factory=list, max_length=40)

    @field_validator("curricula")
    @classmethod
    def _codes(cls, codes: list[str]) -> list[str]:
        return [code.strip() for code in codes]

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class PlanInvalid(ValueError):
    """The document breaks the schema or a policy; `errors` are `path: problem` lines."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors

    def by_field(self) -> dict[str, list[str]]:
        fields: dict[str, list[str]] = {}
        for error in self.errors:
            path, _, problem = error.partition(": ")
            fields.setdefault(path, []).append(problem)
        return fields


def _path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "plan"


def _message(error: dict[str, Any]) -> str:
    kind, context = error["type"], error.get("ctx") or {}
    known = {
        "missing": "is required",
        "extra_forbidden": "is not a field of a study plan",
        "date_from_datetime_parsing": "must be a date such as 2026-10-16",
        "date_parsing": "must be a date such as 2026-10-16",
        "date_type": "must be a date such as 2026-10-16",
        "int_parsing": "must be a whole number",
        "int_type": "must be a whole number",
        "int_from_float": "must be a whole number",
        "greater_than_equal": f"must be at least {context.get('ge')}",
        "less_than_equal": f"must be at most {context.get('le')}",
        "string_too_short": f"must be at least {context.get('min_length')} characters",
        "string_too_long": f"must be at most {context.get('max_length')} characters",
        "too_short": f"needs at least {context.get('min_length')}",
        "too_long": f"allows at most {context.get('max_length')}",
        "list_type": "must be a list",
        "model_type": "must be an object",
        "dict_type": "must be an object",
        "string_type": "must be text",
    }
    return known.get(kind, error["msg"][0].lower() + error["msg"][1:])


def parse(data: Any, *, base: PlanDocument | None = None) -> PlanDocument:
    """The document, with new objectives given ids above every id of `base` (so a removed
    objective's id is never reused for a new one); raises PlanInvalid naming every problem."""
    if not isinstance(data, dict):
        raise PlanInvalid(["plan: must be an object"])
    try:
        document = PlanDocument.model_validate(data)
    except ValidationError as error:
        raise PlanInvalid(
            [f"{_path(e['loc'])}: {_message(e)}" for e in error.errors(include_url=False)]
        ) from None
    errors = _consistency(document)
    if errors:
        raise PlanInvalid(errors)
    _number_objectives(document, taken=[o.id for o in base.objectives] if base else [])
    return document


def _consistency(document: PlanDocument) -> list[str]:
    errors = []
    if document.ends_on and document.ends_on < document.starts_on:
        errors.append("ends_on: date is before the plan starts")
    for n, milestone in enumerate(document.milestones):
        if milestone.due < document.starts_on:
            errors.append(f"milestones[{n}].due: date is before the plan starts")
        elif document.ends_on and milestone.due > document.ends_on:
            errors.append(f"milestones[{n}].due: date is after the plan ends")
    titles = [m.title.casefold() for m in document.milestones]
    for n, milestone in enumerate(document.milestones):
        if titles.count(milestone.title.casefold()) > 1 and titles.index(milestone.title.casefold()) != n:
            errors.append(f"milestones[{n}].title: {milestone.title!r} is used twice")
    seen: set[str] = set()
    for n, code in enumerate(document.curricula):
        if code in seen:
            errors.append(f"curricula[{n}]: {code!r} is listed twice")
        seen.add(code)
    ids = [o.id for o in document.objectives if o.id]
    for n, objective in enumerate(document.objectives):
        if objective.id and ids.count(objective.id) > 1:
            errors.append(f"objectives[{n}].id: {objective.id!r} is used twice")
    return errors


def _number_objectives(document: PlanDocument, *, taken: list[str]) -> None:
    ids = [o.id for o in document.objectives] + taken
    used = {int(oid[1:]) for oid in ids if oid[:1] == "o" and oid[1:].isdigit()}
    next_number = max(used, default=0) + 1
    for objective in document.objectives:
        if not objective.id:
            objective.id = f"o{next_number}"
            next_number += 1


@dataclass(frozen=True)
class Policy:
    """An organisation's rules for plans (plans.models.PlanPolicy, or the settings' defaults)."""

    min_weekly_minutes: int
    max_weekly_minutes: int
    catalogue: frozenset[str]
    high_impact_pacing_share: float
    new_curriculum_needs_approval: bool = True


def policy_errors(
    proposed: PlanDocument, *, base: PlanDocument | None, policy: Policy, today: date
) -> list[str]:
    """The organisation's static checks, on top of the schema. Milestones the draft leaves as they
    were may lie in the past (they are history); ones it adds or moves may not."""
    errors = []
    minutes = proposed.pacing.weekly_minutes
    if minutes < policy.min_weekly_minutes:
        errors.append(
            f"pacing.weekly_minutes: {minutes} is below the organisation's minimum of "
            f"{policy.min_weekly_minutes}"
        )
    if minutes > policy.max_weekly_minutes:
        errors.append(
            f"pacing.weekly_minutes: {minutes} is above the organisation's maximum of "
            f"{policy.max_weekly_minutes}"
        )
    for n, code in enumerate(proposed.curricula):
        if code not in policy.catalogue:
            errors.append(f"curricula[{n}]: {code!r} is not in the organisation's catalogue")
    kept = {(m.title, m.due) for m in base.milestones} if base else set()
    for n, milestone in enumerate(proposed.milestones):
        if (milestone.title, milestone.due) not in kept and milestone.due < today:
            errors.append(f"milestones[{n}].due: date is in the past")
    return errors


@dataclass
class PlanDiff:
    """What a proposal changes against the published version (or against nothing, for a first plan)."""

    objectives_added: list[str] = field(default_factory=list)
    objectives_removed: list[str] = field(default_factory=list)
    objectives_changed: list[dict[str, str]] = field(default_factory=list)
    pacing: dict[str, dict[str, int | None]] = field(default_factory=dict)
    curricula_added: list[str] = field(default_factory=list)
    curricula_removed: list[str] = field(default_factory=list)
    milestones_added: list[dict[str, str]] = field(default_factory=list)
    milestones_removed: list[dict[str, str]] = field(default_factory=list)
    milestones_moved: list[dict[str, str]] = field(default_factory=list)
    dates: dict[str, dict[str, str | None]] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not any(vars(self).values())

    @property
    def swaps(self) -> list[tuple[str, str]]:
        """Curricula removed and added in the same change, paired in order: a curriculum swap."""
        return list(zip(self.curricula_removed, self.curricula_added, strict=False))

    def pacing_share(self) -> float:
        """The relative change of weekly minutes (0.25 = a quarter more or less)."""
        change = self.pacing.get("weekly_minutes")
        if not change or not change["from"]:
            return 1.0 if change else 0.0
        return abs((change["to"] or 0) - change["from"]) / change["from"]

    def as_json(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if value}

    def summary(self) -> list[str]:
        """The deltas in words, for the publish confirmation and the audit log."""
        lines = [f"Objective added: {text}" for text in self.objectives_added]
        lines += [f"Objective removed: {text}" for text in self.objectives_removed]
        lines += [f"Objective changed: {c['from']} → {c['to']}" for c in self.objectives_changed]
        pacing = {"weekly_minutes": "Weekly minutes", "sessions_per_week": "Sessions per week"}
        for name, change in self.pacing.items():
            delta = (change["to"] or 0) - (change["from"] or 0)
            lines.append(f"{pacing[name]}: {change['from']} → {change['to']} ({delta:+d})")
        swaps = self.swaps
        lines += [f"Curriculum swapped: {old} → {new}" for old, new in swaps]
        lines += [f"Curriculum added: {code}" for code in self.curricula_added[len(swaps) :]]
        lines += [f"Curriculum removed: {code}" for code in self.curricula_removed[len(swaps) :]]
        lines += [f"Milestone added: {m['title']} (due {m['due']})" for m in self.milestones_added]
        lines += [f"Milestone removed: {m['title']} (due {m['due']})" for m in self.milestones_removed]
        lines += [f"Milestone moved: {m['title']}, {m['from']} → {m['to']}" for m in self.milestones_moved]
        labels = {"starts_on": "Starts on", "ends_on": "Ends on"}
        lines += [f"{labels[name]}: {c['from']} → {c['to']}" for name, c in self.dates.items()]
        return lines


def diff(base: PlanDocument | None, proposed: PlanDocument) -> PlanDiff:
    result = PlanDiff()
    old_objectives = {o.id: o.text for o in base.objectives} if base else {}
    new_objectives = {o.id: o.text for o in proposed.objectives}
    for oid, text in new_objectives.items():
        if oid not in old_objectives:
            result.objectives_added.append(text)
        elif old_objectives[oid] != text:
            result.objectives_changed.append({"id": oid, "from": old_objectives[oid], "to": text})
    result.objectives_removed = [text for oid, text in old_objectives.items() if oid not in new_objectives]
    for name in ("weekly_minutes", "sessions_per_week"):
        before = getattr(base.pacing, name) if base else None
        after = getattr(proposed.pacing, name)
        if before != after:
            result.pacing[name] = {"from": before, "to": after}
    old_codes = base.curricula if base else []
    result.curricula_added = [code for code in proposed.curricula if code not in old_codes]
    result.curricula_removed = [code for code in old_codes if code not in proposed.curricula]
    old_milestones = {m.title: m.due for m in base.milestones} if base else {}
    new_milestones = {m.title: m.due for m in proposed.milestones}
    for title, due in new_milestones.items():
        if title not in old_milestones:
            result.milestones_added.append({"title": title, "due": due.isoformat()})
        elif old_milestones[title] != due:
            result.milestones_moved.append(
                {"title": title, "from": old_milestones[title].isoformat(), "to": due.isoformat()}
            )
    result.milestones_removed = [
        {"title": title, "due": due.isoformat()}
        for title, due in old_milestones.items()
        if title not in new_milestones
    ]
    for name in ("starts_on", "ends_on"):
        before = getattr(base, name) if base else None
        after = getattr(proposed, name)
        if base and before != after:
            result.dates[name] = {
                "from": before.isoformat() if before else None,
                "to": after.isoformat() if after else None,
            }
    return result
