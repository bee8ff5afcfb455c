"""Syncing the mirrors from the platform simulator over real HTTP on loopback."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from audit.models import ActivityEvent, Failure
from classroom.models import (
    Alert,
    Assignment,
    DailyPerformance,
    StudentSyncState,
    StudyPlanProgress,
    SyncRun,
    SyncRunStudent,
)
from classroom.platform import history
from classroom.platform.client import PlatformClient
from classroom.platform.sync import sync_run_execute, sync_run_request
from tests.platform_fixtures import demo_class, report


def _sync(demo, *, client=None):
    run, _ = sync_run_request(
        organisation=demo.school_class.organisation,
        school_class=demo.school_class,
        trigger=SyncRun.Trigger.COMMAND,
        enqueue=False,
    )
    return sync_run_execute(run_id=run.pk, client=client)


def _mirror_snapshot():
    return (
        sorted(
            DailyPerformance.objects.values_list(
                "student_id", "date", "study_minutes", "mastery", "confidence"
            )
        ),
        sorted(Assignment.objects.values_list("student_id", "platform_id", "due_at", "submitted_at")),
        sorted(StudyPlanProgress.objects.values_list("student_id", "platform_id", "due_on", "completed_on")),
    )


class _RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self.lock:
            self.waits.append(seconds)
        time.sleep(seconds)


def test_sync_fills_the_mirrors_with_what_the_platform_holds(school, platform):
    demo = demo_class(school)
    run = _sync(demo)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert (run.total, run.succeeded, run.failed) == (6, 6, 0)
    today = timezone.localdate()
    for student in demo.students:
        expected = history.days(history.DemoStudent.parse(student.platform_id), today)
        assert DailyPerformance.objects.filter(student=student).count() == len(expected)
        assert Assignment.objects.filter(student=student, school_class=demo.school_class).count() == 10
        state = StudentSyncState.objects.get(student=student)
        assert state.last_status == "ok"
        assert state.cursor is not None
    assert run.rows["performance"] == DailyPerformance.objects.count()
    # Student 1 has two overdue assignments on the platform: the sync raised the alert.
    assert Alert.objects.filter(student=demo.students[0], kind=Alert.Kind.OVERDUE_ASSIGNMENTS).exists()
    verbs = list(
        ActivityEvent.objects.filter(target_type="classroom.syncrun")
        .order_by("id")
        .values_list("verb", "status")
    )
    assert verbs == [("sync.requested", "pending"), ("sync.finished", "succeeded")]
    assert report(platform)["requests"] == 6


def test_second_sync_asks_only_for_what_changed(school, platform):
    demo = demo_class(school)
    _sync(demo)
    before = _mirror_snapshot()
    second = _sync(demo)
    assert second.status == SyncRun.Status.SUCCEEDED
    # Only today's performance row is still changing; nothing else comes back.
    assert second.rows["assignments"] == 0
    assert second.rows["milestones"] == 0
    assert second.rows["performance"] <= len(demo.students)
    assert _mirror_snapshot() == before


def test_a_full_resync_rewrites_only_the_rows_that_changed(school, platform):
    demo = demo_class(school)
    _sync(demo)
    stamps = dict(DailyPerformance.objects.values_list("pk", "synced_at"))
    drifted = DailyPerformance.objects.filter(student=demo.students[0]).order_by("date").first()
    DailyPerformance.objects.filter(pk=drifted.pk).update(study_minutes=999)
    StudentSyncState.objects.update(cursor=None)
    run = _sync(demo)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.rows["performance"] == len(stamps)
    drifted.refresh_from_db()
    assert drifted.study_minutes != 999
    assert drifted.synced_at > stamps[drifted.pk]
    # Every other row came back identical and was left alone, its stamp included.
    unchanged = dict(DailyPerformance.objects.exclude(pk=drifted.pk).values_list("pk", "synced_at"))
    assert unchanged == {pk: stamp for pk, stamp in stamps.items() if pk != drifted.pk}


def test_rate_limited_requests_wait_as_long_as_retry_after_says(school, platform):
    platform.state.config.update({"rate_limit_first": 1, "retry_after": 1})
    demo = demo_class(school, size=3)
    sleep = _RecordingSleep()
    started = time.monotonic()
    run = _sync(demo, client=PlatformClient(sleep=sleep))
    assert run.status == SyncRun.Status.SUCCEEDED
    assert sleep.waits == [1.0, 1.0, 1.0]
    assert time.monotonic() - started >= 1.0
    assert report(platform)["status_counts"] == {"429": 3, "200": 3}


def test_server_errors_back_off_exponentially_then_succeed(school, platform, settings):
    settings.PLATFORM_BACKOFF_BASE = 0.05
    platform.state.config.update({"fail_first": 2})
    demo = demo_class(school, size=2)
    sleep = _RecordingSleep()
    run = _sync(demo, client=PlatformClient(sleep=sleep))
    assert run.status == SyncRun.Status.SUCCEEDED
    waits = sorted(sleep.waits)
    assert len(waits) == 4
    assert all(0.05 <= w <= 0.0625 for w in waits[:2]), waits
    assert all(0.1 <= w <= 0.125 for w in waits[2:]), waits


def test_a_student_who_keeps_failing_is_recorded_with_a_hint_and_keeps_old_data(school, platform, client):
    demo = demo_class(school)
    _sync(demo)
    failing = demo.students[2]
    before = DailyPerformance.objects.filter(student=failing).count()
    synced_at = StudentSyncState.objects.get(student=failing).last_synced_at
    platform.state.config.update({"failing_students": [failing.platform_id]})
    run = _sync(demo)
    assert run.status == SyncRun.Status.PARTIAL
    assert (run.succeeded, run.failed) == (5, 1)
    outcome = SyncRunStudent.objects.get(run=run, student=failing)
    assert "platform returned 500" in outcome.error
    assert "try again later" in outcome.hint
    assert DailyPerformance.objects.filter(student=failing).count() == before
    state = StudentSyncState.objects.get(student=failing)
    assert (state.last_status, state.last_synced_at) == ("failed", synced_at)
    event = ActivityEvent.objects.get(verb="sync.student_failed")
    assert (event.student_id, event.status) == (failing.pk, "failed")
    client.force_login(school.teacher)
    page = client.get(f"/classes/{demo.school_class.pk}/").content.decode()
    assert "Sync partly failed" in page
    assert "1 student failed in the last sync" in page
    assert failing.full_name in page


def test_outage_fails_the_run_with_a_hint_and_loses_nothing(school, platform, settings):
    settings.PLATFORM_CIRCUIT_BREAKER = 3
    demo = demo_class(school, size=6)
    _sync(demo)
    before = _mirror_snapshot()
    platform.state.config.update({"outage": True})
    run = _sync(demo)
    assert run.status == SyncRun.Status.FAILED
    assert "stopped after 3 failures in a row" in run.error
    assert "not tried" in run.error
    assert "the platform answered 503" in run.hint
    assert _mirror_snapshot() == before
    assert ActivityEvent.objects.get(verb="sync.finished", target_id=str(run.pk)).status == "failed"
    # The failure is open for someone to act on, once per class however many runs fail.
    _sync(demo)
    failure = Failure.objects.get(state="open")
    assert (failure.severity, failure.occurrences) == ("high", 2)
    assert "the platform answered 503" in failure.remediation and failure.escalation
    # The platform is back: the next sync of the class succeeds and closes the failure.
    platform.state.config.update({"outage": False})
    recovered = _sync(demo)
    assert recovered.status == SyncRun.Status.SUCCEEDED
    failure.refresh_from_db()
    assert failure.state == "resolved"
    assert failure.resolution_note == f"cleared: sync run {recovered.pk} succeeded"


def test_an_expired_token_says_how_to_fix_it(school, platform, settings):
    settings.PLATFORM_TOKEN = "expired"
    run = _sync(demo_class(school, size=1))
    assert run.status == SyncRun.Status.FAILED
    assert "renew PLATFORM_TOKEN" in run.hint


def test_running_a_finished_run_again_changes_nothing(school, platform):
    demo = demo_class(school, size=3)
    run = _sync(demo)
    requests = report(platform)["requests"]
    again = sync_run_execute(run_id=run.pk)
    assert again.status == SyncRun.Status.SUCCEEDED
    assert report(platform)["requests"] == requests


def test_a_run_killed_half_way_and_delivered_again_leaves_the_same_rows(school, platform):
    demo = demo_class(school, size=6)
    _sync(demo)
    clean = _mirror_snapshot()
    StudentSyncState.objects.update(cursor=None)
    run, _ = sync_run_request(
        organisation=demo.school_class.organisation,
        school_class=demo.school_class,
        trigger=SyncRun.Trigger.SCHEDULE,
        enqueue=False,
    )
    # The worker died after storing three students: the run is left running with their rows.
    SyncRun.objects.filter(pk=run.pk).update(status=SyncRun.Status.RUNNING, started_at=timezone.now())
    for student in demo.students[:3]:
        SyncRunStudent.objects.create(run=run, student=student, status="ok", performance_rows=1)
    finished = sync_run_execute(run_id=run.pk)
    assert finished.status == SyncRun.Status.SUCCEEDED
    assert (finished.total, finished.processed, finished.succeeded) == (6, 6, 6)
    assert SyncRunStudent.objects.filter(run=run).count() == 6
    assert _mirror_snapshot() == clean


def test_sync_platform_command_shows_progress_and_fails_with_one_line(school, platform, capsys):
    demo = demo_class(school, size=2)
    call_command("sync_platform", "--class", str(demo.school_class.pk))
    assert "2/2, 0 failed" in capsys.readouterr().out
    platform.state.config.update({"outage": True})
    with pytest.raises(CommandError, match="1 of 1 sync runs did not fully succeed"):
        call_command("sync_platform", "--student", str(demo.students[0].pk))
    with pytest.raises(CommandError, match="no class with id 999999"):
        call_command("sync_platform", "--class", "999999")


def test_nightly_schedule_queues_one_run_per_class_without_doubling(
    school, django_capture_on_commit_callbacks
):
    from django_q.models import OrmQ

    from classroom.tasks import sync_all_classes

    with django_capture_on_commit_callbacks(execute=True):
        assert sync_all_classes() == 3
    with django_capture_on_commit_callbacks(execute=True):
        assert sync_all_classes() == 0
    assert SyncRun.objects.filter(trigger="schedule", status="queued").count() == 3
    assert OrmQ.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_two_workers_syncing_the_same_class_at_once_store_each_row_once(platform):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises every write)")
    from tests import factories

    org = factories.OrganisationFactory()
    teacher = factories.TeacherAssignmentFactory(school_class__organisation=org)
    platform.state.config.update({"latency_ms": 20})

    class School:
        school_class = teacher.school_class

    # More students than a store batch, so the workers' batches overlap and take turns.
    demo = demo_class(School, size=40)
    run, _ = sync_run_request(
        organisation=org, school_class=demo.school_class, trigger=SyncRun.Trigger.SCHEDULE, enqueue=False
    )
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            sync_run_execute(run_id=run.pk)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert not any(thread.is_alive() for thread in threads)
    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED
    assert SyncRunStudent.objects.filter(run=run).count() == 40
    today = timezone.localdate()
    expected = sum(len(history.days(history.DemoStudent.parse(s.platform_id), today)) for s in demo.students)
    assert DailyPerformance.objects.count() == expected
    assert Assignment.objects.count() == 40 * 10
    assert StudentSyncState.objects.count() == 40


def test_hostile_text_from_the_platform_is_capped_or_refused_by_name(school, platform):
    """A megabyte title is cut to its column; a NUL (PostgreSQL cannot store one) makes that
    student's answer malformed, named, and their last good data stays; the others sync (issue 13)."""
    demo = demo_class(school)
    _sync(demo)
    long_titles, with_nul = demo.students[0], demo.students[1]
    kept = Assignment.objects.filter(student=with_nul).count()
    platform.state.config.update(
        {"titles": {long_titles.platform_id: "T" * 1_000_000, with_nul.platform_id: "Unit 3\x00 test"}}
    )
    for state in StudentSyncState.objects.filter(student__in=demo.students):
        StudentSyncState.objects.filter(pk=state.pk).update(cursor=None)
    run = _sync(demo)
    assert (run.succeeded, run.failed) == (5, 1)
    assert {
        len(title) for title in Assignment.objects.filter(student=long_titles).values_list("title", flat=True)
    } == {200}
    outcome = SyncRunStudent.objects.get(run=run, student=with_nul)
    assert "title holds a NUL character" in outcome.error
    assert Assignment.objects.filter(student=with_nul).count() == kept
