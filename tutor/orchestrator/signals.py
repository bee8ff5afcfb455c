"""Asking the four agents about a learner's day, through the signal cache, within the budget.

1. A cached answer still inside its agent's freshness window is used as it is: a cache hit.
2. The others are asked at once: remote agents on threads (with the cached ETag, so an
   unchanged answer is a 304), built-in agents in this thread meanwhile (they read the database).
3. An answer the agent confirms (a 304, or the same data again) is a hit; new data is a miss.
4. An agent that fails or is still busy at the deadline falls back to its cached answer (a hit,
   stale) or, with none, is left out (a miss); either way the day is degraded, with the reason.
5. The cache rows are written once everything has answered.
Nothing here holds a transaction open while agents are asked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from classroom.models import Student
from plans.models import LearnerIntent
from tutor.models import AgentSignal
from tutor.orchestrator.agents import BUILT_IN
from tutor.orchestrator.contract import AGENTS, AgentAnswer, AgentRequest, AgentUnavailable
from tutor.orchestrator.remote import RemoteAgent

logger = logging.getLogger(__name__)

# Remote agents' calls wait on the network, not the CPU: a few threads per process serve them all.
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="agent")


@dataclass
class Signal:
    agent: str
    data: dict[str, Any] | None
    fresh: bool
    last_updated: datetime | None
    error: str = ""

    @property
    def available(self) -> bool:
        return self.data is not None


@dataclass
class Signals:
    by_agent: dict[str, Signal]
    cache_hits: int = 0
    cache_misses: int = 0
    degraded_reasons: list[str] = field(default_factory=list)

    @property
    def degraded(self) -> bool:
        return bool(self.degraded_reasons)

    def quality(self) -> dict[str, dict[str, bool]]:
        """What the seed's `signal_quality` says of each agent."""
        return {name: {"available": s.available, "fresh": s.fresh} for name, s in self.by_agent.items()}

    def data(self, agent: str) -> dict[str, Any]:
        return self.by_agent[agent].data or {}


def freshness(agent: str) -> timedelta:
    return timedelta(minutes=settings.ORCHESTRATOR_FRESHNESS_MINUTES[agent])


def is_fresh(row: AgentSignal, now: datetime) -> bool:
    return row.checked_at + freshness(row.agent) > now


def etag_of(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()
    return '"' + hashlib.sha256(canonical).hexdigest()[:32] + '"'


def remote_agents() -> dict[str, RemoteAgent]:
    urls = settings.ORCHESTRATOR_AGENT_URLS
    return {
        name: RemoteAgent(name, urls[name], settings.ORCHESTRATOR_AGENT_TOKEN)
        for name in AGENTS
        if urls.get(name)
    }


def gather(
    *,
    student: Student,
    intent: LearnerIntent,
    requests: dict[str, AgentRequest],
    force_refresh: bool,
    deadline: float,
) -> Signals:
    """Every agent's signal for the day `requests` describe (one request per agent)."""
    now = timezone.now()
    cached = {row.agent: row for row in AgentSignal.objects.filter(student=student)}
    signals = Signals(by_agent={})
    to_ask = [
        name for name in AGENTS if force_refresh or name not in cached or not is_fresh(cached[name], now)
    ]
    for name in AGENTS:
        if name not in to_ask:
            row = cached[name]
            signals.by_agent[name] = Signal(name, row.data, fresh=True, last_updated=row.checked_at)
            signals.cache_hits += 1
    remote = remote_agents()
    futures: dict[str, Future[AgentAnswer]] = {
        name: _POOL.submit(
            remote[name].fetch,
            requests[name],
            etag=cached[name].etag if name in cached else "",
            deadline=deadline,
        )
        for name in to_ask
        if name in remote
    }
    outcomes: dict[str, AgentAnswer | AgentUnavailable] = {}
    for name in to_ask:
        if name not in remote:
            outcomes[name] = _ask_built_in(name, student, intent, requests[name], deadline)
    wait(futures.values(), timeout=max(0.0, deadline - time.monotonic()))
    for name, future in futures.items():
        if not future.done():
            future.cancel()
            outcomes[name] = AgentUnavailable(f"{name}: no answer within day.run's budget", code="timeout")
        elif isinstance(future.exception(), AgentUnavailable):
            outcomes[name] = future.exception()
        elif future.exception() is not None:
            logger.error("agent %s raised", name, exc_info=future.exception())
            outcomes[name] = AgentUnavailable(
                f"{name}: the agent client failed unexpectedly", code="agent_error"
            )
        else:
            outcomes[name] = future.result()
    now = timezone.now()
    for name in to_ask:
        _settle(signals, name, outcomes[name], cached.get(name), student, now)
    return signals


def _ask_built_in(
    name: str, student: Student, intent: LearnerIntent, request: AgentRequest, deadline: float
) -> AgentAnswer | AgentUnavailable:
    try:
        data = BUILT_IN[name](student, intent, request)
    except Exception:  # a built-in agent's bug must not cost the learner their plan
        logger.exception("built-in agent %s failed", name)
        return AgentUnavailable(f"{name}: the built-in agent failed", code="agent_error")
    if time.monotonic() > deadline:
        return AgentUnavailable(f"{name}: answered after day.run's budget", code="timeout")
    return AgentAnswer(data=data, etag=etag_of(data))


def _settle(
    signals: Signals,
    name: str,
    outcome: AgentAnswer | AgentUnavailable,
    row: AgentSignal | None,
    student: Student,
    now: datetime,
) -> None:
    """Count the agent's outcome, use it, and bring its cache row up to date."""
    if isinstance(outcome, AgentUnavailable):
        if row is not None:
            signals.cache_hits += 1
            signals.by_agent[name] = Signal(
                name, row.data, fresh=False, last_updated=row.checked_at, error=outcome.reason
            )
            signals.degraded_reasons.append(
                f"{outcome.reason}; used its answer from {row.checked_at:%Y-%m-%d %H:%M} UTC"
            )
            AgentSignal.objects.filter(pk=row.pk).update(last_error=outcome.reason[:300], last_error_at=now)
        else:
            signals.cache_misses += 1
            signals.by_agent[name] = Signal(name, None, fresh=False, last_updated=None, error=outcome.reason)
            signals.degraded_reasons.append(f"{outcome.reason}; the plan was made without it")
        return
    confirmed = row is not None and (outcome.not_modified or (outcome.etag and outcome.etag == row.etag))
    if outcome.not_modified and row is None:
        # A 304 to a request that sent no ETag breaks the contract: nothing to use.
        signals.cache_misses += 1
        signals.by_agent[name] = Signal(
            name, None, fresh=False, last_updated=None, error=f"{name}: 304 without a cached answer"
        )
        signals.degraded_reasons.append(
            f"{name}: answered 304 to a request without an ETag; the plan was made without it"
        )
        return
    if confirmed:
        signals.cache_hits += 1
        AgentSignal.objects.filter(pk=row.pk).update(checked_at=now, last_error="", last_error_at=None)
        signals.by_agent[name] = Signal(name, row.data, fresh=True, last_updated=now)
        return
    signals.cache_misses += 1
    data = outcome.data or {}
    AgentSignal.objects.update_or_create(
        student=student,
        agent=name,
        defaults={
            "data": data,
            "etag": outcome.etag or etag_of(data),
            "fetched_at": now,
            "checked_at": now,
            "last_error": "",
            "last_error_at": None,
        },
    )
    signals.by_agent[name] = Signal(name, data, fresh=True, last_updated=now)
