"""The learner orchestrator's four endpoints, as a learner app uses them (seeds/003_*): every
field of every answer, every refusal, who may call, and the built-in agents behind day.run."""

from __future__ import annotations

import threading
from datetime import datetime, time, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from audit.models import ActivityEvent
from classroom.api_auth import api_token_create
from classroom.models import Alert, LearnerCheckIn, User
from classroom.services import alerts_recompute
from plans.models import DailySession, LearnerIntent
from tests import factories
from tests.conftest import login
from tests.tutor.orchestrator_fixtures import INTENT, Learner, history, make_learner, post
from tutor.models import AgentSignal
from tutor.orchestrator.services import due_preparations
from tutor.tasks import prepare_daily_plan


@pytest.fixture(autouse=True)
def _roomy_buckets(settings) -> None:
    """The token buckets have a test of their own; here they stay out of the way."""
    settings.ORCHESTRATOR_RATE_LIMITS = {"day.run": (1000, 1000), "default": (1000, 1000)}


def _intent(client: Client, learner, **changes) -> dict:
    response = post(client, "intent.sync", {**INTENT, **changes}, **learner.headers())
    assert response.status_code == 200, response.content
    return response.json()


def _run(client: Client, learner, week: int = 1, day: int = 1, **extra):
    return post(client, "day.run", {"week": week, "day": day, **extra}, **learner.headers())


# intent.sync


def test_intent_sync_answers_the_seeds_fields(client, learner):
    body = _intent(client, learner)
    assert set(body) == {
        "intent_id", "active", "topic", "depth", "end_goal", "time_per_day_min", "user_tz", "created_at"
    }  # fmt: skip
    assert body["active"] is True
    assert (body["topic"], body["depth"], body["time_per_day_min"]) == ("Linear equations", "informed", 30)
    assert body["user_tz"] == "America/New_York"
    assert body["created_at"].endswith("Z")
    intent = LearnerIntent.objects.get(pk=body["intent_id"])
    assert intent.meta == {"learning_style": "project-first"}
    assert ActivityEvent.objects.filter(
        verb="orchestrator.intent_created", target_id=body["intent_id"]
    ).exists()


def test_the_same_intent_again_changes_nothing(client, learner):
    first = _intent(client, learner)
    again = _intent(client, learner)
    assert again["intent_id"] == first["intent_id"]
    assert LearnerIntent.objects.filter(student=learner.student).count() == 1
    assert ActivityEvent.objects.filter(verb__startswith="orchestrator.intent").count() == 1


def test_a_new_intent_keeps_the_old_one_inactive(client, learner):
    first = _intent(client, learner)
    second = _intent(client, learner, topic="Quadratics", time_per_day_min=45)
    assert second["intent_id"] != first["intent_id"]
    old = LearnerIntent.objects.get(pk=first["intent_id"])
    assert old.active is False and old.deactivated_at is not None
    assert LearnerIntent.objects.filter(student=learner.student, active=True).get().topic == "Quadratics"
    event = ActivityEvent.objects.get(verb="orchestrator.intent_changed")
    assert event.details["changes"]["topic"] == ["Linear equations", "Quadratics"]
    assert event.details["previous_intent_id"] == first["intent_id"]


def test_the_seeds_integration_body_without_zone_or_meta_is_accepted(client, learner):
    body = {"topic": "Test Topic", "depth": "surface", "end_goal": "Test Goal", "time_per_day_min": 30}
    response = post(client, "intent.sync", body, **learner.headers())
    assert response.status_code == 200
    assert response.json()["user_tz"] == "UTC"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"depth": "deep"}, "depth"),
        ({"user_tz": "Mars/Olympus"}, "user_tz"),
        ({"user_tz": "../../etc/passwd"}, "user_tz"),
        ({"time_per_day_min": 0}, "time_per_day_min"),
        ({"time_per_day_min": 100000}, "time_per_day_min"),
        ({"topic": "   "}, "topic"),
        ({"topic": "x" * 201}, "topic"),
        ({"meta": {"notes": "x" * 9000}}, "meta"),
        ({"meta": []}, "meta"),
    ],
)
def test_a_bad_intent_is_a_400_naming_the_field(client, learner, change, field):
    response = post(client, "intent.sync", {**INTENT, **change}, **learner.headers())
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not LearnerIntent.objects.exists()


