"""The people every test needs: a teacher, a colleague in the same school, and an outsider."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client

from classroom.models import SchoolClass, Student, User
from tests import factories

pytest_plugins = [
    "tests.platform_fixtures",
    "tests.notify_fixtures",
    "tests.fake_anthropic",
    "tests.plan_fixtures",
    "tests.agents_fixtures",
    "tests.tutor.orchestrator_fixtures",
    "tests.classroom.live_fixtures",
]


@dataclass
class School:
    organisation: object
    teacher: User
    colleague: User
    outsider: User
    school_class: SchoolClass
    colleague_class: SchoolClass
    outsider_class: SchoolClass
    student: Student
    colleague_student: Student
    outsider_student: Student


@pytest.fixture
def school(db) -> School:
    """Two teachers in one organisation with a class and a student each, and a teacher elsewhere."""
    org = factories.OrganisationFactory()
    other_org = factories.OrganisationFactory()
    mine = factories.TeacherAssignmentFactory(school_class__organisation=org)
    colleague = factories.TeacherAssignmentFactory(school_class__organisation=org)
    outsider = factories.TeacherAssignmentFactory(school_class__organisation=other_org)
    return School(
        organisation=org,
        teacher=mine.teacher,
        colleague=colleague.teacher,
        outsider=outsider.teacher,
        school_class=mine.school_class,
        colleague_class=colleague.school_class,
        outsider_class=outsider.school_class,
        student=factories.EnrollmentFactory(school_class=mine.school_class).student,
        colleague_student=factories.EnrollmentFactory(school_class=colleague.school_class).student,
        outsider_student=factories.EnrollmentFactory(school_class=outsider.school_class).student,
    )


def login(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _dispatch_in_the_test_thread(settings) -> None:
    """Most tests run inside a transaction that the dispatcher's worker threads (each with its own
    connection) cannot see; the threaded path is tested where data is committed
    (tests/tutor/test_proactive.py, transaction=True on PostgreSQL)."""
    settings.PROACTIVE_CONCURRENCY = 1
