"""A teacher schedules proactive messages for a student in a real Chromium: a bad cron expression is
refused in place with the reason, a recurring nudge is listed with its next run and paused, resumed
and cancelled in place, an assignment that falls due waits for approval and is sent once when the
teacher approves it; then an org admin turns the kill switch on and sees who flipped it and when.

No worker runs in tests: the test thread plays the dispatcher with one pass of `run_due_tasks`.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import Dialog, Locator, Page, expect

from classroom.models import Student, User
from tests import factories
from tests.browser.pages import log_in, mark_for_swap, wait_for_swap
from tests.platform_fixtures import demo_class, report
from tutor.models import AutomationSwitch, ScheduledTask, TaskRun
from tutor.proactive.dispatcher import run_due_tasks

pytestmark = pytest.mark.browser

LONDON = "Europe/London"
NUDGE = "Ten minutes on fractions before tea"
ASSIGNMENT = "Quiz 4 on linear equations"
KILL_REASON = "Wrong messages going out to learners"
SCHEDULES = "#proactive-schedules"
CANCEL_QUESTION = "Cancel this schedule? A cancelled schedule cannot be resumed."


def _answer_confirm(page: Page, *, accept: bool) -> list[str]:
    """Answer the next hx-confirm dialog as the teacher would; the list fills with what it asked."""
    asked: list[str] = []

    def answer(dialog: Dialog) -> None:
        asked.append(dialog.message)
        if accept:
            dialog.accept()
        else:
            dialog.dismiss()

    page.once("dialog", answer)
    return asked


def _first_daily_run(hour: int, minute: int, time_zone: str, after: datetime) -> datetime:
    """The first local hour:minute strictly after `after`, on the wall clock of `time_zone`."""
    local = after.astimezone(ZoneInfo(time_zone))
    candidate = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return candidate if candidate > local else candidate + timedelta(days=1)


def _create(page: Page, *, kind: str, cron: str, time_zone: str, intent: str) -> Locator:
    form = page.locator("form.schedule-form")
    form.get_by_label("Kind").select_option(label=kind)
    form.get_by_label("Repeat (cron)").fill(cron)
    form.get_by_label("Time zone").fill(time_zone)
    form.get_by_label("Intent: what the message should say or ask").fill(intent)
    mark_for_swap(page, SCHEDULES)
    form.get_by_role("button", name="Create schedule").click()
    wait_for_swap(page, SCHEDULES)
    return page.locator(SCHEDULES)


def _press(page: Page, button: Locator, card: str) -> Locator:
    """Press a schedule card's button; the section is swapped in place; the card as it is now."""
    mark_for_swap(page, SCHEDULES)
    button.click()
    wait_for_swap(page, SCHEDULES)
    return page.locator(SCHEDULES).get_by_role("article", name=card)


def _schedules_page(page: Page, student: Student) -> Locator:
    page.goto(f"/students/{student.pk}/schedules/")
    expect(page.locator("h1")).to_have_text(f"Schedules and proactive messages for {student.full_name}")
    return page.locator("#proactive-schedules")


def _refuse_a_bad_cron(page: Page) -> None:
    section = _create(page, kind="Reminder", cron="61 * * * *", time_zone=LONDON, intent="Revise chapter 3")
    error = section.locator("#error-cron")
    expect(error).to_contain_text("Cron: '61 * * * *'")
    expect(error).to_contain_text("out of range")
    cron = section.get_by_label("Repeat (cron)")
    expect(cron).to_have_attribute("aria-invalid", "true")
    expect(cron).to_have_accessible_description(re.compile(r"^Cron: '61 \* \* \* \*'.*out of range"))
    # What the teacher typed is kept for them to correct.
    expect(cron).to_have_value("61 * * * *")
    expect(section.get_by_label("Intent: what the message should say or ask")).to_have_value(
        "Revise chapter 3"
    )
    expect(section.get_by_label("Kind")).to_have_value("reminder")
    expect(section).to_contain_text("No active or paused schedules for")
    assert not ScheduledTask.objects.exists()


