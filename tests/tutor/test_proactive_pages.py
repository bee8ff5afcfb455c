"""The proactive pages: a student's schedules with their runs and controls, a class's schedules,
the learner profile and the automation switches; every action in place by htmx and without it."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from audit.models import ActivityEvent
from classroom.models import DailyPerformance, User
from tests import factories
from tests.conftest import login
from tests.platform_fixtures import demo_class, report
from tutor.models import AutomationSwitch, ScheduledTask, TaskRun
from tutor.proactive import services
from tutor.proactive.dispatcher import run_due_tasks

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def admin(school) -> User:
    return factories.UserFactory(organisation=school.organisation, role=User.Role.ORG_ADMIN)


def _schedule(school, student=None, by=None, **fields) -> ScheduledTask:
    fields = {"kind": "nudge", "intent": "Ten minutes on fractions", "cron": "30 16 * * 1-5", **fields}
    return services.schedule_create(by=by or school.teacher, student=student or school.student, **fields)


def _make_due(task: ScheduledTask) -> None:
    ScheduledTask.objects.filter(pk=task.pk).update(next_run_at=timezone.now() - timedelta(seconds=5))


def _page(client, student) -> str:
    response = client.get(f"/students/{student.pk}/schedules/")
    assert response.status_code == 200
    return response.content.decode()


def _student_urls(student, task, run) -> list[tuple[str, str]]:
    return [
        ("get", f"/students/{student.pk}/schedules/"),
        ("get", f"/students/{student.pk}/profile/"),
        ("post", f"/students/{student.pk}/schedules/new/"),
        ("post", f"/students/{student.pk}/proactive/pause/"),
        ("post", f"/students/{student.pk}/proactive/level/"),
        ("post", f"/students/{student.pk}/proactive/undo/"),
        ("post", f"/students/{student.pk}/patterns/detect/"),
        ("post", f"/schedules/{task.pk}/manage/"),
        ("post", f"/schedule-runs/{run.pk}/approve/"),
    ]


def _pending_run(school, student=None) -> TaskRun:
    """An assignment run waiting for approval (high impact), without the platform: nothing sent."""
    task = _schedule(school, student=student, kind="assignment", intent="Quiz 4 on linear equations")
    _make_due(task)
    assert run_due_tasks().by_status == {"pending_approval": 1}
    return TaskRun.objects.get(task=task)


def test_the_page_shows_schedules_runs_and_controls(client, school):
    pattern = services.pattern_record(
        student=school.student,
        kind="skipped_weekdays",
        description="Does not study on Wednesday",
        evidence={"weekdays": ["Wednesday"], "weeks_observed": 4},
        confidence=0.75,
    )
    _schedule(school, intent="A short Wednesday practice", pattern=pattern, time_zone="Europe/London")
    services.schedule_create(
        by=school.teacher,
        student=school.student,
        kind="check_in",
        intent="How did the test go?",
        run_at=timezone.now() + timedelta(days=2),
        time_zone="America/New_York",
    )
    run = _pending_run(school)
    login(client, school.teacher)
    page = _page(client, school.student)
    assert f"Schedules and proactive messages for {school.student.full_name}" in page
    assert "<code>30 16 * * 1-5</code>" in page and "Europe/London" in page
    assert "once, " in page and "America/New_York" in page
    assert "Rests on the pattern: Does not study on Wednesday" in page
    assert "75% confidence" in page and "Weeks observed" in page
    assert "Waiting for approval" in page and f"/schedule-runs/{run.pk}/approve/" in page
    assert "Assignment is high impact: the teacher approves it" in page  # the run's rationale
    assert "Pause all proactive messages" in page and "Detect patterns now" in page
    assert 'name="kind"' in page and 'name="cron"' in page and 'name="run_at"' in page
    assert 'name="time_zone"' in page and 'name="intent"' in page
    assert (
        "<html"
        not in client.get(
            f"/students/{school.student.pk}/schedules/", HTTP_HX_TARGET="proactive-schedules", **HTMX
        ).content.decode()
    )


def test_compliance_reads_the_page_without_any_form(client, school):
    _pending_run(school)
    compliance = factories.UserFactory(organisation=school.organisation, role=User.Role.COMPLIANCE)
    login(client, compliance)
    page = _page(client, school.student)
    assert "Quiz 4 on linear equations" in page and "Waiting for approval" in page
    for control in (
        "Approve and send",
        "Create schedule",
        "Pause all",
        "Detect patterns now",
        'name="action"',
    ):
        assert control not in page
    assert client.post(f"/students/{school.student.pk}/proactive/pause/", {"paused": "1"}).status_code == 403
    assert client.post(f"/schedule-runs/{TaskRun.objects.get().pk}/approve/").status_code == 403
    assert TaskRun.objects.get().status == "pending_approval"


def test_creating_from_the_page_then_the_dispatcher_sends_once(client, school, platform):
    learner = demo_class(school, size=1).students[0]
    login(client, school.teacher)
    response = client.post(
        f"/students/{learner.pk}/schedules/new/",
        {
            "kind": "nudge",
            "cron": "0 17 * * *",
            "time_zone": "Europe/Berlin",
            "intent": "Practice quiz tonight",
        },
        **HTMX,
    )
    assert response.status_code == 200
    fragment = response.content.decode()
    assert (
        "<html" not in fragment and "Nudge scheduled; first run" in fragment and "(Europe/Berlin)" in fragment
    )
    task = ScheduledTask.objects.get(student=learner)
    assert (task.owner, task.cron, task.time_zone) == (school.teacher, "0 17 * * *", "Europe/Berlin")
    _make_due(task)
    assert run_due_tasks().by_status == {"sent": 1}
    assert run_due_tasks().claimed == 0
    [sent] = report(platform)["dispatches"]
    assert sent["payload"]["message"].endswith("Practice quiz tonight")
    page = _page(client, learner)
    assert "Sent" in page and "Practice quiz tonight" in page


def test_a_bad_cron_is_named_in_place_with_the_typed_values_kept(client, school):
    login(client, school.teacher)
    url = f"/students/{school.student.pk}/schedules/new/"
    form = {"kind": "reminder", "cron": "61 * * * *", "time_zone": "UTC", "intent": "Revise chapter 3"}
    response = client.post(url, form, **HTMX)
    assert response.status_code == 400
    fragment = response.content.decode()
    assert "<html" not in fragment and 'id="proactive-schedules"' in fragment
    assert "Cron: &#x27;61 * * * *&#x27;: [61 * * * *] is not acceptable, out of range" in fragment
    assert 'aria-invalid="true" aria-describedby="error-cron"' in fragment
    assert 'value="61 * * * *"' in fragment and "Revise chapter 3</textarea>" in fragment
    assert '<option value="reminder" selected>' in fragment
    no_js = client.post(url, {**form, "cron": "", "run_at": "soon"})
    assert no_js.status_code == 400 and "<html" in no_js.content.decode()
    assert "Date and time: &#x27;soon&#x27; is not a date and time" in no_js.content.decode()
    zone = client.post(url, {**form, "cron": "0 9 * * *", "time_zone": "Mars/Olympus"}, **HTMX)
    assert "Time zone: &#x27;Mars/Olympus&#x27; is not a time zone" in zone.content.decode()
    assert not ScheduledTask.objects.exists()


def test_a_one_off_from_the_page_is_read_in_its_time_zone(client, school):
    login(client, school.teacher)
    response = client.post(
        f"/students/{school.student.pk}/schedules/new/",
        {
            "kind": "check_in",
            "run_at": "2031-01-15T09:30",
            "time_zone": "America/New_York",
            "intent": "How was it?",
        },
    )
    assert response.status_code == 302 and response["Location"].endswith("#proactive-schedules")
    task = ScheduledTask.objects.get()
    assert task.next_run_at.astimezone(UTC).hour == 14
    assert "Check-in scheduled; first run Wed 15 Jan 2031 09:30 (America/New_York)." in _page(
        client, school.student
    )


def test_pause_resume_and_cancel_from_the_page(client, school):
    task = _schedule(school)
    login(client, school.teacher)
    url = f"/schedules/{task.pk}/manage/"
    paused = client.post(url, {"action": "pause"}, **HTMX)
    assert paused.status_code == 200 and "Paused: nudge" in paused.content.decode()
    task.refresh_from_db()
    assert task.status == "paused" and 'value="resume"' in paused.content.decode()
    assert client.post(url, {"action": "resume"}, **HTMX).status_code == 200
    task.refresh_from_db()
    assert task.status == "active" and task.next_run_at > timezone.now()
    no_js = client.post(url, {"action": "cancel"})
    assert no_js.status_code == 302
    task.refresh_from_db()
    assert task.status == "cancelled"
    assert "Cancelled: nudge" in _page(client, school.student)  # the message after the redirect
    stale = client.post(url, {"action": "pause"}, **HTMX)
    assert stale.status_code == 409
    assert "Nothing changed: cannot pause a cancelled task." in stale.content.decode()
    assert client.post(url, {"action": "explode"}, **HTMX).status_code == 400
    other = _schedule(school, kind="reminder")
    cancelled = client.post(f"/schedules/{other.pk}/manage/", {"action": "cancel"}, **HTMX).content.decode()
    assert cancelled.index("Cancelled: reminder") < cancelled.index('<details class="ended">')
    verbs = set(ActivityEvent.objects.filter(verb__startswith="schedule.").values_list("verb", flat=True))
    assert verbs == {"schedule.created", "schedule.paused", "schedule.resumed", "schedule.cancelled"}


def test_approve_a_pending_run_from_the_page(client, school, platform):
    learner = demo_class(school, size=1).students[0]
    run = _pending_run(school, student=learner)
    assert report(platform)["dispatches"] == []
    login(client, school.teacher)
    assert "Approve and send" in _page(client, learner)
    response = client.post(f"/schedule-runs/{run.pk}/approve/", **HTMX)
    assert response.status_code == 200
    assert f"Approved and sent to {learner.first_name}." in response.content.decode()
    run.refresh_from_db()
    assert run.status == "sent"
    assert [d["kind"] for d in report(platform)["dispatches"]] == ["assignment"]
    again = client.post(f"/schedule-runs/{run.pk}/approve/", **HTMX)
    assert again.status_code == 409
    assert "no longer waiting for approval" in again.content.decode()
    assert len(report(platform)["dispatches"]) == 1
    assert ActivityEvent.objects.filter(verb="proactive.approved", actor=school.teacher).count() == 1


def test_a_one_off_waiting_for_approval_stays_in_view_until_decided(client, school, admin):
    once = timezone.now() + timedelta(hours=1)
    task = _schedule(school, kind="assignment", intent="Quiz 5", cron="", run_at=once)
    _make_due(task)
    run_due_tasks()
    task.refresh_from_db()
    assert task.status == "done"  # a one-off is done once claimed; its run still waits
    login(client, school.teacher)
    page = _page(client, school.student)
    assert "Approve and send" in page and "Ended:" not in page
    services.switch_set(name="kill_switch", on=True, by=admin)  # decided without the platform
    fragment = client.post(f"/schedule-runs/{TaskRun.objects.get().pk}/approve/", **HTMX).content.decode()
    assert "Ended: 1 done or cancelled" in fragment
    # The outcome stays visible, not inside the collapsed list the task has moved to.
    assert fragment.index("Approved, not sent") < fragment.index('<details class="ended">')


def test_approval_still_obeys_the_kill_switch(client, school, admin):
    run = _pending_run(school)
    services.switch_set(name="kill_switch", on=True, by=admin, reason="drill")
    login(client, school.teacher)
    response = client.post(f"/schedule-runs/{run.pk}/approve/", **HTMX)
    assert "Approved, not sent: the global kill switch is on." in (response.content.decode())
    assert "The kill switch is on" in _page(client, school.student)


def test_the_per_student_pause_level_and_undo(client, school):
    login(client, school.teacher)
    base = f"/students/{school.student.pk}/proactive"
    paused = client.post(f"{base}/pause/", {"paused": "1"}, **HTMX).content.decode()
    assert f"Proactive messages paused for {school.student.first_name}." in paused
    assert "Resume proactive messages" in paused and 'id="proactive-controls"' in paused
    assert services.settings_for(school.student).paused
    client.post(f"{base}/pause/", {"paused": "0"}, **HTMX)
    assert not services.settings_for(school.student).paused
    level = client.post(f"{base}/level/", {"level": "low"}, **HTMX)
    assert "Proactiveness set to low." in level.content.decode()
    assert services.settings_for(school.student).level == "low"
    assert client.post(f"{base}/level/", {"level": "loud"}, **HTMX).status_code == 400
    for _ in range(3):
        services.engagement_record(student=school.student, suggestion_type="check_in", response="dismissed")
    page = _page(client, school.student)
    assert "Check-ins" in page and 'name="suggestion_type" value="check_in"' in page
    undone = client.post(f"{base}/undo/", {"suggestion_type": "check_in"}, **HTMX)
    assert f"Check-ins are sent to {school.student.first_name} again." in undone.content.decode()
    assert services.settings_for(school.student).suppressed_types == []
    assert client.post(f"{base}/undo/", {"suggestion_type": "check_in"}, **HTMX).status_code == 409
    no_js = client.post(f"{base}/pause/", {"paused": "1"})
    assert no_js.status_code == 302 and no_js["Location"].endswith("#proactive-controls")


def test_detect_patterns_now(client, school):
    today = timezone.localdate()
    DailyPerformance.objects.bulk_create(
        factories.DailyPerformanceFactory.build(student=school.student, date=today - timedelta(days=n))
        for n in range(28)
        if (today - timedelta(days=n)).weekday() not in (2, 5, 6)
    )
    login(client, school.teacher)
    response = client.post(f"/students/{school.student.pk}/patterns/detect/", **HTMX)
    assert response.status_code == 200 and response["HX-Trigger"] == "patterns-changed"
    fragment = response.content.decode()
    assert "2 patterns found in the last 28 days." in fragment
    assert "Does not study on Wednesday" in fragment and "Usually studies on Monday" in fragment
    reloaded = client.get(
        f"/students/{school.student.pk}/schedules/", HTTP_HX_TARGET="proactive-schedules", **HTMX
    ).content.decode()
    assert '<option value="' in reloaded and "Does not study on Wednesday</option>" in reloaded


def test_the_profile_page_shows_what_the_api_answers(client, school):
    services.pattern_record(
        student=school.student,
        kind="fading_study_time",
        description="Studies 40% less per day than two weeks before",
        evidence={"minutes_before": 50, "minutes_now": 30},
        confidence=0.6,
    )
    _schedule(school, intent="Keep the streak going")
    login(client, school.teacher)
    page = client.get(f"/students/{school.student.pk}/profile/").content.decode()
    profile = client.get(f"/api/proactive/profile?student_id={school.student.pk}").json()
    assert f"What the tutor knows about {school.student.first_name}" in page
    for pattern in profile["patterns"]:
        assert pattern["description"] in page
    assert "Minutes before</dt><dd>50" in page and "60% confidence" in page
    assert "Keep the streak going" in page and "Normal" in page


def test_automation_switches_flip_for_org_admins_only(client, school, admin):
    run = _pending_run(school)
    login(client, school.teacher)
    page = client.get("/automation/").content.decode()
    assert "Kill switch" in page and "Shadow mode" in page and "Never flipped." in page
    assert "Turn on" not in page and "Only organisation admins flip these switches." in page
    assert f"#task-{run.task_id}" in page and "Quiz 4 on linear equations" in page
    refused = client.post("/automation/kill_switch/", {"on": "1", "reason": "please"})
    assert refused.status_code == 403
    assert not AutomationSwitch.objects.filter(on=True).exists()
    login(client, admin)
    assert "Turn on" in client.get("/automation/").content.decode()
    flipped = client.post("/automation/kill_switch/", {"on": "1", "reason": "wrong messages"}, **HTMX)
    assert flipped.status_code == 200
    fragment = flipped.content.decode()
    assert "Kill switch turned on." in fragment and "<html" not in fragment
    assert f"by {admin.display_name}: “wrong messages”" in fragment and "Turn off" in fragment
    assert AutomationSwitch.objects.get(name="kill_switch").on
    assert ActivityEvent.objects.filter(verb="automation.kill_switch_on", actor=admin).exists()
    off = client.post("/automation/kill_switch/", {"on": "0", "reason": "fixed"})
    assert off.status_code == 302 and not AutomationSwitch.objects.get(name="kill_switch").on
    assert client.post("/automation/self_destruct/", {"on": "1"}).status_code == 404


def test_the_automation_page_counts_only_runs_you_reach(client, school):
    _pending_run(school)
    login(client, school.colleague)
    page = client.get("/automation/").content.decode()
    assert "Quiz 4 on linear equations" not in page
    assert "No run is waiting for approval in your classes." in page


def test_the_class_page_lists_its_students_schedules(client, school):
    _schedule(school, intent="For my student")
    _schedule(school, student=school.colleague_student, by=school.colleague, intent="Not for mine")
    login(client, school.teacher)
    page = client.get(f"/classes/{school.school_class.pk}/schedules/").content.decode()
    assert "For my student" in page and "Not for mine" not in page
    assert f'href="/students/{school.student.pk}/schedules/"' in page
    paused = client.get(f"/classes/{school.school_class.pk}/schedules/?status=paused").content.decode()
    assert "No schedules in this status" in paused


@pytest.mark.parametrize("size", [5, 40])
def test_the_class_page_costs_the_same_queries_whatever_the_roster(
    client, school, admin, size, django_assert_max_num_queries
):
    students = demo_class(school, size=size).students
    for student in students:
        _schedule(school, student=student)
        _make_due(_schedule(school, student=student, kind="reminder", cron="0 8 * * *"))
    services.switch_set(name="shadow_mode", on=True, by=admin)
    services.switch_set(name="kill_switch", on=True, by=admin)
    assert run_due_tasks().by_status == {"skipped": size}
    login(client, school.teacher)
    client.get(f"/classes/{school.school_class.pk}/schedules/")  # warm the session
    with django_assert_max_num_queries(7):
        response = client.get(f"/classes/{school.school_class.pk}/schedules/?page=2")
    assert response.status_code == 200
    assert f"{size * 2} schedules" in response.content.decode()
    with django_assert_max_num_queries(9):
        assert client.get(f"/students/{students[0].pk}/schedules/").status_code == 200


def test_outsiders_get_404_on_every_page_and_action(client, school):
    task = _schedule(school)
    run = _pending_run(school)
    login(client, school.colleague)
    for method, url in _student_urls(school.student, task, run):
        assert getattr(client, method)(url).status_code == 404, url
    assert client.get(f"/classes/{school.school_class.pk}/schedules/").status_code == 404
    task.refresh_from_db()
    assert task.status == "active" and TaskRun.objects.get().status == "pending_approval"


def test_anonymous_visitors_are_sent_to_log_in(client, school):
    task = _schedule(school)
    run = _pending_run(school)
    urls = [
        *_student_urls(school.student, task, run),
        ("get", f"/classes/{school.school_class.pk}/schedules/"),
        ("get", "/automation/"),
        ("post", "/automation/kill_switch/"),
    ]
    for method, url in urls:
        response = getattr(client, method)(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


def test_learners_use_the_api_not_the_console(client, school):
    learner = factories.UserFactory(organisation=school.organisation, role=User.Role.LEARNER)
    login(client, learner)
    assert client.get("/automation/").status_code == 403
    assert client.get(f"/students/{school.student.pk}/schedules/").status_code == 403


def test_links_lead_to_the_pages(client, school):
    login(client, school.teacher)
    student = client.get(f"/students/{school.student.pk}/").content.decode()
    assert f'href="/students/{school.student.pk}/schedules/">Schedules and proactive messages</a>' in student
    klass = client.get(f"/classes/{school.school_class.pk}/").content.decode()
    assert f'href="/classes/{school.school_class.pk}/schedules/">Schedules</a>' in klass
    assert 'href="/automation/">Automation</a>' in klass
