"""The workflow's locks under real concurrency (shared/seeds/002): bulk activation holds one
advisory lock per (org, class), so simultaneous requests for one cluster make one assignment set
and other classes never wait; the single-writer exit path lets one of many requests through and
never waits on another assignment's lock; a student in two classes gets one active bundle.
PostgreSQL only: SQLite serialises every write."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client

from classroom.api_auth import api_token_create
from classroom.models import SchoolClass, Student, User
from tests import factories
from tests.workflow_fixtures import auth, bundles_for, enrol, flat
from workflow import services
from workflow.models import AssignmentHistory, BundleAssignment, Cluster

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="advisory locks and concurrent writers need PostgreSQL"
    ),
    pytest.mark.django_db(transaction=True),
]

JOIN_TIMEOUT = 30


@pytest.fixture(autouse=True)
def _warm_urlconf() -> None:
    """The first request imports the URLconf and every view module: do it once, here, rather than
    in ten threads at once, so the race is about the locks and nothing else."""
    Client().get("/api/workflow/steps")


class Taught:
    """A class of stalled students (one Level_2 cluster), its teacher and the teacher's token."""

    def __init__(self, organisation: Any, size: int, also: list[Student] | None = None) -> None:
        made = factories.TeacherAssignmentFactory(school_class__organisation=organisation)
        self.teacher: User = made.teacher
        self.school_class: SchoolClass = made.school_class
        self.students = [enrol(self.school_class, flat(0.6)) for _ in range(size)]
        for student in also or []:
            factories.EnrollmentFactory(school_class=self.school_class, student=student)
            self.students.append(student)
        services.recommendations_refresh(school_class=self.school_class)
        self.cluster = Cluster.objects.get(school_class=self.school_class)
        self.token = api_token_create(user=self.teacher)

    @property
    def lock_key(self) -> str:
        return f"workflow:class:{self.school_class.organisation_id}:{self.school_class.pk}"

    def activate(self) -> Any:
        body = {"classId": self.school_class.pk, "clusterId": self.cluster.pk}
        return Client().post(
            "/api/workflow/activate", body, content_type="application/json", **auth(self.token)
        )


def _in_threads(calls: list[Callable[[], Any]], *, together: bool = True) -> tuple[list, list, list]:
    """Start one thread per call (released at once by a barrier); returns (threads, results, errors)."""
    barrier = threading.Barrier(len(calls)) if together else None
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(call: Callable[[], Any]) -> None:
        try:
            if barrier:
                barrier.wait(timeout=JOIN_TIMEOUT)
            results.append(call())
        except BaseException as error:  # noqa: BLE001 - reported by the caller's assertion
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    return threads, results, errors


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)