def _nudge_paused_resumed_and_cancelled(page: Page, student: Student) -> None:
    section = _create(page, kind="Nudge", cron="30 16 * * *", time_zone=LONDON, intent=NUDGE)
    task = ScheduledTask.objects.get(student=student, kind=ScheduledTask.Kind.NUDGE)
    expected = _first_daily_run(16, 30, LONDON, task.created_at)
    assert (task.cron, task.time_zone, task.next_run_at) == ("30 16 * * *", LONDON, expected)
    first = expected.astimezone(ZoneInfo(LONDON))
    next_run = f"next {first:%a} {first.day} {first:%b %H:%M}"

    card = section.get_by_role("article", name=f"Nudge {task.pk}")
    expect(card.get_by_role("status")).to_have_text(
        f"Nudge scheduled; first run {first:%a %d %b %Y %H:%M} ({LONDON})."
    )
    expect(card.locator("header code")).to_have_text("30 16 * * *")
    expect(card.locator("header .badge")).to_have_text("Active")
    expect(card.locator(".next")).to_have_text(next_run)
    expect(card.locator(".intent")).to_have_text(NUDGE)
    expect(card).to_contain_text("No runs yet.")
    expect(section.locator("#error-cron")).to_have_count(0)

    card = _press(page, card.get_by_role("button", name="Pause"), f"Nudge {task.pk}")
    expect(card.get_by_role("status")).to_have_text(f"Paused: nudge “{NUDGE}”.")
    expect(card.locator("header .badge")).to_have_text("Paused")
    expect(card.locator(".next")).to_have_text("not due while paused")
    expect(card.get_by_role("button", name="Pause")).to_have_count(0)

    card = _press(page, card.get_by_role("button", name="Resume"), f"Nudge {task.pk}")
    expect(card.get_by_role("status")).to_have_text(f"Resumed: nudge “{NUDGE}”.")
    expect(card.locator("header .badge")).to_have_text("Active")
    expect(card.locator(".next")).to_have_text(next_run)

    # Cancelling cannot be undone, so it is asked first: answered no, nothing changes.
    asked = _answer_confirm(page, accept=False)
    card.get_by_role("button", name="Cancel").click()
    assert asked == [CANCEL_QUESTION], "cancelling was not confirmed first"
    expect(card.locator("header .badge")).to_have_text("Active")
    assert ScheduledTask.objects.get(pk=task.pk).status == ScheduledTask.Status.ACTIVE

    mark_for_swap(page, SCHEDULES)
    asked = _answer_confirm(page, accept=True)
    card.get_by_role("button", name="Cancel").click()
    wait_for_swap(page, SCHEDULES)
    section = page.locator(SCHEDULES)
    assert asked == [CANCEL_QUESTION]
    # The cancelled schedule moves to the collapsed list; its outcome stays in view above it.
    expect(section.get_by_role("status")).to_have_text(f"Cancelled: nudge “{NUDGE}”.")
    expect(section).to_contain_text("No active or paused schedules for")
    ended = section.locator("details.ended")
    ended.get_by_text("Ended: 1 done or cancelled").click()
    card = ended.get_by_role("article", name=f"Nudge {task.pk}")
    expect(card.locator("header .badge")).to_have_text("Cancelled")
    expect(card.get_by_role("button")).to_have_count(0)

    task.refresh_from_db()
    assert task.status == ScheduledTask.Status.CANCELLED


