"""A live class as the platform would report it: participants who join, chat, react and vote in
polls, following a script of phases (calm, a drop, a slow decline, people leaving, a Wi-Fi blip,
a recovery). The platform simulator plays it for the demo, the tests replay it through the
ingest and the tick, and the live benchmark drives it at scale.

Deterministic: the events of one second depend only on the seed and that second, so any slicing
of the timeline into batches gives the same events with the same ids (a resent batch is a replay).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Phase:
    """`seconds` of class. `activity` scales every participant's rates (1 is the class's usual
    pace); with `ramp`, it moves there steadily from the previous phase's. At the phase's start
    `leave` participants leave (with `reason`), and come back after `back_after` seconds if set
    (a blip) ; `join` participants (back) in."""

    seconds: float
    activity: float = 1.0
    ramp: bool = False
    leave: int = 0
    reason: str = "left"
    back_after: float | None = None
    join: int = 0


CALM = (Phase(600),)


@dataclass
class LiveClass:
    start: datetime
    script: tuple[Phase, ...] = CALM
    participants: int = 30
    seed: int = 0
    chat_per_min: float = 0.25
    reactions_per_min: float = 0.12
    poll_every_seconds: int = 120
    poll_share: float = 0.8

    def __post_init__(self) -> None:
        self.names = [f"p{self.seed}-{n:03d}" for n in range(self.participants)]
        self._timeline = self._presence()

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.script)

    def phase_at(self, second: int) -> tuple[Phase, float, float]:
        """The phase `second` falls in, its start, and the activity then."""
        begun, previous = 0.0, 1.0
        for phase in self.script:
            if second < begun + phase.seconds:
                if phase.ramp:
                    share = (second - begun) / phase.seconds
                    return phase, begun, previous + (phase.activity - previous) * share
                return phase, begun, phase.activity
            begun += phase.seconds
            previous = phase.activity
        return self.script[-1], begun, previous

    def _presence(self) -> list[tuple[int, str, str, str]]:
        """(second, join|leave, participant, reason) over the script: everyone joins in the first
        seconds; each phase's leavers are the first of those present."""
        moves = [(n % 10, "join", name, "") for n, name in enumerate(self.names)]
        present = list(self.names)
        away: list[str] = []
        begun = 0.0
        for phase in self.script:
            at = int(begun)
            leaving, present = present[: phase.leave], present[phase.leave :]
            moves += [(at, "leave", name, phase.reason) for name in leaving]
            if phase.back_after is not None:
                moves += [(at + int(phase.back_after), "join", name, "") for name in leaving]
                present += leaving
            else:
                away += leaving
            coming, away = away[: phase.join], away[phase.join :]
            moves += [(at, "join", name, "") for name in coming]
            present += coming
            begun += phase.seconds
        return sorted(moves)

    def present_at(self, second: int) -> set[str]:
        here: set[str] = set()
        for at, kind, name, _ in self._timeline:
            if at > second:
                break
            (here.add if kind == "join" else here.discard)(name)
        return here

    def events(self, since: int, until: int) -> list[dict[str, Any]]:
        """Every event of the seconds [since, until) from the start, as the platform sends them."""
        out: list[dict[str, Any]] = []
        for at, kind, name, reason in self._timeline:
            if since <= at < until:
                event = self._event(f"{kind}-{at}-{name}", kind, at, name)
                if kind == "leave":
                    event["reason"] = reason
                out.append(event)
        for second in range(max(0, since), min(until, int(self.seconds))):
            out += self._second(second)
        return out

    def _second(self, second: int) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.seed}:{second}")
        _, _, activity = self.phase_at(second)
        poll = second // self.poll_every_seconds
        poll_second = second % self.poll_every_seconds
        out = []
        for name in sorted(self.present_at(second)):
            if rng.random() < self.chat_per_min / 60 * activity:
                chat = self._event(f"chat-{second}-{name}", "chat", second, name)
                out.append({**chat, "text": "a message"})
            if rng.random() < self.reactions_per_min / 60 * activity:
                reaction = self._event(f"react-{second}-{name}", "reaction", second, name)
                out.append({**reaction, "kind": "clap"})
            # Each participant votes at most once, at a second of the poll's first 30 chosen by their name.
            vote_second = random.Random(f"{self.seed}:{poll}:{name}").randrange(30)
            if poll_second == vote_second and rng.random() < self.poll_share * min(1.0, activity):
                vote = self._event(f"vote-{poll}-{name}", "poll_vote", second, name)
                out.append({**vote, "poll_id": f"poll-{poll}", "option": rng.choice("ABCD")})
        if poll_second == 60:
            closed = self._event(f"closed-{poll}", "poll_closed", second, "")
            out.append({**closed, "poll_id": f"poll-{poll}"})
        return out

    def _event(self, event_id: str, kind: str, second: int, name: str) -> dict[str, Any]:
        at = self.start + timedelta(seconds=second)
        return {"id": f"{self.seed}-{event_id}", "type": kind, "at": at.isoformat(), "participant": name}