class HeldLock:
    """`pg_advisory_xact_lock` on `key`, held in an open transaction on a connection of its own."""

    def __init__(self, key: str) -> None:
        self.key, self.taken, self.release = key, threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold)

    def _hold(self) -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [self.key])
                self.taken.set()
                self.release.wait(timeout=JOIN_TIMEOUT)
        finally:
            connection.close()

    def __enter__(self) -> HeldLock:
        self.thread.start()
        assert self.taken.wait(timeout=JOIN_TIMEOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(timeout=JOIN_TIMEOUT)


def _advisory_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return cursor.fetchone()[0]


def _wait_for_waiters(count: int) -> None:
    deadline = time.monotonic() + JOIN_TIMEOUT
    while _advisory_waiters() < count:
        assert time.monotonic() < deadline, f"{_advisory_waiters()} of {count} requests reached the lock"
        time.sleep(0.02)


def test_ten_simultaneous_activations_of_a_cluster_make_one_assignment_per_member_and_others_never_wait():
    organisation = factories.OrganisationFactory()
    bundles_for(organisation)
    first, second, third = Taught(organisation, 6), Taught(organisation, 3), Taught(organisation, 3)
    with HeldLock(first.lock_key):
        racing, raced, race_errors = _in_threads([first.activate] * 10)
        _wait_for_waiters(10)  # all ten queue on the first class's lock
        others, other_results, other_errors = _in_threads([second.activate, third.activate])
        _join(others)  # ...while the other classes activate without waiting for it
        assert not other_errors
        assert [r.status_code for r in other_results] == [200, 200]
        assert {len(r.json()["activated"]) for r in other_results} == {3}
        assert not BundleAssignment.objects.filter(school_class=first.school_class).exists()
        assert all(thread.is_alive() for thread in racing)
    _join(racing)
    assert not race_errors
    assert [r.status_code for r in raced] == [200] * 10, [r.content for r in raced]
    members = sorted(s.pk for s in first.students)
    bodies = [r.json() for r in raced]
    [winner] = [b for b in bodies if b["activated"]]
    assert sorted(a["studentId"] for a in winner["activated"]) == members
    assert all(b["alreadyActive"] == members and b["activated"] == [] for b in bodies if b is not winner)
    assigned = BundleAssignment.objects.filter(school_class=first.school_class)
    assert sorted(assigned.values_list("student_id", flat=True)) == members
    assert AssignmentHistory.objects.filter(assignment__in=assigned).count() == len(members)
    assert BundleAssignment.objects.count() == len(members) + 6


def test_ten_simultaneous_exits_of_one_assignment_let_one_through():
    organisation = factories.OrganisationFactory()
    bundles_for(organisation)
    taught = Taught(organisation, 1)
    assert taught.activate().status_code == 200
    assignment = BundleAssignment.objects.get()
    body = {
        "classId": taught.school_class.pk,
        "assignmentId": assignment.pk,
        "overrideCode": "OVR_EXIT_GOAL_MET",
    }

    def leave() -> Any:
        return Client().post(
            "/api/workflow/exit", body, content_type="application/json", **auth(taught.token)
        )

    threads, results, errors = _in_threads([leave] * 10)
    _join(threads)
    assert not errors
    assert sorted(r.status_code for r in results) == [200] + [409] * 9
    assert {r.json()["error"] for r in results if r.status_code == 409} == {"ALREADY_EXITED"}
    assert assignment.history.filter(event="exited", triggering_workflow_step="TAW_17").count() == 1


def test_a_student_in_two_classes_activated_at_once_gets_one_bundle():
    organisation = factories.OrganisationFactory()
    bundles_for(organisation)
    first = Taught(organisation, 2)
    shared = first.students[0]
    second = Taught(organisation, 2, also=[shared])
    threads, results, errors = _in_threads([first.activate, second.activate])
    _join(threads)
    assert not errors
    assert [r.status_code for r in results] == [200, 200], [r.content for r in results]
    assert BundleAssignment.objects.filter(student=shared, status="active").count() == 1
    assert sum(shared.pk in r.json()["alreadyActive"] for r in results) == 1
    assert BundleAssignment.objects.count() == 4  # two, two more, and the shared student once


def test_exits_of_distinct_assignments_never_wait_for_each_other():
    organisation = factories.OrganisationFactory()
    bundles_for(organisation)
    taught = Taught(organisation, 2)
    assert taught.activate().status_code == 200
    held, free = BundleAssignment.objects.order_by("pk")

    def leave(assignment: BundleAssignment) -> Callable[[], Any]:
        body = {
            "classId": taught.school_class.pk,
            "assignmentId": assignment.pk,
            "overrideCode": "OVR_EXIT_GOAL_MET",
        }
        return lambda: Client().post(
            "/api/workflow/exit", body, content_type="application/json", **auth(taught.token)
        )

    with HeldLock(f"workflow:{organisation.pk}:assignment:{held.pk}"):
        waiting, waited, waiting_errors = _in_threads([leave(held)], together=False)
        _wait_for_waiters(1)
        passing, passed, passing_errors = _in_threads([leave(free)], together=False)
        _join(passing)
        assert not passing_errors
        assert [r.status_code for r in passed] == [200]
        assert waiting[0].is_alive()
        held.refresh_from_db()
        assert held.status == "active"
    _join(waiting)
    assert not waiting_errors
    assert [r.status_code for r in waited] == [200]
    assert set(BundleAssignment.objects.values_list("status", flat=True)) == {"exited"}