def test_a_missing_field_is_named(client, learner):
    body = {key: value for key, value in INTENT.items() if key != "end_goal"}
    response = post(client, "intent.sync", body, **learner.headers())
    assert response.status_code == 400
    assert "end_goal" in response.json()["fields"]


def test_no_token_is_a_401_everywhere(client):
    for path in ("intent.sync", "day.run", "day.done"):
        assert post(client, path, {}).status_code == 401
    assert client.get("/api/orchestrator/status").status_code == 401


# day.run


def test_day_run_without_an_intent_is_409_no_active_intent(client, learner):
    response = _run(client, learner)
    assert response.status_code == 409
    assert response.json()["error"] == "NO_ACTIVE_INTENT"
    assert not DailySession.objects.exists()


def test_day_run_makes_the_days_plan_from_the_four_agents(client, learner):
    _intent(client, learner)
    response = _run(client, learner)
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {
        "session_id", "plan_md", "plan_json_summary", "degraded_mode", "cache_hits", "cache_misses",
        "signal_quality",
    }  # fmt: skip
    summary = body["plan_json_summary"]
    assert {"title", "description", "steps"} <= set(summary)
    assert summary["steps"] and all(isinstance(step, str) for step in summary["steps"])
    assert summary["total_minutes"] <= INTENT["time_per_day_min"]
    assert all(block["reason"] for block in summary["blocks"])
    assert body["plan_md"].startswith("# Daily Learning Plan")
    assert "rule-based planner" in body["plan_md"]  # no model configured: labelled as such
    assert body["signal_quality"] == {
        name: {"available": True, "fresh": True} for name in ("clo", "alex", "ta", "socratic")
    }
    assert (body["cache_hits"], body["cache_misses"], body["degraded_mode"]) == (0, 4, False)
    session = DailySession.objects.get(pk=body["session_id"])
    assert (session.week, session.day, session.cache_misses) == (1, 1, 4)
    assert AgentSignal.objects.filter(student=learner.student).count() == 4
    assert ActivityEvent.objects.filter(
        verb="orchestrator.day_planned", target_id=body["session_id"]
    ).exists()


def test_a_day_that_has_its_plan_answers_it_again(client, learner):
    _intent(client, learner)
    first = _run(client, learner).json()
    again = _run(client, learner)
    assert again.status_code == 200
    assert again.json() == first
    assert DailySession.objects.count() == 1


def test_force_refresh_rebuilds_the_same_session(client, learner):
    _intent(client, learner)
    first = _run(client, learner).json()
    refreshed = _run(client, learner, force_refresh=True)
    assert refreshed.status_code == 200
    assert refreshed.json()["session_id"] == first["session_id"]
    session = DailySession.objects.get()
    assert session.refreshed_at is not None
    # Refreshing asks every agent again; the built-in ones answer the same data: confirmed hits.
    assert refreshed.json()["cache_hits"] == 4
    assert ActivityEvent.objects.filter(verb="orchestrator.day_replanned").count() == 1


def test_the_next_day_is_served_from_the_fresh_cache(client, learner):
    _intent(client, learner)
    _run(client, learner, day=1)
    body = _run(client, learner, day=2).json()
    assert (body["cache_hits"], body["cache_misses"]) == (4, 0)


def test_a_stale_signal_is_asked_again(client, learner, settings):
    _intent(client, learner)
    _run(client, learner, day=1)
    AgentSignal.objects.filter(agent="ta").update(checked_at=timezone.now() - timedelta(hours=2))
    learner.student.assignments.create(
        title="Worksheet 4",
        platform_id="w4",
        due_at=timezone.now() + timedelta(days=1),
        synced_at=timezone.now(),
    )
    body = _run(client, learner, day=2).json()
    assert (body["cache_hits"], body["cache_misses"]) == (3, 1)
    assert "Worksheet 4" in body["plan_md"]  # a deadline tomorrow comes before new work


@pytest.mark.parametrize(
    ("body", "field"),
    [({"week": 1, "day": 8}, "day"), ({"week": 0, "day": 1}, "week"), ({"week": "one", "day": 1}, "week")],
)
def test_a_bad_day_is_a_400_naming_the_field(client, learner, body, field):
    _intent(client, learner)
    response = post(client, "day.run", body, **learner.headers())
    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_a_day_more_than_a_week_ahead_is_refused(client, learner):
    _intent(client, learner)
    response = _run(client, learner, week=3, day=1)
    assert response.status_code == 400
    assert "week" in response.json()["fields"]


