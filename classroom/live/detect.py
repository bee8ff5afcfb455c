"""Anomalies in a live class's engagement (seeds/004_*, phase 2), by explainable rules.

Each rule reads the stored score series and the exits of the last moments, so a conductor that
takes a session over finds the same state as the one that held it. Each finding carries the
numbers it was raised on and one sentence a teacher reads.

- MASS_EXIT: a quarter of the class (half: critical) gone within `mass_exit_window_seconds`.
  A leave the platform marks as a lost connection counts only once its grace has passed without a
  return (`LIVE_DISCONNECT_GRACE_SECONDS`), so a Wi-Fi blip or a deploy is not an exit.
- SUDDEN_DROP: the mean of the last `sudden_drop_recent_ticks` scores `sudden_drop_points`
  (critical: `..._critical_points`) under the mean of the `sudden_drop_baseline_seconds` before
  the last minute (a baseline of many windows, so one quiet minute's noise does not fire it),
  to under `sudden_drop_to_below` (a lull in a lively class is not yet a drop), with at least
  `sudden_drop_recent_share` of the fall in the last `sudden_drop_recent_seconds` (else it is a
  slide, for the decline rule).
- GRADUAL_DECLINE: over `decline_window_seconds`, a least-squares slope of at least
  `decline_points_per_min` down and a fall of `decline_points` (critical: `..._critical_points`),
  ending under `decline_end_below` (a class sliding from 99 to 83 is still a lively one).
- LOW_ENGAGEMENT: every score of the last `low_for_seconds` under `low_score` (critical: under
  `low_critical_score`).
The three score rules wait `warm_up_seconds` after the start (the first minute's windows are
short). An anomaly stays open for `cooldown_seconds` at least, and then until the class is back
above its type's level (`cleared`); while it is open its type is not raised again, unless a
warning becomes critical, and a decline is not raised while a drop or a low is open. An empty
room raises nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

WARNING, CRITICAL = "WARNING", "CRITICAL"


@dataclass(frozen=True)
class Point:
    at: datetime
    score: float
    present: int


@dataclass(frozen=True)
class Exits:
    """Who left within the mass-exit window (counted exits only) and how many were there before."""

    count: int
    present_before: int


@dataclass(frozen=True)
class Finding:
    type: str
    severity: str
    description: str
    evidence: dict[str, Any]


def detect(
    series: list[Point],
    *,
    exits: Exits,
    started_at: datetime,
    last_raised: dict[str, tuple[datetime, str]],
    config: dict[str, Any],
) -> list[Finding]:
    """What the newest point of `series` (oldest first) raises. `last_raised` holds the session's
    open anomalies by type (when, severity): one still open is not raised again, unless it turns
    critical."""
    if not series:
        return []
    now = series[-1].at
    found = [_mass_exit(exits, config)]
    scored = [p for p in series if p.present > 0]
    if (
        scored
        and scored[-1] is series[-1]
        and now >= started_at + timedelta(seconds=config["warm_up_seconds"])
    ):
        drop, low = _sudden_drop(scored, config), _low(scored, config)
        # A decline says nothing new while a drop or a low is fresh: the teacher knows already.
        told = drop or low or any(kind in last_raised for kind in ("SUDDEN_DROP", "LOW_ENGAGEMENT"))
        found += [drop, None if told else _gradual_decline(scored, config), low]
    return [f for f in found if f is not None and not _cooling(f, last_raised)]


def _cooling(finding: Finding, last_raised: dict[str, tuple[datetime, str]]) -> bool:
    last = last_raised.get(finding.type)
    if last is None:
        return False
    return not (finding.severity == CRITICAL and last[1] == WARNING)


def cleared(
    series: list[Point], open_types: dict[str, tuple[datetime, str]], config: dict[str, Any]
) -> list[str]:
    """The open anomaly types the newest point clears: open at least `cooldown_seconds` (a mass
    exit, an event rather than a state, then clears), and for the others the score back at or
    above the type's level plus `clear_margin` (`sudden_drop_to_below`, `decline_end_below`,
    `low_score`), so that a score hovering at the line does not raise, clear and raise again.
    An empty room clears nothing."""
    if not series:
        return []
    now = series[-1]
    levels = {
        "SUDDEN_DROP": config["sudden_drop_to_below"],
        "GRADUAL_DECLINE": config["decline_end_below"],
        "LOW_ENGAGEMENT": config["low_score"],
    }
    done = []
    for kind, (at, _) in open_types.items():
        if now.at - at < timedelta(seconds=config["cooldown_seconds"]):
            continue
        if kind == "MASS_EXIT" or (now.present > 0 and now.score >= levels[kind] + config["clear_margin"]):
            done.append(kind)
    return done


def _mass_exit(exits: Exits, config: dict[str, Any]) -> Finding | None:
    if exits.present_before < config["mass_exit_min_participants"] or exits.count == 0:
        return None
    share = exits.count / exits.present_before
    if share < config["mass_exit_share"]:
        return None
    severity = CRITICAL if share >= config["mass_exit_critical_share"] else WARNING
    seconds = config["mass_exit_window_seconds"]
    return Finding(
        "MASS_EXIT",
        severity,
        f"{exits.count} of {exits.present_before} participants left in the last {seconds} seconds.",
        {
            "left": exits.count,
            "present_before": exits.present_before,
            "share": round(share, 3),
            "window_seconds": seconds,
        },
    )


def _since(points: list[Point], seconds: float) -> list[Point]:
    start = points[-1].at - timedelta(seconds=seconds)
    return [p for p in points if p.at >= start]


def _sudden_drop(points: list[Point], config: dict[str, Any]) -> Finding | None:
    now = points[-1].at
    window = timedelta(seconds=settings.LIVE_WINDOW_SECONDS)
    baseline = [
        p.score
        for p in points
        if now - window - timedelta(seconds=config["sudden_drop_baseline_seconds"]) <= p.at < now - window
    ]
    recent = [p.score for p in points[-config["sudden_drop_recent_ticks"] :]]
    if len(baseline) < 6:
        return None
    before, after = sum(baseline) / len(baseline), sum(recent) / len(recent)
    drop = before - after
    if drop < config["sudden_drop_points"] or after >= config["sudden_drop_to_below"]:
        return None
    # Sudden: a good part of the fall came in the last half minute (a slide does not).
    lately = _since(points, config["sudden_drop_recent_seconds"])[0].score - after
    if lately < config["sudden_drop_recent_share"] * drop:
        return None
    severity = CRITICAL if drop >= config["sudden_drop_critical_points"] else WARNING
    return Finding(
        "SUDDEN_DROP",
        severity,
        f"Engagement fell from about {before:.0f} to {after:.0f} within the last minute.",
        {"from": round(before, 1), "to": round(after, 1), "drop": round(drop, 1)},
    )


def _gradual_decline(points: list[Point], config: dict[str, Any]) -> Finding | None:
    window = config["decline_window_seconds"]
    recent = _since(points, window)
    if len(recent) < 3 or (recent[-1].at - recent[0].at).total_seconds() < 0.8 * window:
        return None
    xs = [(p.at - recent[0].at).total_seconds() / 60 for p in recent]
    ys = [p.score for p in recent]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    fall = -slope * (xs[-1] - xs[0])
    start = mean_y - slope * (mean_x - xs[0])
    if -slope < config["decline_points_per_min"] or fall < config["decline_points"]:
        return None
    if start - fall >= config["decline_end_below"]:
        return None
    severity = CRITICAL if fall >= config["decline_critical_points"] else WARNING
    minutes = round(xs[-1] - xs[0])
    return Finding(
        "GRADUAL_DECLINE",
        severity,
        f"Engagement has slid from about {start:.0f} to {start - fall:.0f} over the last {minutes} "
        f"minutes ({slope:.1f} points a minute).",
        {
            "from": round(start, 1),
            "to": round(start - fall, 1),
            "points_per_min": round(slope, 2),
            "minutes": minutes,
        },
    )


def _low(points: list[Point], config: dict[str, Any]) -> Finding | None:
    seconds = config["low_for_seconds"]
    recent = _since(points, seconds)
    if len(recent) < 2 or (recent[-1].at - recent[0].at).total_seconds() < seconds - 5:
        return None
    highest = max(p.score for p in recent)
    if highest >= config["low_score"]:
        return None
    severity = CRITICAL if highest < config["low_critical_score"] else WARNING
    now = recent[-1].score
    return Finding(
        "LOW_ENGAGEMENT",
        severity,
        f"Engagement has stayed under {config['low_score']} for {seconds} seconds (now {now:.0f}).",
        {"highest": highest, "now": now, "seconds": seconds, "threshold": config["low_score"]},
    )
