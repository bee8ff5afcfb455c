"""A class whose mirrors give every case of the Teacher Activation Workflow (shared/seeds/002):
mastery histories shaped against `workflow.engines`' thresholds, the demo's bundles for the
class's subject, and the recommendations, clusters and acute alerts computed by the real engines.

Not a plugin: import the fixtures you use. Each is registered under its short name (`wf_class`) from a
function named `<name>_fixture`, so that a test's argument does not shadow the import (ruff F811):
`from tests.workflow_fixtures import wf_class_fixture  # noqa: F401`. `wf_class` and `wf_client`
need `wf_teacher_fixture` imported too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from classroom.api_auth import api_token_create
from classroom.models import DailyPerformance, Enrollment, SchoolClass, Student, User
from tests import factories
from workflow import services
from workflow.demo import BUNDLES
from workflow.models import Bundle, Cluster

# One learner-day: (days before today, mastery, confidence).
Series = list[tuple[int, float | None, int | None]]


def flat(mastery: float, *, offsets: Iterable[int] = range(20), confidence: int = 4) -> Series:
    """No gain over 14 days: a stall, an intervention bundle at the tier of `mastery`."""
    return [(offset, mastery, confidence) for offset in offsets]


def rising(now_mastery: float, *, confidence: int = 4, per_day: float = 0.01) -> Series:
    """Twenty days climbing to `now_mastery` today: well above the stall threshold."""
    return [(offset, round(now_mastery - per_day * offset, 3), confidence) for offset in range(20)]


def falling(before: float, after: float) -> Series:
    """`before` for weeks, then three days at `after`: a stall and an acute regression at once."""
    return [(offset, after if offset < 3 else before, 4) for offset in range(20)]


def thin() -> Series:
    """Four measured days: under EVIDENCE_MIN_DAYS, so do_not_decide_yet."""
    return flat(0.6, offsets=range(4))


def quiet() -> Series:
    """Enough evidence, but nothing for the last six days: QA_003 (at least QA_QUIET_DAYS quiet)."""
    return flat(0.6, offsets=range(6, 26))


def mirror(student: Student, series: Series, *, today: date | None = None) -> None:
    """Write the student's daily performance rows, as a platform sync would."""
    today = today or timezone.localdate()
    now = timezone.now()
    DailyPerformance.objects.bulk_create(
        DailyPerformance(
            student=student,
            date=today - timedelta(days=offset),
            study_minutes=30,
            mastery=mastery,
            confidence=confidence,
            checked_in=confidence is not None,
            synced_at=now,
        )
        for offset, mastery, confidence in series
    )


def enrol(school_class: SchoolClass, series: Series, **student: Any) -> Student:
    enrolled = factories.EnrollmentFactory(school_class=school_class, **student).student
    mirror(enrolled, series)
    return enrolled


def bundles_for(organisation: Any) -> dict[str, Bundle]:
    """The demo's bundles (workflow.demo.BUNDLES) in the organisation, by code."""
    made = {}
    for code, title, kind, subject, anchor, supporting, bridge in BUNDLES:
        made[code], _ = Bundle.objects.update_or_create(
            organisation=organisation,
            code=code,
            defaults={
                "title": title,
                "object_type": kind,
                "subject": subject,
                "anchor_skill": anchor,
                "supporting_threads": supporting,
                "asset_bridge": bridge,
            },
        )
    return made


def auth(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@dataclass
class WorkflowTeacher:
    """The `school` fixture's teacher, their Mathematics class and an API token: enough for the
    step catalog and the drafts."""

    school: Any
    teacher: User
    school_class: SchoolClass
    token: str


@dataclass
class WorkflowClass(WorkflowTeacher):
    """The same class with one student per case, and the demo's bundles."""

    bundles: dict[str, Bundle]
    stalled_a: Student  # INTERVENTION Level_2, cluster "L2" with stalled_b and quiet
    stalled_b: Student
    quiet: Student  # INTERVENTION Level_2 with QA_003: deferred
    stalled_low: Student  # INTERVENTION Level_3, cluster "L3" with falling
    falling: Student  # INTERVENTION Level_3 with an open acute-regression alert
    unsure: Student  # COMPOSITE Level_2 (low confidence)
    practising: Student  # PRACTICE_SET, no bundle
    excelling: Student  # ENRICHMENT, no bundle
    undecided: Student  # do_not_decide_yet (the `school` fixture's own student)
    withdrawn: Student  # left the class: no recommendation

    @property
    def active_students(self) -> list[Student]:
        return [
            self.stalled_a,
            self.stalled_b,
            self.quiet,
            self.stalled_low,
            self.falling,
            self.unsure,
            self.practising,
            self.excelling,
            self.undecided,
        ]

    def cluster(self, student: Student) -> Cluster:
        return Cluster.objects.get(school_class=self.school_class, members__student=student)

    def refresh(self) -> None:
        services.recommendations_refresh(school_class=self.school_class)


@pytest.fixture(name="wf_teacher")
def wf_teacher_fixture(school) -> WorkflowTeacher:
    return WorkflowTeacher(
        school=school,
        teacher=school.teacher,
        school_class=school.school_class,
        token=api_token_create(user=school.teacher),
    )


@pytest.fixture(name="wf_class")
def wf_class_fixture(school, wf_teacher: WorkflowTeacher) -> WorkflowClass:
    """Built through the factories and the engines' own refresh (recommendations, clusters, alerts)."""
    school_class = school.school_class
    mirror(school.student, thin())
    withdrawn = enrol(school_class, flat(0.6))
    Enrollment.objects.filter(student=withdrawn).update(status=Enrollment.Status.WITHDRAWN)
    made = WorkflowClass(
        school=school,
        teacher=school.teacher,
        school_class=school_class,
        token=wf_teacher.token,
        bundles=bundles_for(school.organisation),
        stalled_a=enrol(school_class, flat(0.6)),
        stalled_b=enrol(school_class, flat(0.62)),
        quiet=enrol(school_class, quiet()),
        stalled_low=enrol(school_class, flat(0.4)),
        falling=enrol(school_class, falling(0.45, 0.3)),
        unsure=enrol(school_class, rising(0.69, confidence=2)),
        practising=enrol(school_class, rising(0.7)),
        excelling=enrol(school_class, rising(0.9)),
        undecided=school.student,
        withdrawn=withdrawn,
    )
    made.refresh()
    return made


@pytest.fixture(name="wf_client")
def wf_client_fixture(client: Client, wf_teacher: WorkflowTeacher) -> Callable[..., Any]:
    """`call("post", "/activate", {...})`: the endpoint under /api/workflow with the teacher's token."""

    def call(method: str, path: str, body: dict | None = None, *, token: str | None = None) -> Any:
        headers = auth(token or wf_teacher.token)
        url = f"/api/workflow{path}"
        if method == "get":
            return client.get(url, **headers)
        return client.post(url, body or {}, content_type="application/json", **headers)

    return call
