"""The "Learner's day" panel of the teacher's student page: the learner's intent, today's plan,
their latest sessions and streak, as the learner app made them; 404 outside the teacher's classes."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from django.utils.html import escape

from classroom.models import User
from plans.models import DailySession, LearnerIntent
from tests import factories
from tests.conftest import login
from tests.tutor.orchestrator_fixtures import history, post
from tutor.orchestrator.services import programme_day, programme_start

pytest_plugins = ["tests.tutor.orchestrator_fixtures"]

HTMX = {"HTTP_HX_REQUEST": "true"}


def _panel(client, student, **headers) -> str:
    response = client.get(f"/students/{student.pk}/learners-day/", **headers)
    assert response.status_code == 200
    return response.content.decode()


def _plan_today(client, learner) -> DailySession:
    """Today's plan, through day.run as the learner app asks for it."""
    intent = learner.student.intents.get(active=True)
    today = timezone.localtime(timezone.now(), intent.tz).date()
    week, day = programme_day(programme_start(learner.student, intent.tz), today)
    response = post(client, "day.run", {"week": week, "day": day}, **learner.headers())
    assert response.status_code == 201, response.content
    return DailySession.objects.get(pk=response.json()["session_id"])


def test_the_teacher_sees_intent_todays_plan_sessions_and_streak(client, school, learner):
    history(learner, days=5, confidence=7)
    today = _plan_today(client, learner)
    login(client, school.teacher)
    html = _panel(client, learner.student, **HTMX)
    assert html.startswith('<section id="learners-day"')
    assert "Linear equations (informed)" in html
    assert "Solve two-step equations without help" in html
    assert "America/New_York" in html
    assert "<dt>Minutes a day</dt><dd>30</dd>" in html
    assert "<dt>Current streak</dt><dd>5 days</dd>" in html
    summary = today.plan_json_summary
    assert (
        f"<strong>{escape(summary['title'])}</strong> · {summary['total_minutes']} min · not done yet" in html
    )
    for block in summary["blocks"]:
        assert f"({block['minutes']} min): {escape(block['reason'])}" in html
    assert "Composed by the rule-based planner" in html
    assert "Not degraded" in html
    assert html.count("<td>done</td>") == 5
    assert "<td>1 / 5</td>" in html and "7/10" in html and "<td>today</td>" in html


def test_a_degraded_or_replanned_plan_says_so(client, school, learner):
    history(learner, days=3)
    today = _plan_today(client, learner)
    DailySession.objects.filter(pk=today.pk).update(
        degraded_mode=True,
        degraded_reasons=["ta: 503 three times, gave up after 7.0 s; the plan was made without it"],
        plan_source="model",
        plan_json_summary={**today.plan_json_summary, "replanned_from": "2026-03-02"},
    )
    login(client, school.teacher)
    html = _panel(client, learner.student, **HTMX)
    assert "Degraded: ta: 503 three times, gave up after 7.0 s; the plan was made without it." in html
    assert "Composed by the model." in html
    assert "Re-planned: the plan of Mon 2 Mar was not finished" in html


def test_missed_days_show_and_break_the_streak(client, school, learner):
    history(learner, days=4)
    missed = DailySession.objects.filter(student=learner.student).order_by("date")[2]
    DailySession.objects.filter(pk=missed.pk).update(
        completed_at=None, completion_time_min=None, confidence=None
    )
    login(client, school.teacher)
    html = _panel(client, learner.student, **HTMX)
    assert html.count('<span class="missing">missed</span>') == 1
    assert "<dt>Current streak</dt><dd>1 day</dd>" in html
    assert "No plan for today yet" in html


def test_a_student_without_an_intent_gets_the_empty_state(client, school):
    login(client, school.teacher)
    html = _panel(client, school.student, **HTMX)
    assert "has no learning intent in the learner app yet" in html
    assert "<table>" not in html


def test_without_htmx_the_panel_is_a_page_of_its_own(client, school, learner):
    history(learner, days=2)
    login(client, school.teacher)
    html = _panel(client, learner.student)
    assert "<html" in html and f"{learner.student.full_name}</a> › Learner's day" in html


def test_the_student_page_loads_the_panel_in_place(client, school, learner):
    login(client, school.teacher)
    response = client.get(f"/students/{learner.student.pk}/")
    assert (
        f'hx-get="/students/{learner.student.pk}/learners-day/" hx-trigger="load"'
        in response.content.decode()
    )


def test_the_panel_is_404_outside_the_teachers_classes(client, school, learner):
    history(learner, days=2)
    login(client, school.outsider)
    assert client.get(f"/students/{learner.student.pk}/learners-day/", **HTMX).status_code == 404
    login(client, school.colleague)
    assert client.get(f"/students/{learner.student.pk}/learners-day/", **HTMX).status_code == 404


def test_compliance_staff_of_the_organisation_read_it(client, school, learner):
    history(learner, days=2)
    login(client, factories.UserFactory(organisation=school.organisation, role=User.Role.COMPLIANCE))
    assert "Current streak" in _panel(client, learner.student, **HTMX)


def test_learners_and_anonymous_users_do_not_reach_the_console(client, learner):
    url = f"/students/{learner.student.pk}/learners-day/"
    assert client.get(url).status_code == 302
    login(client, learner.user)
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_the_panel_only_reads(client, school, learner, method):
    login(client, school.teacher)
    assert getattr(client, method)(f"/students/{learner.student.pk}/learners-day/").status_code == 405


def test_the_panel_takes_a_fixed_number_of_queries(
    client, school, learner, other_learner, django_assert_max_num_queries
):
    history(learner, days=3)
    history(other_learner, days=14)
    login(client, school.teacher)
    with django_assert_max_num_queries(6) as few:
        _panel(client, learner.student, **HTMX)
    with django_assert_max_num_queries(len(few.captured_queries)):
        html = _panel(client, other_learner.student, **HTMX)
    assert html.count("<td>done</td>") == 14


def test_today_is_the_learners_today(client, school, learner):
    intent = history(learner, days=2)
    LearnerIntent.objects.filter(pk=intent.pk).update(user_tz="Pacific/Kiritimati")
    login(client, school.teacher)
    html = _panel(client, learner.student, **HTMX)
    there = timezone.localtime(timezone.now(), ZoneInfo("Pacific/Kiritimati")).date()
    assert f"Today, {there:%a} {there.day} {there:%b}" in html
