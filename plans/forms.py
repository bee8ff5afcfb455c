"""The structured plan form: rows of objectives and milestones, pacing numbers and catalogue
checkboxes, turned into a plan document for the schema to judge (no raw JSON for the teacher)."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict


def _number(value: str) -> int | str:
    value = value.strip()
    return int(value) if value.isdigit() else value


def plan_from_form(data: QueryDict) -> dict[str, Any]:
    objectives = [
        {"id": oid.strip(), "text": text}
        for oid, text in zip(data.getlist("objective_id"), data.getlist("objective"), strict=False)
        if text.strip()
    ]
    milestones = [
        {"title": title, "due": due.strip()}
        for title, due in zip(data.getlist("milestone_title"), data.getlist("milestone_due"), strict=False)
        if title.strip() or due.strip()
    ]
    return {
        "starts_on": data.get("starts_on", "").strip(),
        "ends_on": data.get("ends_on", "").strip() or None,
        "objectives": objectives,
        "pacing": {
            "weekly_minutes": _number(data.get("weekly_minutes", "")),
            "sessions_per_week": _number(data.get("sessions_per_week", "")),
        },
        "curricula": data.getlist("curricula"),
        "milestones": milestones,
    }
