"""The proactive engine's dispatcher, through the platform simulator over real HTTP: due tasks run
once, the controls stop a send, calibration learns from dismissals, time zones and DST hold."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from audit.models import ActivityEvent
from classroom.models import User
from tests import factories
from tests.fake_anthropic import delay, text
from tests.platform_fixtures import demo_class, report
from tutor.models import ScheduledTask, TaskRun
from tutor.proactive import services
from tutor.proactive.dispatcher import approve, run_due_tasks
from tutor.proactive.timing import ScheduleInvalid, next_after


@pytest.fixture
def learner(school):
    return demo_class(school, size=1).students[0]


@pytest.fixture
def admin(school):
    return factories.UserFactory(organisation=school.organisation, role=User.Role.ORG_ADMIN)


def _due(school, learner, kind="nudge", intent="Ten minutes on fractions before dinner", **extra):
    """A task whose first due time has just passed."""
    task = services.schedule_create(
        by=school.teacher, student=learner, kind=kind, intent=intent, cron="*/5 * * * *", **extra
    )
    ScheduledTask.objects.filter(pk=task.pk).update(next_run_at=timezone.now() - timedelta(seconds=5))
    return task


def test_bad_schedules_name_the_field(school, learner):
    def create(**fields):
        services.schedule_create(
            by=school.teacher, student=learner, kind="nudge", intent="practise", **fields
        )

    with pytest.raises(ScheduleInvalid, match="cron: '61 \\* \\* \\* \\*'"):
        create(cron="61 * * * *")
    with pytest.raises(ScheduleInvalid, match="cron: 'every day' needs five fields"):
        create(cron="every day")
    with pytest.raises(ScheduleInvalid, match="time_zone: 'Mars/Olympus' is not a time zone"):
        create(cron="0 9 * * *", time_zone="Mars/Olympus")
    with pytest.raises(ScheduleInvalid, match="run_at: is in the past"):
        create(run_at=timezone.now() - timedelta(hours=1))
    with pytest.raises(ScheduleInvalid, match="give either cron"):
        create()
    assert not ScheduledTask.objects.exists()


def test_cron_times_follow_the_tasks_time_zone_across_daylight_saving():
    new_york = ZoneInfo("America/New_York")
    before = datetime(2026, 3, 6, 12, 0, tzinfo=new_york)  # the clocks go forward at 2:00 on 8 March
    first = next_after("30 9 * * *", "America/New_York", before)
    second = next_after("30 9 * * *", "America/New_York", first)
    assert (first.hour, first.minute, second.hour, second.minute) == (9, 30, 9, 30)
    assert first.utcoffset() == timedelta(hours=-5) and second.utcoffset() == timedelta(hours=-4)
    # Same wall-clock time, so the day in between is 23 hours long.
    assert second.timestamp() - first.timestamp() == 23 * 3600


def test_a_due_task_is_sent_once_and_recorded(school, learner, platform):
    task = _due(school, learner)
    result = run_due_tasks()
    assert (result.claimed, result.by_status) == (1, {"sent": 1})
    run = TaskRun.objects.get(task=task)
    assert run.status == "sent" and run.output.endswith("Ten minutes on fractions before dinner")
    assert run.dispatch.idempotency_key and run.duration_ms >= 0
    sent = report(platform)["dispatches"]
    assert len(sent) == 1 and sent[0]["payload"]["message"] == run.output
    event = ActivityEvent.objects.get(verb="proactive.sent")
    assert event.details["task_id"] == task.pk and event.details["llm_event_id"]
    assert ActivityEvent.objects.get(pk=event.details["llm_event_id"]).details["source"] == "fallback"
    assert run_due_tasks().claimed == 0
    task.refresh_from_db()
    assert task.next_run_at > timezone.now()


def test_after_downtime_a_missed_task_runs_once_not_once_per_slot(school, learner, platform):
    task = _due(school, learner)
    ScheduledTask.objects.filter(pk=task.pk).update(next_run_at=timezone.now() - timedelta(hours=3))
    assert run_due_tasks().claimed == 1
    assert TaskRun.objects.filter(task=task).count() == 1
    assert len(report(platform)["dispatches"]) == 1


@pytest.mark.parametrize(
    ("control", "status", "why"),
    [
        ("kill_switch", "skipped", "the global kill switch is on"),
        ("pause", "skipped", "proactive messages are paused for this learner"),
        ("shadow_mode", "shadow", "shadow mode: decided and recorded, not sent"),
    ],
)
def test_each_control_stops_the_next_due_send(school, learner, platform, admin, control, status, why):
    if control == "pause":
        services.student_pause(student=learner, by=school.teacher, paused=True)
    else:
        services.switch_set(name=control, on=True, by=admin, reason="drill")
    _due(school, learner)
    assert run_due_tasks().by_status == {status: 1}
    run = TaskRun.objects.get()
    assert run.rationale == why
    assert (run.output != "") == (status == "shadow")  # shadow mode composes, and only records
    assert report(platform)["dispatches"] == []
    assert ActivityEvent.objects.filter(verb=f"proactive.{status}").count() == 1


def test_only_org_admins_flip_the_switches(school):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.switch_set(name="kill_switch", on=True, by=school.teacher)


def test_three_dismissals_suppress_a_type_until_undone(school, learner, platform):
    for response in ("dismissed", "dismissed", "accepted", "dismissed", "dismissed"):
        services.engagement_record(student=learner, suggestion_type="nudge", response=response)
    assert services.settings_for(learner).suppressed_types == []
    services.engagement_record(student=learner, suggestion_type="nudge", response="dismissed")
    assert services.settings_for(learner).suppressed_types == ["nudge"]
    _due(school, learner)
    assert run_due_tasks().by_status == {"suppressed": 1}
    services.suppression_undo(student=learner, suggestion_type="nudge", by=school.teacher)
    services.engagement_record(student=learner, suggestion_type="nudge", response="dismissed")
    assert services.settings_for(learner).suppressed_types == []  # older dismissals no longer count
    _due(school, learner, intent="Try the practice quiz")
    assert run_due_tasks().by_status == {"sent": 1}


def test_high_impact_kinds_wait_for_approval_then_send_once(school, learner, platform):
    _due(school, learner, kind="assignment", intent="Quiz 4 on linear equations")
    assert run_due_tasks().by_status == {"pending_approval": 1}
    run = TaskRun.objects.get()
    assert report(platform)["dispatches"] == []
    assert approve(run=run, by=school.teacher) == "sent"
    with pytest.raises(ValueError, match="not waiting for approval"):
        approve(run=run, by=school.teacher)
    assert [d["kind"] for d in report(platform)["dispatches"]] == ["assignment"]


def test_a_run_left_claimed_by_a_dead_worker_is_sent_once(school, learner, platform, settings):
    from tutor.proactive.dispatcher import _claim, process

    task = _due(school, learner)
    [run] = _claim(timezone.now())
    process([run])  # sent, then the worker "dies" before anyone sees the result
    TaskRun.objects.filter(pk=run.pk).update(
        status="claimed", started_at=timezone.now() - timedelta(minutes=11)
    )
    run_due_tasks()
    assert TaskRun.objects.get(task=task).status == "sent"
    assert len(report(platform)["dispatches"]) == 1
    assert ActivityEvent.objects.filter(verb="dispatch.deduplicated").count() == 1


def test_run_due_tasks_once_command(school, learner, platform, capsys):
    _due(school, learner)
    call_command("run_due_tasks", "--once")
    assert "1 due: sent 1" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_two_workers_run_each_due_task_exactly_once(platform, settings):
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED and concurrent workers need PostgreSQL (SQLite serialises every write)")
    settings.PROACTIVE_CONCURRENCY = 4  # each worker also processes its runs on threads of its own
    settings.PROACTIVE_BATCH = 10  # several claims per pass
    org = factories.OrganisationFactory()
    assignment = factories.TeacherAssignmentFactory(school_class__organisation=org)

    class School:
        school_class = assignment.school_class
        teacher = assignment.teacher

    students = demo_class(School, size=12).students
    for student in students:
        for minute in range(3):
            task = services.schedule_create(
                by=assignment.teacher,
                student=student,
                kind="nudge",
                intent=f"practice {minute}",
                cron="0 * * * *",
            )
            ScheduledTask.objects.filter(pk=task.pk).update(
                next_run_at=timezone.now() - timedelta(seconds=minute)
            )
    barrier, errors = threading.Barrier(2), []

    def worker():
        try:
            barrier.wait(timeout=10)
            run_due_tasks()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert TaskRun.objects.count() == 36 and set(TaskRun.objects.values_list("status", flat=True)) == {"sent"}
    assert len(report(platform)["dispatches"]) == 36


def test_patterns_are_detected_from_the_mirrors_with_their_evidence(school, learner):
    from classroom.models import DailyPerformance

    today = timezone.localdate()
    rows = []
    for offset in range(28):
        day = today - timedelta(days=offset)
        if day.weekday() in (2, 5, 6):  # never on Wednesdays or weekends
            continue
        long_day = day.weekday() == 0  # long Monday sessions, low confidence on Tuesdays
        rows.append(
            DailyPerformance(
                student=learner,
                date=day,
                study_minutes=70 if long_day else 30,
                confidence=2 if day.weekday() == 1 else 4,
                checked_in=True,
                synced_at=timezone.now(),
            )
        )
    DailyPerformance.objects.bulk_create(rows)
    found = {p.kind: p for p in services.patterns_detect(student=learner)}
    assert found["skipped_weekdays"].description == "Does not study on Wednesday"
    assert found["usual_study_days"].evidence["weekdays"] == ["Monday", "Tuesday", "Thursday", "Friday"]
    dip = found["confidence_dip_after_long_sessions"]
    assert dip.evidence["confidence_after"] == 2.0 and dip.evidence["long_sessions"] >= 3
    assert ActivityEvent.objects.filter(verb="pattern.observed").count() == 3
    services.patterns_detect(student=learner)  # again: the same patterns, seen again, not doubled
    assert learner.patterns.count() == 3
    assert ActivityEvent.objects.filter(verb__startswith="pattern.").count() == 3  # unchanged: no new event


def test_a_suggestion_cites_the_pattern_it_rests_on(school, learner, platform):
    pattern = services.pattern_record(
        student=learner,
        kind="skipped_weekdays",
        description="Does not study on Wednesday",
        evidence={"weekdays": ["Wednesday"]},
        confidence=1.0,
    )
    _due(school, learner, intent="A short Wednesday practice keeps the week even", pattern=pattern)
    run_due_tasks()
    run = TaskRun.objects.get()
    assert run.output.endswith("(I noticed: does not study on Wednesday.)")
    assert "it rests on the pattern: Does not study on Wednesday" in run.rationale
    event = ActivityEvent.objects.get(verb="proactive.sent")
    assert event.details["pattern"] == {"kind": "skipped_weekdays", "evidence": {"weekdays": ["Wednesday"]}}


def test_a_sync_queues_pattern_detection_for_the_students_it_stored(
    school, platform, django_capture_on_commit_callbacks
):
    from django_q.models import OrmQ

    from classroom.models import SyncRun
    from classroom.platform.sync import sync_run_execute, sync_run_request
    from tutor.tasks import detect_patterns

    demo = demo_class(school, size=3)
    run, _ = sync_run_request(
        organisation=demo.school_class.organisation,
        school_class=demo.school_class,
        trigger=SyncRun.Trigger.COMMAND,
        enqueue=False,
    )
    with django_capture_on_commit_callbacks(execute=True):
        sync_run_execute(run_id=run.pk)
    [queued] = [task for task in OrmQ.objects.all() if task.func() == "tutor.tasks.detect_patterns"]
    assert sorted(queued.args()[0]) == sorted(s.pk for s in demo.students)
    assert detect_patterns(queued.args()[0]) >= 1  # the demo history has regular study days


def test_a_switch_flipped_in_another_organisation_does_not_silence_this_one(school, learner, platform):
    elsewhere = factories.UserFactory(organisation=factories.OrganisationFactory(), role=User.Role.ORG_ADMIN)
    services.switch_set(name="kill_switch", on=True, by=elsewhere, reason="their drill")
    _due(school, learner)
    assert run_due_tasks().by_status == {"sent": 1}
    operator = factories.UserFactory(organisation=None, is_superuser=True, role=User.Role.ORG_ADMIN)
    services.switch_set(name="kill_switch", on=True, by=operator, reason="platform incident")
    _due(school, learner, intent="Another one")
    assert run_due_tasks().by_status == {"skipped": 1}  # the operators' switch covers everyone


def test_only_the_learner_or_their_teachers_change_their_settings(school, learner):
    from django.core.exceptions import PermissionDenied

    for _ in range(3):
        services.engagement_record(student=learner, suggestion_type="check_in", response="dismissed")
    with pytest.raises(PermissionDenied):
        services.suppression_undo(student=learner, suggestion_type="check_in", by=school.colleague)
    with pytest.raises(PermissionDenied):
        services.proactiveness_adjust(student=learner, by=school.outsider, level="off")
    me = factories.UserFactory(organisation=school.organisation, role=User.Role.LEARNER)
    learner.user = me
    learner.save(update_fields=["user"])
    services.suppression_undo(student=learner, suggestion_type="check_in", by=me)
    assert services.settings_peek(learner).suppressed_types == []


def _due_for(school, students, **extra):
    return [_due(school, student, **extra) for student in students]


def _pass_queries(django_assert_max_num_queries, bound):
    with django_assert_max_num_queries(bound) as captured:
        result = run_due_tasks()
    return result, len(captured)


def test_a_pass_does_a_fixed_number_of_queries_whatever_the_number_due(
    school, platform, django_assert_max_num_queries
):
    students = demo_class(school, size=40).students
    _due_for(school, students[:4])
    small, small_queries = _pass_queries(django_assert_max_num_queries, 40)
    _due_for(school, students[4:], intent="Twenty minutes of practice today")
    large, large_queries = _pass_queries(django_assert_max_num_queries, 40)
    assert (small.by_status, large.by_status) == ({"sent": 4}, {"sent": 36})
    assert large_queries == small_queries, (small_queries, large_queries)  # per batch, not per run
    assert len(report(platform)["dispatches"]) == 40


def test_each_run_of_a_batch_gets_its_own_decision(school, platform, admin):
    paused, suppressed, assigned, sent, elsewhere = demo_class(school, size=5).students
    services.student_pause(student=paused, by=school.teacher, paused=True)
    for _ in range(3):
        services.engagement_record(student=suppressed, suggestion_type="nudge", response="dismissed")
    tasks = {
        "paused": _due(school, paused),
        "suppressed": _due(school, suppressed),
        "assigned": _due(school, assigned, kind="assignment", intent="Quiz 4 on linear equations"),
        "sent": _due(school, sent),
    }
    result = run_due_tasks()
    assert result.by_status == {"skipped": 1, "suppressed": 1, "pending_approval": 1, "sent": 1}
    status = {name: TaskRun.objects.get(task=task).status for name, task in tasks.items()}
    assert status == {
        "paused": "skipped",
        "suppressed": "suppressed",
        "assigned": "pending_approval",
        "sent": "sent",
    }
    assert [d["student"] for d in report(platform)["dispatches"]] == [sent.platform_id]
    assert all(0 <= ms < 60_000 for ms in result.lateness_ms) and len(result.lateness_ms) == 4
    assert ActivityEvent.objects.filter(verb__startswith="proactive.").count() == 4
    assert ActivityEvent.objects.filter(verb="llm.call").count() == 1  # only the sent one was composed


def test_a_failed_send_fails_only_its_own_run(school, platform, settings):
    settings.PLATFORM_MAX_ATTEMPTS = 2
    students = demo_class(school, size=3).students
    platform.state.config.update({"failing_students": [students[1].platform_id]})
    tasks = _due_for(school, students)
    assert run_due_tasks().by_status == {"sent": 2, "failed": 1}
    failed = TaskRun.objects.get(task=tasks[1])
    assert failed.status == "failed" and "platform returned 500" in failed.error
    assert failed.dispatch.attempt == 2  # both attempts are logged; the last is the run's
    assert {d["student"] for d in report(platform)["dispatches"]} == {
        students[0].platform_id,
        students[2].platform_id,
    }
    assert ActivityEvent.objects.get(verb="proactive.failed").status == "failed"


def test_a_run_taken_again_after_a_crash_sends_the_message_it_composed_first(
    school, learner, platform, fake_llm
):
    from tutor.proactive.dispatcher import _claim, _compose

    task = _due(school, learner)
    fake_llm.script("Ten minutes on fractions tonight?", "A different message")
    [run] = _claim(timezone.now())
    _compose([run])  # composed and stored; then the worker dies before it sends
    TaskRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(minutes=11))
    assert run_due_tasks().by_status == {"sent": 1}
    assert len(fake_llm.requests) == 1  # not composed again
    [sent] = report(platform)["dispatches"]
    assert sent["payload"]["message"] == "Ten minutes on fractions tonight?"
    assert TaskRun.objects.get(task=task).output == "Ten minutes on fractions tonight?"


@pytest.mark.django_db(transaction=True)
def test_a_kill_switch_flipped_while_a_batch_is_composed_stops_its_sends(platform, fake_llm):
    org = factories.OrganisationFactory()
    assignment = factories.TeacherAssignmentFactory(school_class__organisation=org)
    admin = factories.UserFactory(organisation=org, role=User.Role.ORG_ADMIN)

    class School:
        school_class = assignment.school_class
        teacher = assignment.teacher

    for student in demo_class(School, size=2).students:
        _due(School, student)
    fake_llm.script(*[delay(0.8, then=text("See you at practice tonight."))] * 2)

    def kill():
        try:
            services.switch_set(name="kill_switch", on=True, by=admin, reason="incident")
        finally:
            connection.close()

    flip = threading.Timer(0.3, kill)  # while the model composes the batch's messages
    flip.start()
    try:
        result = run_due_tasks()
    finally:
        flip.join()
    assert result.by_status == {"skipped": 2}
    assert report(platform)["dispatches"] == []
    assert set(TaskRun.objects.values_list("rationale", flat=True)) == {"the global kill switch is on"}


def test_the_dispatcher_process_wakes_when_a_task_falls_due(school, learner, platform, settings):
    from tutor.proactive.dispatcher import serve

    settings.PROACTIVE_POLL_SECONDS = 30  # were it to wait for the poll, the test would take 30 s
    task = _due(school, learner)
    due_at = timezone.now() + timedelta(seconds=1)
    ScheduledTask.objects.filter(pk=task.pk).update(next_run_at=due_at)
    stop, passes = threading.Event(), []

    def on_pass(report):
        passes.append(report)
        if report.claimed:
            stop.set()

    serve(stop, on_pass=on_pass)
    [received] = report(platform)["dispatches"]
    late = (datetime.fromisoformat(received["received_at"]) - due_at).total_seconds()
    assert 0 <= late < 2, late  # not before it was due, and not a poll period after
    assert [p.claimed for p in passes] == [0, 1]


def test_the_dispatcher_process_sleeps_until_the_next_due_time(school, learner, settings):
    from tutor.proactive.dispatcher import HELD_ELSEWHERE_SECONDS, _until_next_due

    settings.PROACTIVE_POLL_SECONDS = 5
    now = timezone.now()
    pass_started = now - timedelta(seconds=3)
    assert _until_next_due(now, pass_started) == 5  # nothing scheduled: the poll period
    task = _due(school, learner)
    ScheduledTask.objects.filter(pk=task.pk).update(next_run_at=now + timedelta(seconds=2))
    assert 2 <= _until_next_due(now, pass_started) < 2.1
    ScheduledTask.objects.filter(pk=task.pk).update(next_run_at=now + timedelta(minutes=5))
    assert _until_next_due(now, pass_started) == 5
    # Fell due while the pass ran: the next pass at once.
    ScheduledTask.objects.filter(pk=task.pk).update(next_run_at=now - timedelta(seconds=1))
    assert _until_next_due(now, pass_started) == 0
    # Due before the pass began and due still: another dispatcher holds it; do not spin.
    ScheduledTask.objects.filter(pk=task.pk).update(next_run_at=pass_started - timedelta(seconds=1))
    assert _until_next_due(now, pass_started) == HELD_ELSEWHERE_SECONDS
