"""The demo school: idempotent, and holding every case a demo and the tests rely on."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from audit.models import ActivityEvent
from classroom.demo import demo_school_seed
from classroom.models import (
    Alert,
    Assignment,
    DailyPerformance,
    Enrollment,
    SchoolClass,
    Student,
    StudentSyncState,
    StudyPlanProgress,
    User,
)

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