def test_the_plan_fits_the_learners_minutes_whatever_they_are(client, learner):
    for minutes in (5, 12, 45, 240):
        _intent(client, learner, time_per_day_min=minutes)
        body = _run(client, learner, force_refresh=True).json()
        assert 0 < body["plan_json_summary"]["total_minutes"] <= minutes, minutes


def test_after_a_missed_day_the_plan_replans_instead_of_piling_up(client, learner):
    history(learner, days=3, completed=False)
    DailySession.objects.filter(day__lt=2).update(
        completion_time_min=30, confidence=7, completed_at=timezone.now()
    )
    body = _run(client, learner, day=4).json()
    summary = body["plan_json_summary"]
    # Days 2 and 3 were not finished: the latest of them is re-planned, once.
    day_3 = DailySession.objects.get(day=3)
    assert summary["replanned_from"] == day_3.date.isoformat()
    assert summary["title"] == "Day 3"
    assert "missed 2 days" in body["plan_md"]
    assert summary["total_minutes"] <= INTENT["time_per_day_min"]
    assert "Re-planned" in body["plan_md"]


def test_two_day_runs_at_once_make_one_session(learner, transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises them)")
    Client().post(
        "/api/orchestrator/intent.sync", INTENT, content_type="application/json", **learner.headers()
    )
    answers: list = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        answers.append(_run(Client(), learner))
        connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) in ([200, 201], [201, 201])
    assert len({a.json()["session_id"] for a in answers}) == 1
    assert DailySession.objects.count() == 1


# day.done


def _done(client: Client, learner, sid: str, **changes):
    body = {"session_id": sid, "completion_time_min": 25, "confidence": 8, "notes": "", **changes}
    return post(client, "day.done", body, **learner.headers())


def test_day_done_answers_the_seeds_fields(client, learner):
    _intent(client, learner)
    session_id = _run(client, learner).json()["session_id"]
    response = _done(client, learner, session_id, notes="Struggled with negatives but got it")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert "day 2" in body["next_day_hint"]
    assert "worked example" in body["next_day_hint"]  # the notes say it was a struggle
    summary = body["completion_summary"]
    assert set(summary) == {"session_id", "completion_time_min", "confidence", "notes", "completed_at"}
    assert (summary["session_id"], summary["completion_time_min"], summary["confidence"]) == (
        session_id,
        25,
        8,
    )
    event = ActivityEvent.objects.get(verb="orchestrator.day_completed")
    assert "Struggled" not in str(event.details)  # the learner's words stay out of the log


def test_day_done_again_with_the_same_body_answers_the_same(client, learner):
    _intent(client, learner)
    session_id = _run(client, learner).json()["session_id"]
    first = _done(client, learner, session_id).json()
    again = _done(client, learner, session_id)
    assert again.status_code == 200
    assert again.json() == first
    assert ActivityEvent.objects.filter(verb="orchestrator.day_completed").count() == 1


def test_day_done_with_another_body_for_a_completed_day_is_409(client, learner):
    _intent(client, learner)
    session_id = _run(client, learner).json()["session_id"]
    _done(client, learner, session_id)
    response = _done(client, learner, session_id, confidence=3)
    assert response.status_code == 409
    assert response.json()["error"] == "ALREADY_COMPLETED"
    assert DailySession.objects.get().confidence == 8


def test_another_learners_session_is_404(client, learner, other_learner):
    _intent(client, learner)
    session_id = _run(client, learner).json()["session_id"]
    assert _done(client, other_learner, session_id).status_code == 404
    assert _done(client, learner, str(uuid4())).status_code == 404
    assert DailySession.objects.get().completed_at is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"session_id": "not-a-uuid"}, "session_id"),
        ({"confidence": 11}, "confidence"),
        ({"confidence": 0}, "confidence"),
        ({"completion_time_min": -1}, "completion_time_min"),
        ({"notes": "x" * 2001}, "notes"),
    ],
)
def test_a_bad_completion_is_a_400_naming_the_field(client, learner, change, field):
    _intent(client, learner)
    session_id = _run(client, learner).json()["session_id"]
    response = _done(client, learner, session_id, **change)
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert DailySession.objects.get().completed_at is None


