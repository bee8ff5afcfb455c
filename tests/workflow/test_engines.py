"""The engines the workflow orchestrates, as plain functions over hand-made days (no database):
the profile engine's thresholds, acute regression, monitoring status and the cluster identity."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from workflow import catalog, engines
from workflow.engines import Day

TODAY = date(2026, 3, 16)


def days(masteries: list[float | None], *, last_offset: int = 0, confidence: int | None = 4) -> list[Day]:
    """Consecutive days, oldest first, ending `last_offset` days before TODAY."""
    first = TODAY - timedelta(days=last_offset + len(masteries) - 1)
    return [Day(first + timedelta(days=i), m, confidence) for i, m in enumerate(masteries)]


def at(offsets_and_mastery: dict[int, float]) -> list[Day]:
    return [
        Day(TODAY - timedelta(days=offset), mastery, 4)
        for offset, mastery in sorted(offsets_and_mastery.items(), reverse=True)
    ]


# Profile: do_not_decide_yet -------------------------------------------------------------------------


def test_fewer_measured_days_than_the_minimum_is_do_not_decide_yet():
    found = engines.profile(days([0.6] * (engines.EVIDENCE_MIN_DAYS - 1)), today=TODAY)
    assert found.do_not_decide_yet is True
    assert (found.object_type, found.bundle_kind, found.tier) == (catalog.ObjectType.MONITOR_ONLY, None, "")
    assert found.evidence == {"days_with_data": 9, "days_measured": 9}
    assert "only 9 days" in found.rationale


def test_the_minimum_of_measured_days_is_enough_to_decide():
    found = engines.profile(days([0.6] * engines.EVIDENCE_MIN_DAYS), today=TODAY)
    assert found.do_not_decide_yet is False
    assert found.object_type == catalog.ObjectType.INTERVENTION


def test_days_without_a_mastery_measurement_do_not_count_as_evidence():
    found = engines.profile(days([0.6] * 9 + [None] * 5), today=TODAY)
    assert found.do_not_decide_yet is True
    assert found.evidence == {"days_with_data": 14, "days_measured": 9}


def test_measurements_older_than_the_window_do_not_count():
    old = days([0.6] * 5, last_offset=engines.WINDOW_DAYS)  # all on or before TODAY - 28
    recent = days([0.6] * 9)
    assert engines.profile(old + recent, today=TODAY).do_not_decide_yet is True
    edge = days([0.6], last_offset=engines.WINDOW_DAYS - 1)  # TODAY - 27: inside
    assert engines.profile(edge + recent, today=TODAY).evidence["days_measured"] == 10


# Profile: QA_003 -------------------------------------------------------------------------------------


def test_quiet_for_qa_quiet_days_is_qa_003():
    found = engines.profile(days([0.6] * 12, last_offset=engines.QA_QUIET_DAYS), today=TODAY)
    assert found.qa_exclusion == catalog.QA_003
    assert found.evidence["quiet_days"] == engines.QA_QUIET_DAYS
    assert found.do_not_decide_yet is False


def test_quiet_for_one_day_less_is_complete():
    found = engines.profile(days([0.6] * 12, last_offset=engines.QA_QUIET_DAYS - 1), today=TODAY)
    assert found.qa_exclusion == ""
    assert "quiet_days" not in found.evidence


def test_qa_003_keeps_the_recommendation_it_would_have_had():
    found = engines.profile(days([0.6] * 12, last_offset=6), today=TODAY)
    assert (found.object_type, found.tier, found.qa_exclusion) == ("INTERVENTION", "Level_2", "QA_003")


# Profile: stall, low confidence, enrichment, practice -----------------------------------------------


@pytest.mark.parametrize(
    ("mastery", "tier"),
    [
        (0.2, "Level_3"),
        (0.49, "Level_3"),
        (0.5, "Level_2"),
        (0.69, "Level_2"),
        (0.7, "Level_1"),
        (0.95, "Level_1"),
    ],
)
def test_a_stall_is_an_intervention_bundle_at_the_tier_of_the_mastery_band(mastery, tier):
    found = engines.profile(days([mastery] * 14), today=TODAY)
    assert found.object_type == found.bundle_kind == catalog.ObjectType.INTERVENTION
    assert (found.tier, found.delivery_mode) == (tier, "small_group")
    assert found.evidence["gain_14d"] == 0.0


def test_a_gain_under_stall_gain_is_a_stall_even_with_low_confidence():
    masteries = [0.5 + 0.001 * i for i in range(14)]  # +0.013 over the fortnight
    found = engines.profile(days(masteries, confidence=1), today=TODAY)
    assert found.object_type == catalog.ObjectType.INTERVENTION
    assert found.evidence["gain_14d"] < engines.STALL_GAIN


def test_a_falling_mastery_is_a_stall():
    found = engines.profile(days([0.9 - 0.01 * i for i in range(14)]), today=TODAY)
    assert (found.object_type, found.tier) == ("INTERVENTION", "Level_1")
    assert found.evidence["gain_14d"] == -0.13


def test_only_the_last_fourteen_days_make_the_gain():
    # A big climb three weeks ago, flat since: a stall.
    masteries = [0.2 + 0.05 * i for i in range(8)] + [0.55] * 13
    found = engines.profile(days(masteries), today=TODAY)
    assert (found.object_type, found.tier, found.evidence["gain_14d"]) == ("INTERVENTION", "Level_2", 0.0)


def test_a_gain_of_exactly_stall_gain_is_not_a_stall():
    # 0.70 - 0.68 is 0.0199… in floating point; the engine judges the rounded gain.
    found = engines.profile(days([0.68] * 13 + [0.70]), today=TODAY)
    assert found.object_type == catalog.ObjectType.PRACTICE_SET
    assert found.evidence["gain_14d"] == engines.STALL_GAIN


@pytest.mark.parametrize("confidences", [[1, 2, 3], [2, 2, 3], [5, 5, 2, 3, 2]])
def test_low_confidence_over_the_last_three_check_ins_is_a_composite_at_level_2(confidences):
    history = days([0.5 + 0.01 * i for i in range(14)])
    rated = history[-len(confidences) :]
    history[-len(confidences) :] = [
        Day(d.date, d.mastery, c) for d, c in zip(rated, confidences, strict=True)
    ]
    found = engines.profile(history, today=TODAY)
    assert found.object_type == found.bundle_kind == catalog.ObjectType.COMPOSITE
    assert (found.tier, found.delivery_mode) == ("Level_2", "small_group")
    assert found.evidence["confidence_last3"] <= engines.LOW_CONFIDENCE


def test_confidence_just_above_the_threshold_is_not_low():
    found = engines.profile(days([0.5 + 0.01 * i for i in range(14)], confidence=3), today=TODAY)
    assert found.object_type == catalog.ObjectType.PRACTICE_SET
    assert found.evidence["confidence_last3"] == 3


def test_no_rated_check_ins_is_not_low_confidence():
    found = engines.profile(days([0.5 + 0.01 * i for i in range(14)], confidence=None), today=TODAY)
    assert found.object_type == catalog.ObjectType.PRACTICE_SET
    assert found.evidence["confidence_last3"] is None


@pytest.mark.parametrize(
    ("now", "kind"),
    [
        (0.84, catalog.ObjectType.PRACTICE_SET),
        (0.85, catalog.ObjectType.ENRICHMENT),
        (0.97, catalog.ObjectType.ENRICHMENT),
    ],
)
def test_rising_with_good_confidence_is_enrichment_from_the_mastery_threshold_else_practice(now, kind):
    found = engines.profile(days([round(now - 0.01 * (13 - i), 2) for i in range(14)]), today=TODAY)
    assert found.object_type == kind
    assert found.bundle_kind is None
    assert (found.tier, found.delivery_mode) == ("", "")
    assert found.evidence["mastery_now"] == now


# Acute regression ---------------------------------------------------------------------------------


def test_three_measurements_well_below_the_week_before_are_an_acute_regression():
    history = at({13: 0.6, 12: 0.6, 10: 0.6, 8: 0.6, 7: 0.6, 2: 0.45, 1: 0.45, 0: 0.42})
    assert engines.acute_regression(history, today=TODAY) == {
        "mastery_last3": 0.44,
        "mastery_week_before": 0.6,
        "drop": -0.16,
    }


def test_a_drop_smaller_than_acute_drop_is_no_regression():
    history = at({10: 0.6, 8: 0.6, 2: 0.595, 1: 0.595, 0: 0.595})
    assert engines.acute_regression(history, today=TODAY) is None


def test_a_drop_of_exactly_acute_drop_is_a_regression():
    history = at({10: 0.5, 8: 0.5, 2: 0.49, 1: 0.49, 0: 0.49})
    assert engines.acute_regression(history, today=TODAY)["drop"] == -engines.ACUTE_DROP


def test_a_rise_is_no_regression():
    assert engines.acute_regression(at({10: 0.5, 2: 0.6, 1: 0.6, 0: 0.6}), today=TODAY) is None


def test_acute_regression_needs_three_recent_measurements_and_a_week_before():
    assert engines.acute_regression(at({10: 0.6, 1: 0.3, 0: 0.3}), today=TODAY) is None
    assert engines.acute_regression(at({5: 0.3, 1: 0.3, 0: 0.3}), today=TODAY) is None  # nothing before


def test_the_last_three_must_all_fall_within_the_last_week():
    # The third-last measurement is exactly seven days old: it belongs to the week before.
    assert engines.acute_regression(at({12: 0.6, 7: 0.3, 1: 0.3, 0: 0.3}), today=TODAY) is None


def test_measurements_older_than_two_weeks_are_not_the_week_before():
    assert engines.acute_regression(at({14: 0.9, 20: 0.9, 2: 0.3, 1: 0.3, 0: 0.3}), today=TODAY) is None


# Monitoring status ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("masteries", "status"),
    [
        ([0.5, 0.6], "too_early"),
        ([0.5, 0.52, 0.55], "on_track"),
        ([0.5, 0.5, 0.51], "watch"),
        ([0.5, 0.5, 0.495], "watch"),
        ([0.5, 0.5, 0.48], "off_track"),
        ([0.6, 0.5, 0.3], "off_track"),
    ],
)
def test_monitoring_status_by_the_change_in_mastery_since_activation(masteries, status):
    assert engines.monitoring_status(days(masteries), since=TODAY - timedelta(days=10)) == status


def test_monitoring_reads_only_measurements_since_activation():
    history = days([0.2, 0.2, 0.2, None, 0.5, 0.5, 0.5])
    assert engines.monitoring_status(history, since=TODAY - timedelta(days=6)) == "on_track"
    assert engines.monitoring_status(history, since=TODAY - timedelta(days=2)) == "watch"
    assert engines.monitoring_status(history, since=TODAY - timedelta(days=1)) == "too_early"


# Cluster identity -----------------------------------------------------------------------------------


def test_cluster_identity_is_the_five_keys_in_order():
    identity = engines.cluster_identity(7, "BND-MATH-LINEQ", "linear_equations", "Level_2", "small_group")
    assert identity.split("|") == ["7", "BND-MATH-LINEQ", "linear_equations", "Level_2", "small_group"]


def test_any_one_key_makes_another_cluster():
    keys = (7, "BND-MATH-LINEQ", "linear_equations", "Level_2", "small_group")
    variants = [
        (8, *keys[1:]),
        (keys[0], "BND-MATH-CONF", *keys[2:]),
        (*keys[:2], "equation_fluency", *keys[3:]),
        (*keys[:3], "Level_3", keys[4]),
        (*keys[:4], "independent"),
    ]
    identities = {engines.cluster_identity(*keys)} | {engines.cluster_identity(*v) for v in variants}
    assert len(identities) == 6
