"""The engagement score of a live class (seeds/004_*, phase 1), from one window of its events.

score = 100 x the weighted mean of five parts, each between 0 and 1:
- chat (30 %): chat messages a minute, against `chat_per_participant_min` per present participant;
- polls (25 %): the share of present participants who voted in the poll of the last
  `poll_recent_seconds` (no poll then: its weight is shared by the other parts, so a class that
  runs no poll is not marked down for it);
- active users (25 %): the share of the present class who chatted, voted or reacted in the last
  `active_window_seconds` (longer than the window: who takes part at all, which a poll every
  few minutes would otherwise swing; a count of people, never a score of one);
- reactions (10 %): reactions a minute, against `reactions_per_participant_min` per participant;
- leaves (10 %): 1 minus the share of the class that left in the window, a fifth of the class
  leaving (`leave_share_full_penalty`) taking the whole part.
A window shorter than LIVE_WINDOW_SECONDS (the session's first minute) is scaled to its length.
Nothing here reads the database: `classroom.live.services.tick` gathers the counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

PARTS = ("chat", "polls", "active_users", "reactions", "leaves")


@dataclass(frozen=True)
class WindowCounts:
    """What happened in one session during one window, in class-level counts."""

    seconds: float
    present: int
    present_at_start: int
    chats: int
    reactions: int
    active: int
    exits: int
    poll_voters: int | None  # distinct voters of the recent poll; None when there was none


@dataclass(frozen=True)
class Score:
    score: float
    category: str
    signals: dict[str, Any]
    components: dict[str, float]


def config_for(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """LIVE_SCORE with an organisation's overrides (`Organisation.live_settings`), one level deep."""
    base = settings.LIVE_SCORE
    overrides = overrides or {}
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            merged[key] = {**base[key], **value}
        elif key in base:
            merged[key] = value
    return merged


def category_of(score: float, categories: dict[str, float]) -> str:
    for name, floor in sorted(categories.items(), key=lambda item: -item[1]):
        if score >= floor:
            return name
    return "critical"


def engagement(counts: WindowCounts, config: dict[str, Any]) -> Score:
    """The score of one window. An empty room scores 0 in the category `empty`, which the anomaly
    rules leave alone (nobody to engage yet, or any more)."""
    minutes = max(counts.seconds, 1.0) / 60
    chat_per_min = counts.chats / minutes
    reactions_per_min = counts.reactions / minutes
    participation = (
        None if counts.poll_voters is None else min(1.0, counts.poll_voters / max(counts.present, 1))
    )
    signals = {
        "chat_per_min": round(chat_per_min, 1),
        "active_users": counts.active,
        "present": counts.present,
        "poll_participation": None if participation is None else round(participation, 3),
        "reactions_per_min": round(reactions_per_min, 1),
        "exits": counts.exits,
    }
    if counts.present == 0:
        return Score(0.0, "empty", signals, {})
    norms = config["normalisers"]
    present = counts.present
    components = {
        "chat": min(1.0, chat_per_min / (norms["chat_per_participant_min"] * present)),
        "active_users": min(1.0, counts.active / present),
        "reactions": min(1.0, reactions_per_min / (norms["reactions_per_participant_min"] * present)),
        "leaves": 1.0
        - min(1.0, counts.exits / max(counts.present_at_start, 1) / norms["leave_share_full_penalty"]),
    }
    if participation is not None:
        components["polls"] = participation
    weights = {part: weight for part, weight in config["weights"].items() if part in components}
    total = sum(weights.values()) or 1.0
    score = 100 * sum(weights[part] * components[part] for part in weights) / total
    score = round(min(100.0, max(0.0, score)), 1)
    return Score(
        score,
        category_of(score, config["categories"]),
        signals,
        {part: round(value, 3) for part, value in components.items()},
    )
