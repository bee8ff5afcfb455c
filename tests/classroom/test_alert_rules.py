"""Each risk rule fires at its threshold and not below it, on hand-built histories."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import ActivityEvent
from classroom.models import Alert
from classroom.services import alerts_recompute
from tests import factories


@pytest.fixture
def student(school):
    return school.student


def _recompute(student):
    return alerts_recompute(organisation=student.organisation, student_ids=[student.pk])


def _active(student, kind):
    return Alert.objects.filter(student=student, kind=kind).exclude(state=Alert.State.RESOLVED).first()


def _days(student, values, *, field):
    """One row per value, the last value today; None leaves that day without a row."""
    today = timezone.localdate()
    for offset, value in enumerate(reversed(values)):
        if value is not None:
            factories.DailyPerformanceFactory(
                student=student, date=today - timedelta(days=offset), **{field: value}
            )


# Overdue assignments: default 1 assignment more than 24 hours past due.


def test_overdue_fires_once_an_assignment_is_past_the_grace_period(student):
    factories.AssignmentFactory(student=student, title="Quiz 3", due_at=timezone.now() - timedelta(hours=25))
    _recompute(student)
    alert = _active(student, Alert.Kind.OVERDUE_ASSIGNMENTS)
    assert alert is not None
    assert alert.metrics["overdue_count"] == 1
    assert alert.metrics["titles"] == ["Quiz 3"]
    assert alert.summary == "1 overdue, oldest 1 days late"


def test_overdue_does_not_fire_inside_the_grace_period_or_when_submitted(student):
    factories.AssignmentFactory(student=student, due_at=timezone.now() - timedelta(hours=23))
    factories.AssignmentFactory(
        student=student,
        due_at=timezone.now() - timedelta(days=5),
        submitted_at=timezone.now() - timedelta(days=4),
    )
    _recompute(student)
    assert _active(student, Alert.Kind.OVERDUE_ASSIGNMENTS) is None


def test_overdue_threshold_is_overridable_per_organisation(student):
    org = student.organisation
    org.alert_thresholds = {"overdue_min_count": 2}
    org.save()
    factories.AssignmentFactory(student=student, due_at=timezone.now() - timedelta(days=3))
    _recompute(student)
    assert _active(student, Alert.Kind.OVERDUE_ASSIGNMENTS) is None
    factories.AssignmentFactory(student=student, due_at=timezone.now() - timedelta(days=2))
    _recompute(student)
    assert _active(student, Alert.Kind.OVERDUE_ASSIGNMENTS).metrics["overdue_count"] == 2


# Stalled mastery: gain below 0.02 over 14 days, with at least 5 measured days.


def test_stalled_fires_when_mastery_gains_less_than_the_minimum(student):
    _days(student, [0.50, 0.51, 0.50, 0.505, 0.51], field="mastery")
    _recompute(student)
    alert = _active(student, Alert.Kind.STALLED_MASTERY)
    assert alert is not None
    assert alert.metrics["mastery_from"] == 0.50
    assert alert.metrics["mastery_to"] == 0.51
    assert alert.metrics["gain"] == 0.01
    assert alert.metrics["measured_days"] == 5


def test_stalled_does_not_fire_at_exactly_the_minimum_gain(student):
    _days(student, [0.50, 0.505, 0.51, 0.515, 0.52], field="mastery")
    _recompute(student)
    assert _active(student, Alert.Kind.STALLED_MASTERY) is None


def test_stalled_needs_enough_measured_days_to_judge(student):
    _days(student, [0.50, 0.50, None, 0.50, 0.50], field="mastery")
    _recompute(student)
    assert _active(student, Alert.Kind.STALLED_MASTERY) is None


def test_stalled_only_looks_inside_its_window(student):
    # Flat for a month, but the last 14 days climb: not stalled.
    _days(student, [0.4] * 16 + [0.40, 0.42, 0.44, 0.46, 0.48, 0.50], field="mastery")
    _recompute(student)
    assert _active(student, Alert.Kind.STALLED_MASTERY) is None


# Low-confidence streak: the last 3 rated check-ins at 2/5 or lower.


def test_low_confidence_fires_on_three_low_check_ins_in_a_row(student):
    _days(student, [4, 5, 2, 1, 2], field="confidence")
    _recompute(student)
    alert = _active(student, Alert.Kind.LOW_CONFIDENCE_STREAK)
    assert alert is not None
    assert alert.metrics["streak_days"] == 3
    assert alert.metrics["ratings"] == [2, 1, 2]


def test_low_confidence_does_not_fire_on_two(student):
    _days(student, [2, 4, 1, 2], field="confidence")
    _recompute(student)
    assert _active(student, Alert.Kind.LOW_CONFIDENCE_STREAK) is None


def test_low_confidence_skips_days_without_a_rating(student):
    _days(student, [2, None, 2, None, 1], field="confidence")
    _recompute(student)
    assert _active(student, Alert.Kind.LOW_CONFIDENCE_STREAK).metrics["streak_days"] == 3


def test_student_with_no_data_raises_no_alerts(student):
    result = _recompute(student)
    assert result.opened == 0
    assert not Alert.objects.filter(student=student).exists()


# The recompute service's lifecycle.


def test_recompute_is_idempotent_and_records_each_opening_once(student):
    factories.AssignmentFactory(student=student, due_at=timezone.now() - timedelta(days=3))
    first = _recompute(student)
    events = ActivityEvent.objects.filter(verb="alert.opened", student_id=student.pk)
    assert first.opened == 1
    assert events.count() == 1
    assert events.get().actor_name == "system:alerts"
    second = _recompute(student)
    assert (second.opened, second.updated, second.resolved) == (0, 0, 0)
    assert ActivityEvent.objects.filter(student_id=student.pk, verb__startswith="alert.").count() == 1


def test_alert_resolves_itself_when_the_condition_clears(student):
    assignment = factories.AssignmentFactory(student=student, due_at=timezone.now() - timedelta(days=3))
    _recompute(student)
    assignment.submitted_at = timezone.now()
    assignment.save()
    result = _recompute(student)
    assert result.resolved == 1
    alert = Alert.objects.get(student=student)
    assert alert.state == Alert.State.RESOLVED
    assert alert.resolved_automatically
    assert ActivityEvent.objects.filter(verb="alert.resolved", target_id=str(alert.pk)).exists()


def test_acknowledged_alert_stays_acknowledged_and_gets_fresh_numbers(student):
    factories.AssignmentFactory(student=student, due_at=timezone.now() - timedelta(days=3))
    _recompute(student)
    alert = _active(student, Alert.Kind.OVERDUE_ASSIGNMENTS)
    Alert.objects.filter(pk=alert.pk).update(state=Alert.State.ACKNOWLEDGED)
    factories.AssignmentFactory(student=student, due_at=timezone.now() - timedelta(days=2))
    result = _recompute(student)
    alert.refresh_from_db()
    assert result.updated == 1
    assert alert.state == Alert.State.ACKNOWLEDGED
    assert alert.metrics["overdue_count"] == 2
    assert Alert.objects.filter(student=student).count() == 1


def test_threshold_overrides_are_validated_by_name_and_value(school):
    from django.core.exceptions import ValidationError

    org = school.organisation
    org.alert_thresholds = {"stalled_windw_days": 21, "overdue_min_count": -1}
    with pytest.raises(ValidationError) as error:
        org.full_clean()
    messages = error.value.message_dict["alert_thresholds"]
    assert any("unknown threshold 'stalled_windw_days'" in m for m in messages)
    assert "overdue_min_count must be a number of zero or more; got -1" in messages
