"""A one-off message due during a platform outage is not lost: through the platform simulator over
real HTTP, its failed send is retried with growing waits and the same idempotency key, sent once
when the platform recovers, and given up at its deadline with a high-severity failure."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from audit.models import ActivityEvent, Failure
from classroom.models import DispatchLog
from tests.conftest import login
from tests.platform_fixtures import demo_class, report
from tutor.models import ScheduledTask, TaskRun
from tutor.proactive import services
from tutor.proactive.dispatcher import approve, run_due_tasks
from tutor.proactive.timing import next_after

INTENT = "Your retake opens at four today"


@pytest.fixture
def learner(school):
    return demo_class(school, size=1).students[0]


@pytest.fixture(autouse=True)
def _quick_platform_retries(settings):
    settings.PLATFORM_MAX_ATTEMPTS = 2  # the client's own retries within one send


def _one_off(school, learner, kind="reminder", intent=INTENT):
    """A one-off that has just fallen due."""
    task = services.schedule_create(
        by=school.teacher,
        student=learner,
        kind=kind,
        intent=intent,
        run_at=timezone.now() + timedelta(hours=1),
    )
    due = timezone.now() - timedelta(seconds=5)
    ScheduledTask.objects.filter(pk=task.pk).update(run_at=due, next_run_at=due)
    task.refresh_from_db()
    return task


def _platform(platform, **knobs) -> None:
    httpx.post(f"{platform.url}/_sim/config", json=knobs).raise_for_status()


def _minutes(delta: timedelta) -> float:
    return round(delta.total_seconds() / 60, 1)


def test_a_one_off_due_during_an_outage_is_retried_and_sent_once_after(client, school, learner, platform):
    task = _one_off(school, learner)
    _platform(platform, outage=True)
    now = timezone.now()
    assert run_due_tasks(now=now).by_status == {"failed": 1}
    task.refresh_from_db()
    run = TaskRun.objects.get()
    assert (task.status, run.status, run.attempts) == ("active", "failed", 1)
    assert "platform returned 503" in run.error
    assert _minutes(task.next_run_at - now) == 1  # the first wait
    assert run_due_tasks(now=now).claimed == 0  # not before its next attempt
    waits = []
    for _ in range(3):  # still down: the waits double
        at = task.next_run_at
        assert run_due_tasks(now=at).by_status == {"failed": 1}
        task.refresh_from_db()
        waits.append(_minutes(task.next_run_at - at))
    assert waits == [2, 4, 8]
    assert TaskRun.objects.get().attempts == 4 and TaskRun.objects.count() == 1
    event = ActivityEvent.objects.filter(verb="proactive.failed").latest("seq")
    assert event.details["next_attempt_at"] == task.next_run_at.isoformat()

    login(client, school.teacher)
    page = client.get(f"/students/{learner.pk}/schedules/").content.decode()
    local = timezone.localtime(task.next_run_at)
    assert f"retrying, next attempt at {local:%a} {local.day} {local:%b %H:%M}" in page
    listing = client.get(f"/classes/{school.school_class.pk}/schedules/").content.decode()
    assert "retrying, next attempt at" in listing

    _platform(platform, outage=False)
    assert run_due_tasks(now=task.next_run_at).by_status == {"sent": 1}
    task.refresh_from_db()
    run = TaskRun.objects.get()
    assert (task.status, run.status, run.attempts) == ("done", "sent", 5)
    [sent] = report(platform)["dispatches"]
    assert sent["payload"]["message"] == run.output and INTENT in run.output
    # Every attempt carried the same message under the same key.
    assert set(DispatchLog.objects.values_list("idempotency_key", flat=True)) == {sent["key"]}
    assert run_due_tasks(now=timezone.now() + timedelta(days=2)).claimed == 0
    assert len(report(platform)["dispatches"]) == 1
    assert not Failure.objects.filter(state="open", severity="high").exists()


def test_a_send_the_platform_took_but_never_answered_is_sent_once(school, learner, platform, settings):
    settings.PLATFORM_MAX_ATTEMPTS = 1
    settings.PLATFORM_TIMEOUT = 0.3
    _platform(platform, dispatch_delay_first_ms=1000)  # recorded, then the answer comes too late
    task = _one_off(school, learner)
    assert run_due_tasks().by_status == {"failed": 1}
    task.refresh_from_db()
    assert run_due_tasks(now=task.next_run_at).by_status == {"sent": 1}
    state = report(platform)
    assert len(state["dispatches"]) == 1 and state["replays"] == 1


def test_past_its_deadline_a_one_off_is_not_delivered_and_a_high_severity_failure_opens(
    client, school, learner, platform, settings
):
    settings.PROACTIVE_ONE_OFF_DEADLINE_HOURS = 6
    task = _one_off(school, learner)
    due = task.next_run_at
    _platform(platform, outage=True)
    run_due_tasks()
    task.refresh_from_db()
    # Late in the window the waits stop growing at an hour; the last attempt is at the deadline.
    run = TaskRun.objects.get()
    TaskRun.objects.filter(pk=run.pk).update(attempts=9)
    assert run_due_tasks(now=due + timedelta(hours=5, minutes=30)).by_status == {"failed": 1}
    task.refresh_from_db()
    assert task.next_run_at == due + timedelta(hours=6)
    assert run_due_tasks(now=task.next_run_at).by_status == {"undelivered": 1}
    task.refresh_from_db()
    run.refresh_from_db()
    assert (task.status, run.status) == ("undelivered", "undelivered")
    assert run.error.startswith("not delivered after 11 attempts")
    failure = Failure.objects.get(verb="proactive.undelivered")
    assert (failure.state, failure.severity, failure.student_id) == ("open", "high", learner.pk)
    assert f"Reminder for {learner.full_name}, due " in failure.summary
    assert "was not delivered" in failure.summary and INTENT in failure.summary
    assert "schedule it again" in failure.remediation and "PLATFORM_BASE_URL" in failure.remediation
    assert ActivityEvent.objects.get(verb="proactive.undelivered").status == "failed"
    assert run_due_tasks(now=due + timedelta(days=3)).claimed == 0
    _platform(platform, outage=False)
    assert run_due_tasks(now=due + timedelta(days=3)).claimed == 0
    assert report(platform)["dispatches"] == []

    login(client, school.teacher)
    page = client.get(f"/students/{learner.pk}/schedules/").content.decode()
    assert '<details class="ended" open>' in page and "1 not delivered" in page
    assert "Not delivered: every attempt to send it failed until its deadline" in page
    listing = client.get(f"/classes/{school.school_class.pk}/schedules/?status=undelivered").content.decode()
    assert INTENT in listing and "Not delivered" in listing


def test_an_approved_one_off_is_retried_without_asking_again(school, learner, platform):
    task = _one_off(school, learner, kind="assignment", intent="Quiz 4 on linear equations")
    assert run_due_tasks().by_status == {"pending_approval": 1}
    _platform(platform, outage=True)
    assert approve(run=TaskRun.objects.get(), by=school.teacher) == "failed"
    task.refresh_from_db()
    assert task.is_retrying
    _platform(platform, outage=False)
    assert run_due_tasks(now=task.next_run_at).by_status == {"sent": 1}
    assert [d["kind"] for d in report(platform)["dispatches"]] == ["assignment"]


def test_a_recurring_tasks_failed_run_waits_for_its_next_due_time(school, learner, platform):
    task = services.schedule_create(
        by=school.teacher, student=learner, kind="nudge", intent="practise", cron="0 9 * * *"
    )
    ScheduledTask.objects.filter(pk=task.pk).update(next_run_at=timezone.now() - timedelta(seconds=5))
    _platform(platform, outage=True)
    assert run_due_tasks().by_status == {"failed": 1}
    task.refresh_from_db()
    assert task.status == "active" and not task.is_retrying
    assert task.next_run_at == next_after("0 9 * * *", task.time_zone, timezone.now())
