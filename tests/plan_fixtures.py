"""A school with a catalogue and a published first plan for the teacher's student, made through
the real services."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from django.utils import timezone

from plans.models import Curriculum, PlanDraft
from plans.services import plan_publish, save_study_plan_draft

CATALOGUE = {
    "alg1-core": "Algebra I Core",
    "alg1-plus": "Algebra I Plus",
    "geo-bridge": "Geometry Bridge",
}


def first_plan() -> dict:
    today = timezone.localdate()
    start = today - timedelta(days=28)
    return {
        "starts_on": start.isoformat(),
        "ends_on": (start + timedelta(weeks=20)).isoformat(),
        "objectives": [
            {"text": "Solve two-step linear equations"},
            {"text": "Graph linear functions"},
        ],
        "pacing": {"weekly_minutes": 150, "sessions_per_week": 3},
        "curricula": ["alg1-core"],
        "milestones": [
            {"title": "Unit 1 quiz", "due": (today + timedelta(days=7)).isoformat()},
            {"title": "Unit 2 test", "due": (today + timedelta(days=14)).isoformat()},
        ],
    }


def changed(plan: dict, **pacing: int) -> dict:
    """The published plan with other pacing (objectives keep their ids)."""
    proposed = copy.deepcopy(plan)
    proposed["pacing"].update(pacing)
    return proposed


@pytest.fixture
def planned(school):
    """The teacher's student has version 1 of a plan; returns its document as published."""
    for code, title in CATALOGUE.items():
        Curriculum.objects.create(organisation=school.organisation, code=code, title=title)
    draft = save_study_plan_draft(
        student=school.student,
        by=school.teacher,
        plan=first_plan(),
        rationale="Plan for the term",
        source=PlanDraft.Source.FORM,
    )
    plan_publish(draft=draft, by=school.teacher, confirmed=True)
    return draft.document
