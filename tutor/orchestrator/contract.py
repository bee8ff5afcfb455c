"""What the orchestrator asks an agent and what an agent answers, whether it is built in or a
remote HTTP agent speaking the agent contract of seeds/003_*."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

AGENTS = ("clo", "alex", "ta", "socratic")


@dataclass(frozen=True)
class AgentRequest:
    """One learner's day, as every agent is asked about it. `learner_id` is the learner's platform
    id (no name or e-mail ever leaves the process); `idempotency_key` is the same for every retry
    of one day.run of one agent."""

    agent: str
    learner_id: str
    topic: str
    depth: str
    end_goal: str
    time_per_day_min: int
    week: int
    day: int
    date: str
    idempotency_key: str
    context: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "learner_id": self.learner_id,
            "topic": self.topic,
            "depth": self.depth,
            "end_goal": self.end_goal,
            "time_per_day_min": self.time_per_day_min,
            "week": self.week,
            "day": self.day,
            "date": self.date,
            "context": self.context,
        }


@dataclass(frozen=True)
class AgentAnswer:
    """An agent's answer: new data with its ETag, or `not_modified` (a 304 to If-None-Match:
    the cached data still holds)."""

    data: dict[str, Any] | None
    etag: str = ""
    not_modified: bool = False


class AgentUnavailable(Exception):
    """The agent gave no usable answer within the budget. `reason` is one line a teacher reads
    ("ta: 503 three times, gave up after 7.0 s"); `code` is short ("timeout", "http_503",
    "rate_limited", "unreachable", "bad_answer", "agent_error")."""

    def __init__(self, reason: str, *, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
