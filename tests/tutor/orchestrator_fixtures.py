"""Learners with their own tokens, the learner app's service token, and a learner's history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from classroom.api_auth import api_token_create, service_account
from classroom.models import Student, User
from plans.models import DailySession, LearnerIntent
from tests import factories

INTENT = {
    "topic": "Linear equations",
    "depth": "informed",
    "end_goal": "Solve two-step equations without help",
    "time_per_day_min": 30,
    "user_tz": "America/New_York",
    "meta": {"learning_style": "project-first"},
}


@dataclass
class Learner:
    student: Student
    user: User
    token: str

    def headers(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}


def make_learner(school_class: Any, username: str) -> Learner:
    user = factories.UserFactory(
        username=username, role=User.Role.LEARNER, organisation=school_class.organisation
    )
    student = factories.EnrollmentFactory(
        school_class=school_class, student__organisation=school_class.organisation, student__user=user
    ).student
    return Learner(student=student, user=user, token=api_token_create(user=user))


@pytest.fixture
def learner(school) -> Learner:
    """A learner of the teacher's class, with their own bearer token."""
    return make_learner(school.school_class, "learner-a")


@pytest.fixture
def other_learner(school) -> Learner:
    """Another learner of the same class."""
    return make_learner(school.school_class, "learner-b")


@pytest.fixture
def service_token(school) -> str:
    """The learner app's service token for the school's organisation."""
    return api_token_create(user=service_account(name="learner-app", organisation=school.organisation))


def post(client: Client, path: str, body: dict, **headers: str) -> Any:
    return client.post(f"/api/orchestrator/{path}", body, content_type="application/json", **headers)


def history(learner: Learner, *, days: int, completed: bool = True, confidence: int = 7) -> LearnerIntent:
    """An active intent begun `days` days ago with one session a day before today: the data a
    learner app would have made, written directly because its days lie in the past."""
    now = timezone.now()
    intent = LearnerIntent.objects.create(
        student=learner.student, created_at=now - timedelta(days=days), **INTENT
    )
    start = timezone.localtime(intent.created_at, intent.tz).date()
    for offset in range(days):
        DailySession.objects.create(
            student=learner.student,
            intent=intent,
            week=offset // 7 + 1,
            day=offset % 7 + 1,
            date=start + timedelta(days=offset),
            plan_md="# Daily Learning Plan",
            plan_json_summary={"title": f"Day {offset + 1}", "objectives": ["o1"], "total_minutes": 30},
            plan_source="rules",
            created_at=now - timedelta(days=days - offset),
            completion_time_min=30 if completed else None,
            confidence=confidence if completed else None,
            completed_at=now - timedelta(days=days - offset) + timedelta(hours=1) if completed else None,
        )
    return intent