def _assignment_approved_and_sent_once(page: Page, student: Student, platform) -> None:
    section = _create(page, kind="Assignment", cron="0 8 * * 1", time_zone=LONDON, intent=ASSIGNMENT)
    task = ScheduledTask.objects.get(student=student, kind=ScheduledTask.Kind.ASSIGNMENT)
    expect(
        section.get_by_role("article", name=f"Assignment {task.pk}").get_by_role("status")
    ).to_contain_text("Assignment scheduled; first run")

    # It falls due, and the dispatcher's pass holds it for the teacher: nothing reaches the platform.
    ScheduledTask.objects.filter(pk=task.pk).update(next_run_at=timezone.now() - timedelta(seconds=5))
    assert run_due_tasks().by_status == {TaskRun.Status.PENDING_APPROVAL: 1}
    assert report(platform)["dispatches"] == []

    section = _schedules_page(page, student)
    card = section.get_by_role("article", name=f"Assignment {task.pk}")
    row = card.locator("table.runs tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator(".badge")).to_have_text("Waiting for approval")
    expect(row).to_contain_text("Assignment is high impact: the teacher approves it")

    card = _press(page, row.get_by_role("button", name="Approve and send"), f"Assignment {task.pk}")
    expect(card.get_by_role("status")).to_have_text(f"Approved and sent to {student.first_name}.")
    row = card.locator("table.runs tbody tr")
    expect(row.locator(".badge")).to_have_text("Sent")
    expect(row).to_contain_text(ASSIGNMENT)
    expect(card.get_by_role("button", name="Approve and send")).to_have_count(0)

    [sent] = report(platform)["dispatches"]
    assert (sent["student"], sent["kind"]) == (student.platform_id, "assignment")
    assert sent["payload"]["message"].endswith(ASSIGNMENT)
    assert TaskRun.objects.get(task=task).status == TaskRun.Status.SENT


def _admin_turns_the_kill_switch_on(page: Page, admin: User, student: Student) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    log_in(page, admin.username)
    page.get_by_role("navigation").get_by_role("link", name="Automation").click()
    expect(page.locator("h1")).to_have_text("Automation")
    expect(page.get_by_label("Waiting for approval")).to_contain_text(
        "No run is waiting for approval in your classes."
    )
    kill = page.get_by_role("article", name="Kill switch")
    expect(kill.locator("h2 .badge")).to_have_text("Off")
    expect(kill).to_contain_text("Never flipped.")

    page.evaluate("window.__marker = 1")
    kill.get_by_label("Why").fill(KILL_REASON)
    asked = _answer_confirm(page, accept=True)
    kill.get_by_role("button", name="Turn on").click()
    switches = page.locator("#automation-switches")
    expect(switches.get_by_role("status")).to_have_text("Kill switch turned on.")
    assert asked == ["Turn the kill switch on for every learner?"]
    assert page.evaluate("window.__marker") == 1, "the page reloaded instead of swapping the switches"

    switch = AutomationSwitch.objects.get(organisation=admin.organisation, name="kill_switch")
    assert (switch.on, switch.changed_by, switch.reason) == (True, admin, KILL_REASON)
    when = timezone.localtime(switch.changed_at)
    kill = switches.get_by_role("article", name="Kill switch")
    expect(kill.locator("h2 .badge")).to_have_text("On")
    expect(kill).to_contain_text(
        f"Turned on {when.day} {when:%b %Y %H:%M} by {admin.display_name}: “{KILL_REASON}”"
    )
    expect(kill.get_by_role("button", name="Turn off")).to_be_visible()
    expect(switches.get_by_role("article", name="Shadow mode")).to_contain_text("Never flipped.")

    # The student's page says so at once, before any due run.
    _schedules_page(page, student)
    expect(page.locator(".switch-kill")).to_contain_text("The kill switch is on:")


def test_a_teacher_schedules_and_approves_then_an_admin_stops_everything(
    transactional_db, school, platform, page: Page
) -> None:
    student = demo_class(school, size=1).students[0]
    admin = factories.UserFactory(organisation=school.organisation, role=User.Role.ORG_ADMIN)

    # 1. The teacher opens the student's schedules page.
    log_in(page, school.teacher.username)
    section = _schedules_page(page, student)
    expect(section).to_contain_text(f"No active or paused schedules for {student.first_name}.")
    expect(section).to_contain_text("Assignments are high impact: each run waits for a teacher")

    # 2. A cron expression with a minute of 61 is refused, naming the field and why.
    _refuse_a_bad_cron(page)

    # 3. A recurring nudge: listed with its next run, then paused, resumed and cancelled in place.
    _nudge_paused_resumed_and_cancelled(page, student)

    # 4. An assignment falls due, waits for approval, and is sent once when approved.
    _assignment_approved_and_sent_once(page, student, platform)

    # 5. An org admin turns the kill switch on with a reason, and sees who did it and when.
    _admin_turns_the_kill_switch_on(page, admin, student)