def test_low_confidence_in_day_done_counts_toward_the_teachers_alert(client, learner, settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    history(learner, days=2, completed=False)
    # Two earlier low days from the learner app, then today's: three in a row, on the learner's
    # calendar (New York's, a day behind UTC's for five hours a night).
    today = timezone.localtime(timezone.now(), LearnerIntent.objects.get(student=learner.student).tz).date()
    for back in (2, 1):
        LearnerCheckIn.objects.create(
            student=learner.student,
            date=today - timedelta(days=back),
            confidence=2,
            reported_at=timezone.now(),
        )
    session_id = _run(client, learner, day=3).json()["session_id"]
    assert _done(client, learner, session_id, confidence=3).status_code == 200
    assert LearnerCheckIn.objects.get(student=learner.student, date=today).confidence == 2
    alerts_recompute(organisation=learner.student.organisation, student_ids=[learner.student.pk])
    alert = Alert.objects.get(student=learner.student, kind=Alert.Kind.LOW_CONFIDENCE_STREAK)
    assert alert.metrics["streak_days"] == 3


# status


def test_status_answers_the_seeds_fields(client, learner):
    history(learner, days=3, confidence=7)
    response = client.get("/api/orchestrator/status", **learner.headers())
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == learner.student.platform_id
    assert set(body["active_intent"]) == {
        "id", "topic", "depth", "end_goal", "time_per_day_min", "user_tz", "created_at"
    }  # fmt: skip
    latest = body["latest_session"]
    assert (latest["week"], latest["day"], latest["plan_title"]) == (1, 3, "Day 3")
    assert set(latest["completion"]) == {"completion_time_min", "confidence", "notes", "completed_at"}
    assert set(body["signal_freshness"]) == {"clo", "alex", "ta", "socratic"}
    assert set(body["signal_freshness"]["ta"]) == {"available", "fresh", "last_updated"}
    run = body["next_scheduled_run"]
    assert (run["week"], run["day"], run["timezone"]) == (1, 4, "America/New_York")
    assert run["estimated_time"].endswith("Z")
    assert body["learning_stats"] == {
        "total_sessions": 3,
        "completed_sessions": 3,
        "total_time_min": 90,
        "average_confidence": 7.0,
        "current_streak_days": 3,
    }


def test_the_streak_is_counted_in_the_learners_time_zone(client, learner):
    intent = history(learner, days=2)
    # Two completions two hours apart around midnight in New York: one local day in Tokyo.
    now = timezone.now()
    local_midnight = timezone.localtime(now, intent.tz).replace(hour=0, minute=0, second=0, microsecond=0)
    first, second = DailySession.objects.order_by("date")
    DailySession.objects.filter(pk=first.pk).update(completed_at=local_midnight - timedelta(hours=1))
    DailySession.objects.filter(pk=second.pk).update(completed_at=local_midnight + timedelta(hours=1))
    assert client.get("/api/orchestrator/status", **learner.headers()).json()["learning_stats"][
        "current_streak_days"
    ] == (2 if now - local_midnight > timedelta(hours=1) else 1)
    LearnerIntent.objects.filter(pk=intent.pk).update(user_tz="Pacific/Kiritimati")
    tz_streak = client.get("/api/orchestrator/status", **learner.headers()).json()["learning_stats"]
    # In UTC+14 both completions fall on one local day, so the streak is at most one day.
    assert tz_streak["current_streak_days"] <= 1


def test_status_without_an_intent_says_so(client, learner):
    body = client.get("/api/orchestrator/status", **learner.headers()).json()
    assert body["active_intent"] is None and body["latest_session"] is None
    assert body["next_scheduled_run"] is None
    assert body["learning_stats"]["total_sessions"] == 0


@pytest.mark.parametrize("days", [3, 30])
def test_status_and_day_done_take_a_fixed_number_of_queries(
    client, learner, days, django_assert_max_num_queries
):
    history(learner, days=days)
    session = DailySession.objects.order_by("-date").first()
    DailySession.objects.filter(pk=session.pk).update(
        completed_at=None, completion_time_min=None, confidence=None
    )
    # The token (and its last use), the learner, their bucket, and the status's six reads.
    with django_assert_max_num_queries(10):
        assert client.get("/api/orchestrator/status", **learner.headers()).status_code == 200
    with django_assert_max_num_queries(22):
        assert _done(client, learner, str(session.pk)).status_code == 200


# Who may call


def test_a_service_token_acts_for_a_learner_of_its_organisation(client, learner, service_token):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {service_token}", "HTTP_X_USER_ID": learner.student.platform_id}
    assert post(client, "intent.sync", INTENT, **headers).status_code == 200
    assert post(client, "day.run", {"week": 1, "day": 1}, **headers).status_code == 201
    assert client.get("/api/orchestrator/status", **headers).json()["user_id"] == learner.student.platform_id
    assert ActivityEvent.objects.get(verb="orchestrator.intent_created").actor_name == "service:learner-app"


def test_a_service_token_reaches_no_learner_of_another_organisation(client, school, service_token):
    stranger = make_learner(school.outsider_class, "stranger")
    headers = {
        "HTTP_AUTHORIZATION": f"Bearer {service_token}",
        "HTTP_X_USER_ID": stranger.student.platform_id,
    }
    assert post(client, "intent.sync", INTENT, **headers).status_code == 404
    assert client.get("/api/orchestrator/status", **headers).status_code == 404
    assert not LearnerIntent.objects.exists()


def test_a_service_token_must_name_the_learner(client, service_token):
    response = post(client, "intent.sync", INTENT, HTTP_AUTHORIZATION=f"Bearer {service_token}")
    assert response.status_code == 400
    assert "X-User-ID" in response.json()["fields"]


def test_x_user_id_from_anyone_else_is_refused(client, school, learner, other_learner):
    response = post(
        client, "intent.sync", INTENT, HTTP_X_USER_ID=other_learner.student.platform_id, **learner.headers()
    )
    assert response.status_code == 403
    teacher = {"HTTP_AUTHORIZATION": f"Bearer {api_token_create(user=school.teacher)}"}
    response = post(client, "intent.sync", INTENT, HTTP_X_USER_ID=learner.student.platform_id, **teacher)
    assert response.status_code == 403
    assert not LearnerIntent.objects.exists()


def test_teachers_read_their_own_students_status_only(client, school, learner):
    history(learner, days=2)
    login(client, school.teacher)
    response = client.get(f"/api/orchestrator/status?student_id={learner.student.pk}")
    assert response.status_code == 200
    assert response.json()["learning_stats"]["total_sessions"] == 2
    login(client, school.outsider)
    assert client.get(f"/api/orchestrator/status?student_id={learner.student.pk}").status_code == 404
    login(client, school.colleague)
    assert client.get(f"/api/orchestrator/status?student_id={learner.student.pk}").status_code == 404


def test_a_teacher_does_not_run_a_learners_day(client, school, learner):
    login(client, school.teacher)
    assert post(client, "intent.sync", INTENT).status_code == 403


def test_the_token_bucket_answers_429_with_retry_after(client, learner, settings):
    settings.ORCHESTRATOR_RATE_LIMITS = {**settings.ORCHESTRATOR_RATE_LIMITS, "day.run": (2, 2)}
    _intent(client, learner)
    assert _run(client, learner).status_code == 201
    assert _run(client, learner).status_code == 200
    refused = _run(client, learner)
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 30
    # Another learner has a bucket of their own.
    other = make_learner(learner.student.classes.first(), "learner-c")
    assert post(client, "intent.sync", INTENT, **other.headers()).status_code == 200


def test_the_endpoints_are_in_the_openapi_document(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    for path in ("intent.sync", "day.run", "day.done", "status"):
        assert f"/api/orchestrator/{path}" in paths


# The built-in agents over the learner's own data


@pytest.fixture
def planned_learner(school, planned):
    """The teacher's student, with a published study plan, as a learner with their own token."""
    user = factories.UserFactory(username="planned", role=User.Role.LEARNER, organisation=school.organisation)
    school.student.user = user
    school.student.save(update_fields=["user"])
    return Learner(student=school.student, user=user, token=api_token_create(user=user))


def test_the_first_day_works_on_the_first_objective_of_the_study_plan(client, planned_learner):
    _intent(client, planned_learner)
    summary = _run(client, planned_learner).json()["plan_json_summary"]
    assert summary["title"] == "Solve two-step linear equations"
    assert summary["objectives"] == ["o1"]


@pytest.mark.parametrize(("confidence", "next_focus"), [(2, "o1"), (10, "o2")])
def test_spaced_review_brings_back_what_went_badly(client, planned_learner, confidence, next_focus):
    """FSRS over the learner's completed days: an objective done with low confidence is due again
    the next day; one done easily is not, and the next objective comes instead."""
    _intent(client, planned_learner)
    session_id = _run(client, planned_learner, day=1).json()["session_id"]
    assert _done(client, planned_learner, session_id, confidence=confidence).status_code == 200
    summary = _run(client, planned_learner, day=2).json()["plan_json_summary"]
    assert summary["objectives"][0] == next_focus


def test_when_every_objective_is_practised_and_none_due_the_soonest_review_comes_first(
    client, planned_learner
):
    """The plan has two objectives; both done easily, neither is due on day 3: the one FSRS asks
    for first comes back, not a plan without an objective."""
    _intent(client, planned_learner)
    focus = []
    for day in (1, 2):
        plan = _run(client, planned_learner, day=day).json()
        focus.append(plan["plan_json_summary"]["objectives"][0])
        assert _done(client, planned_learner, plan["session_id"], confidence=10).status_code == 200

    summary = _run(client, planned_learner, day=3).json()["plan_json_summary"]

    assert focus == ["o1", "o2"]
    assert summary["objectives"] == ["o1"]
    assert summary["title"] == "Solve two-step linear equations"
    focus_block = next(b for b in summary["blocks"] if b["title"] == summary["title"])
    assert "comes up for review first" in focus_block["reason"]


# The daily job


def test_the_daily_job_finds_whose_morning_it_is_in_three_queries_whatever_the_learners(
    school, settings, django_assert_num_queries
):
    """At 12:00 UTC it is 07:00 in New York, 21:00 in Tokyo and 04:00 in Los Angeles. The week
    and day count from each learner's first intent, even when a later one is active."""
    settings.ORCHESTRATOR_PREPARE_AT = "06:00"
    now = datetime(2026, 12, 4, 12, 0, tzinfo=ZoneInfo("UTC"))

    def learner_with(name: str, zone: str, *, begun_days_ago: int, planned_today: bool = False):
        learner = make_learner(school.school_class, name)
        intent = LearnerIntent.objects.create(
            student=learner.student,
            created_at=now - timedelta(days=begun_days_ago),
            **{**INTENT, "user_tz": zone},
        )
        if planned_today:
            offset = begun_days_ago
            DailySession.objects.create(
                student=learner.student,
                intent=intent,
                week=offset // 7 + 1,
                day=offset % 7 + 1,
                date=timezone.localtime(now, ZoneInfo(zone)).date(),
                plan_md="# Daily Learning Plan",
                plan_json_summary={},
            )
        return learner, intent

    new_york, _ = learner_with("ny", "America/New_York", begun_days_ago=10)
    learner_with("tokyo", "Asia/Tokyo", begun_days_ago=3, planned_today=True)
    learner_with("la", "America/Los_Angeles", begun_days_ago=5)
    switched, first = learner_with("switched", "America/New_York", begun_days_ago=20)
    first.active = False
    first.save(update_fields=["active"])
    LearnerIntent.objects.create(
        student=switched.student, created_at=now - timedelta(days=2), **{**INTENT, "topic": "Graphs"}
    )
    for n in range(5):
        learner_with(f"more-{n}", "Asia/Tokyo", begun_days_ago=n)

    with django_assert_num_queries(3):
        due = due_preparations(now=now)

    assert (new_york.student.pk, 2, 4) in due
    assert (switched.student.pk, 3, 7) in due
    assert len(due) == 2 + 5


def test_the_daily_job_prepares_todays_plan_once_it_is_morning_where_the_learner_is(
    client, learner, settings
):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    settings.ORCHESTRATOR_PREPARE_AT = "06:00"
    _intent(client, learner)  # America/New_York
    intent = LearnerIntent.objects.get()
    local_today = timezone.localtime(timezone.now(), intent.tz).date()
    before = datetime.combine(local_today, time(5, 30), tzinfo=intent.tz)
    after = datetime.combine(local_today, time(6, 15), tzinfo=intent.tz)
    assert due_preparations(now=before) == []
    assert due_preparations(now=after) == [(learner.student.pk, 1, 1)]
    status = client.get("/api/orchestrator/status", **learner.headers()).json()["next_scheduled_run"]
    assert (status["week"], status["day"]) == (1, 1)
    assert prepare_daily_plan(learner.student.pk, 1, 1).startswith("made")
    assert prepare_daily_plan(learner.student.pk, 1, 1).startswith("already there")
    assert DailySession.objects.count() == 1
    assert due_preparations(now=after) == []
    assert ActivityEvent.objects.get(verb="orchestrator.day_planned").actor_name == "system:orchestrator"
