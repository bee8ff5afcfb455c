"""The smallest honest versions of the engines the workflow orchestrates, over the mirrors:

- profile engine: one recommendation per student (a bundle or a non-bundle object, a scaffold
  tier, `do_not_decide_yet` where the evidence is thin);
- cluster engine: the five-key cluster identity, and QA_003 exclusions for incomplete data;
- monitoring: a plan's status since activation, and acute-regression detection.

Pure functions over facts; `workflow.services` loads the facts and writes the results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from statistics import mean

from workflow import catalog

WINDOW_DAYS = 28
EVIDENCE_MIN_DAYS = 10  # days with a mastery measurement in the window, below which: do_not_decide_yet
QA_QUIET_DAYS = 5  # no data for this many days: QA_003, data incomplete
STALL_GAIN = 0.02  # mastery gained over 14 days below this: an intervention bundle
LOW_CONFIDENCE = 2.5  # mean of the last three rated check-ins at or below this: a composite bundle
ENRICHMENT_MASTERY = 0.85
ACUTE_DROP = 0.01  # the last three measurements this far below the week before: acute regression
SCAFFOLD_MINUTES = {
    "Level_1": {"anchor": 30, "supporting": 15, "bridge": 10},
    "Level_2": {"anchor": 45, "supporting": 20, "bridge": 15},
    "Level_3": {"anchor": 60, "supporting": 30, "bridge": 20},
}


@dataclass(frozen=True)
class Day:
    date: date
    mastery: float | None
    confidence: int | None


@dataclass
class Profile:
    """What the profile engine says about one student."""

    object_type: catalog.ObjectType
    bundle_kind: catalog.ObjectType | None  # which bundle the catalogue should supply, if any
    tier: str = ""
    delivery_mode: str = ""
    do_not_decide_yet: bool = False
    qa_exclusion: str = ""
    rationale: str = ""
    evidence: dict = field(default_factory=dict)


def profile(days: list[Day], *, today: date) -> Profile:
    recent = [d for d in days if d.date > today - timedelta(days=WINDOW_DAYS)]
    measured = [d for d in recent if d.mastery is not None]
    evidence = {"days_with_data": len(recent), "days_measured": len(measured)}
    if len(measured) < EVIDENCE_MIN_DAYS:
        return Profile(
            catalog.ObjectType.MONITOR_ONLY,
            None,
            do_not_decide_yet=True,
            rationale=f"only {len(measured)} days with a mastery measurement in {WINDOW_DAYS} "
            f"(at least {EVIDENCE_MIN_DAYS} needed)",
            evidence=evidence,
        )
    last_day = max(d.date for d in recent)
    qa = catalog.QA_003 if (today - last_day).days >= QA_QUIET_DAYS else ""
    mastery_now = measured[-1].mastery or 0.0
    two_weeks = [d.mastery for d in measured if d.date > today - timedelta(days=14)]
    # Rounded like the mirrors (three decimals): 0.68 → 0.70 is a gain of 0.02, not 0.0199….
    gain = round(two_weeks[-1] - two_weeks[0], 3) if len(two_weeks) > 1 else 0.0
    rated = [d.confidence for d in recent if d.confidence is not None][-3:]
    confidence = mean(rated) if rated else None
    evidence |= {
        "mastery_now": round(mastery_now, 3),
        "gain_14d": round(gain, 3),
        "confidence_last3": round(confidence, 2) if confidence is not None else None,
        "last_day_with_data": last_day.isoformat(),
    }
    if qa:
        evidence["quiet_days"] = (today - last_day).days
    if gain < STALL_GAIN:
        tier = "Level_3" if mastery_now < 0.5 else "Level_2" if mastery_now < 0.7 else "Level_1"
        return Profile(
            catalog.ObjectType.INTERVENTION,
            catalog.ObjectType.INTERVENTION,
            tier=tier,
            delivery_mode="small_group",
            qa_exclusion=qa,
            rationale=f"mastery {gain:+.0%} in 14 days (under {STALL_GAIN:+.0%}), now {mastery_now:.0%}",
            evidence=evidence,
        )
    if confidence is not None and confidence <= LOW_CONFIDENCE:
        return Profile(
            catalog.ObjectType.COMPOSITE,
            catalog.ObjectType.COMPOSITE,
            tier="Level_2",
            delivery_mode="small_group",
            qa_exclusion=qa,
            rationale=f"confidence {confidence:.1f}/5 over the last three check-ins",
            evidence=evidence,
        )
    kind = (
        catalog.ObjectType.ENRICHMENT
        if mastery_now >= ENRICHMENT_MASTERY
        else catalog.ObjectType.PRACTICE_SET
    )
    return Profile(
        kind,
        None,
        qa_exclusion=qa,
        rationale=f"mastery {mastery_now:.0%} and rising ({gain:+.0%} in 14 days)",
        evidence=evidence,
    )


def cluster_identity(class_id: int, bundle_code: str, anchor_skill: str, tier: str, mode: str) -> str:
    """The five keys that make students one cluster."""
    return f"{class_id}|{bundle_code}|{anchor_skill}|{tier}|{mode}"


def acute_regression(days: list[Day], *, today: date) -> dict | None:
    """The last three measurements well below the week before them: the numbers, else None."""
    measured = [d for d in days if d.mastery is not None and d.date > today - timedelta(days=14)]
    last = measured[-3:]
    before = [d.mastery for d in measured if d.date <= today - timedelta(days=7)]
    if len(last) < 3 or not before or last[0].date <= today - timedelta(days=7):
        return None
    drop = mean(d.mastery for d in last) - mean(before)
    if drop > -ACUTE_DROP:
        return None
    return {
        "mastery_last3": round(mean(d.mastery for d in last), 3),
        "mastery_week_before": round(mean(before), 3),
        "drop": round(drop, 3),
    }


def monitoring_status(days: list[Day], *, since: date) -> str:
    """on_track, watch or off_track by mastery since activation; too_early below three measurements."""
    measured = [d.mastery for d in days if d.mastery is not None and d.date >= since]
    if len(measured) < 3:
        return "too_early"
    change = measured[-1] - measured[0]
    return "on_track" if change >= 0.02 else "watch" if change >= -0.01 else "off_track"
