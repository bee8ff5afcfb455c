"""The demo school: idempotent, and holding every case a demo and the tests rely on."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import ActivityEvent
from classroom.api_auth import api_token_create, digest
from classroom.demo import demo_school_seed
from classroom.models import (
    Alert,
    ApiToken,
    Assignment,
    DailyPerformance,
    Enrollment,
    LearnerCheckIn,
    SchoolClass,
    Student,
    StudentSyncState,
    StudyPlanProgress,
    User,
)
from plans.models import DailySession, LearnerIntent

COUNTED = (
    User,
    SchoolClass,
    Student,
    Enrollment,
    DailyPerformance,
    Assignment,
    StudyPlanProgress,
    StudentSyncState,
    Alert,
)


def _counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in COUNTED}


def test_seed_twice_changes_nothing(db):
    demo_school_seed()
    before = _counts()
    alert_events = ActivityEvent.objects.filter(verb__startswith="alert.").count()
    demo_school_seed()
    assert _counts() == before
    assert ActivityEvent.objects.filter(verb__startswith="alert.").count() == alert_events
    assert ActivityEvent.objects.filter(verb="demo.seeded").count() == 2


def test_demo_logins_and_classes(db, client):
    demo_school_seed()
    for username, password in [
        ("ms.rivera", "demo-teacher"),
        ("mr.okafor", "demo-teacher"),
        ("compliance", "demo-compliance"),
        ("admin", "demo-admin"),
    ]:
        # Through the login form: the sign-in throttle needs the request that client.login() lacks.
        signed_in = client.post("/accounts/login/", {"username": username, "password": password})
        assert signed_in.status_code == 302, username
        assert client.session["_auth_user_id"] == str(User.objects.get(username=username).pk)
    assert SchoolClass.objects.count() == 3
    assert SchoolClass.objects.filter(teacher_assignments__teacher__username="ms.rivera").count() == 2
    for school_class in SchoolClass.objects.all():
        assert school_class.enrollments.count() == 25
    assert User.objects.get(username="admin").is_superuser


def test_demo_history_holds_every_risk_pattern_missing_data_and_fine_students(db):
    demo_school_seed()
    for kind in (
        Alert.Kind.OVERDUE_ASSIGNMENTS,
        Alert.Kind.STALLED_MASTERY,
        Alert.Kind.LOW_CONFIDENCE_STREAK,
    ):
        for school_class in SchoolClass.objects.all():
            assert Alert.objects.filter(
                kind=kind, student__enrollments__school_class=school_class
            ).exists(), (
                kind,
                school_class,
            )
    never_synced = Student.objects.filter(sync_state__last_synced_at__isnull=True)
    assert never_synced.exists()
    assert not DailyPerformance.objects.filter(student__in=never_synced).exists()
    assert Student.objects.filter(
        daily_performance__isnull=False, daily_performance__mastery__isnull=True
    ).exists()
    fine = Student.objects.exclude(alerts__isnull=False).filter(daily_performance__isnull=False).distinct()
    assert fine.count() >= 45
    assert DailyPerformance.objects.dates("date", "day").count() >= 50


def test_class_size_makes_rosters_of_that_size(db):
    demo_school_seed(class_size=40)
    assert Enrollment.objects.filter(school_class__platform_id="bio-p3").count() == 40
    assert Alert.objects.filter(kind=Alert.Kind.STALLED_MASTERY).count() >= 6


def test_seed_command_rejects_a_bad_class_size(db):
    with pytest.raises(CommandError, match="--class-size must be between 1 and 100000; got 0"):
        call_command("seed_demo", "--class-size", "0")
    assert not Student.objects.exists()


# Learner logins and learner1's two weeks in the learner app.


def _learner_counts() -> dict[str, int]:
    return {
        "learners": User.objects.filter(role=User.Role.LEARNER).count(),
        "linked": Student.objects.filter(user__isnull=False).count(),
        "intents": LearnerIntent.objects.count(),
        "sessions": DailySession.objects.count(),
        "check_ins": LearnerCheckIn.objects.count(),
        "events": ActivityEvent.objects.filter(verb="plans.demo_learner_seeded").count(),
    }


def test_algebra_period_2_has_learner_logins_in_class_order(db):
    demo_school_seed()
    students = Student.objects.filter(enrollments__school_class__platform_id="alg1-p2").order_by(
        "platform_id"
    )
    assert [s.user.username for s in students.select_related("user")] == [f"learner{n}" for n in range(1, 26)]
    learner1 = User.objects.get(username="learner1")
    assert learner1.role == User.Role.LEARNER and learner1.check_password("demo-learner")
    assert learner1.student_profile.platform_id == "alg1-p2-0001"
    assert not learner1.is_staff_member
    assert not Student.objects.exclude(enrollments__school_class__platform_id="alg1-p2").filter(
        user__isnull=False
    )


def test_learner1_has_an_intent_and_two_weeks_ending_yesterday(db):
    demo_school_seed()
    student = Student.objects.get(user__username="learner1")
    intent = LearnerIntent.objects.get(student=student, active=True)
    assert (intent.topic, intent.depth, intent.time_per_day_min, intent.user_tz) == (
        "Linear equations",
        "informed",
        30,
        "America/New_York",
    )
    today = timezone.localtime(timezone.now(), intent.tz).date()
    sessions = list(DailySession.objects.filter(student=student).order_by("date"))
    assert [s.date for s in sessions] == [today - timedelta(days=n) for n in range(14, 0, -1)]
    assert [(s.week, s.day) for s in sessions][:8] == [(1, d) for d in range(1, 8)] + [(2, 1)]
    missed = [s for s in sessions if s.completed_at is None]
    assert len(missed) == 2
    for s in missed:
        after = sessions[sessions.index(s) + 1]
        assert after.plan_json_summary["replanned_from"] == s.date.isoformat()
    done = [s for s in sessions if s.completed_at is not None]
    assert all(s.completion_time_min and 1 <= s.confidence <= 10 and s.notes for s in done)
    assert all(sum(b["minutes"] for b in s.plan_json_summary["blocks"]) == 30 for s in sessions)
    assert any(s.degraded_mode and s.degraded_reasons for s in sessions)
    assert LearnerCheckIn.objects.filter(student=student).count() == len(done)
    event = ActivityEvent.objects.get(verb="plans.demo_learner_seeded")
    assert event.student_id == student.pk and event.details["completed"] == 12
    assert not LearnerIntent.objects.filter(student__user__username="learner2").exists()


def test_the_learner_seed_twice_changes_nothing(db):
    demo_school_seed()
    before = _learner_counts()
    demo_school_seed()
    assert _learner_counts() == before
    assert before["learners"] == 25 and before["sessions"] == 14 and before["events"] == 1


def test_a_reseed_keeps_what_the_learner_did_and_resets_a_changed_password(db):
    demo_school_seed()
    learner2 = User.objects.get(username="learner2")
    token = api_token_create(user=learner2)
    learner2.set_password("something else")
    learner2.save(update_fields=["password"])
    student = Student.objects.get(user__username="learner1")
    DailySession.objects.filter(student=student).order_by("-date").first().delete()
    demo_school_seed()
    assert User.objects.get(username="learner2").check_password("demo-learner")
    assert DailySession.objects.filter(student=student).count() == 13
    assert ApiToken.objects.get(key_hash=digest(token)).revoked_at is not None


def test_learner1_signs_in_to_the_api_and_reads_its_status(db, client):
    demo_school_seed()
    token = api_token_create(user=User.objects.get(username="learner1"))
    response = client.get("/api/orchestrator/status", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == "alg1-p2-0001"
    assert body["active_intent"]["topic"] == "Linear equations"
    stats = body["learning_stats"]
    assert (stats["total_sessions"], stats["completed_sessions"], stats["current_streak_days"]) == (14, 12, 4)
    assert (body["next_scheduled_run"]["week"], body["next_scheduled_run"]["day"]) == (3, 1)


def test_the_readmes_walk_through_works_against_the_demo(db, client):
    """README, "The learner's day": the learner app's service token for learner1."""
    demo_school_seed()
    out = io.StringIO()
    call_command("create_api_token", "--service", "learner-app", stdout=out, stderr=io.StringIO())
    headers = {"HTTP_AUTHORIZATION": f"Bearer {out.getvalue().strip()}", "HTTP_X_USER_ID": "alg1-p2-0001"}
    status = client.get("/api/orchestrator/status", **headers).json()
    week, day = status["next_scheduled_run"]["week"], status["next_scheduled_run"]["day"]
    run = client.post(
        "/api/orchestrator/day.run", {"week": week, "day": day}, content_type="application/json", **headers
    )
    assert run.status_code == 201, run.content
    done = client.post(
        "/api/orchestrator/day.done",
        {"session_id": run.json()["session_id"], "completion_time_min": 25, "confidence": 8},
        content_type="application/json",
        **headers,
    )
    assert done.status_code == 200 and done.json()["ok"] is True
    stats = client.get("/api/orchestrator/status", **headers).json()["learning_stats"]
    assert (stats["total_sessions"], stats["completed_sessions"], stats["current_streak_days"]) == (15, 13, 5)


def test_the_demo_organisation_takes_live_signals_signed_with_the_readmes_secret(db):
    result = demo_school_seed()
    assert result.organisation.live_secret == "demo-live-secret"
