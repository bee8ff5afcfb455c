"""A stand-in for the four remote agents (clo, alex, ta, socratic), served over HTTP on loopback.

It speaks the agent contract of seeds/003_* ("Agent Integration") the way `RemoteAgent` does,
so the orchestrator's remote path runs over real sockets in tests and the demo, and has knobs for
what real agents do to us: latency, hangs, errors, rate limits and outages. Its answers have the
same shapes as the built-in agents (`tutor.orchestrator.agents`), so a remote agent is a drop-in
for a built-in one; they are plausible and deterministic per (agent, learner, date, topic), with
an ETag that is a hash of the data, so If-None-Match revalidation answers 304 until the data
changes (`revision` changes every answer). `GET /_sim/report` says what it received;
`POST /_sim/config` changes the knobs while it runs; `POST /_sim/reset` forgets the counters.

API (JSON; every answer is `{"ok": true, "data": ...}` or `{"ok": false, "error", "code"}`):
    POST /agents/<clo|alex|ta|socratic>   Authorization: Bearer <token>, X-Idempotency-Key,
         body `AgentRequest.body()` -> 200 with ETag, or 304 when If-None-Match matches
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from classroom.platform.sim_http import SimHandler, SimServer, SimState, serve_in_thread
from tutor.orchestrator.contract import AGENTS

_AGENT_PATH = re.compile(r"^/agents/(?P<agent>[^/]+)$")
# The report keeps the latest requests only, so a long demo run does not grow without bound.
_RECENT = 500


@dataclass
class SimulatorConfig:
    token: str = "demo-agents-token"
    latency_ms: int = 0
    # Per agent, instead of latency_ms.
    latency_ms_by_agent: dict[str, int] = field(default_factory=dict)
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    # Seconds, in 429 answers. Fractions are allowed so that tests stay fast (RFC 9110 says whole
    # seconds; the client reads both).
    retry_after: float = 1.0
    # Every agent answers 503.
    outage: bool = False
    # These agents answer 503.
    down: list[str] = field(default_factory=list)
    # Deterministic faults for tests: the first N requests to each agent answer 503 / 429.
    fail_first: int = 0
    rate_limit_first: int = 0
    # These agents sleep this long before answering (longer than a client's timeout, for tests).
    hang_ms_by_agent: dict[str, int] = field(default_factory=dict)
    # These agents answer 200 with a body that is not the agent contract.
    malformed: list[str] = field(default_factory=list)
    # These agents answer 200 `{"ok": false}` with this code (an agent declining to answer).
    error_code_by_agent: dict[str, str] = field(default_factory=dict)
    # Changing it changes every answer, and so every ETag (the agents learned something new).
    revision: int = 0
    seed: int = 0

    def update(self, changes: dict[str, Any]) -> None:
        """Change knobs by name; a wrong name or type is refused, since a knob set to the wrong
        type (`down: "ta"`) would silently test something else."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown knob(s): {', '.join(sorted(unknown))}")
        for name, value in changes.items():
            expected = type(getattr(self, name))
            if not isinstance(value, expected) and not (expected is float and isinstance(value, int)):
                raise TypeError(f"{name} must be {expected.__name__}, not {type(value).__name__}")
        for name, value in changes.items():
            setattr(self, name, value)


def _empty_counts() -> dict[str, int]:
    return {"requests": 0, "200": 0, "304": 0, "429": 0, "4xx": 0, "5xx": 0}


class AgentsState(SimState):
    """Everything the simulator remembers, shared by its request threads."""

    def reset(self) -> None:
        with self.lock:
            self.started = time.monotonic()
            self.rng = random.Random(self.config.seed)
            self.counts = {name: _empty_counts() for name in AGENTS}
            self.recent: deque[dict[str, Any]] = deque(maxlen=_RECENT)

    def arrived(self, agent: str) -> int:
        """Counts a request to `agent`; returns which one it is (1 for the first)."""
        with self.lock:
            self.counts[agent]["requests"] += 1
            return self.counts[agent]["requests"]

    def answered(self, agent: str, status: int, seen: dict[str, Any]) -> None:
        key = str(status) if status in (200, 304, 429) else f"{status // 100}xx"
        with self.lock:
            if key in self.counts[agent]:
                self.counts[agent][key] += 1
            self.recent.append({"agent": agent, "status": status, **seen})

    def since_start(self, at: float) -> float:
        return round(at - self.started, 4)

    def report(self) -> dict[str, Any]:
        with self.lock:
            return {
                "agents": {name: dict(counts) for name, counts in self.counts.items()},
                "requests": list(self.recent),
                "config": asdict(self.config),
            }


def etag_for(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return '"' + hashlib.sha256(canonical).hexdigest()[:32] + '"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110's weak comparison: any listed tag (W/ or not) equal to ours, or `*`."""
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


_ASPECTS = (
    "the core ideas",
    "worked examples",
    "common mistakes",
    "a practice set",
    "connections to earlier work",
    "a short applied problem",
)
_PATTERNS = (
    ("time_of_day", "studies most steadily in the early evening"),
    ("session_length", "focus drops after about 25 minutes"),
    ("weekday", "skips more sessions on Fridays"),
    ("after_setback", "comes back the day after a low-confidence session"),
    ("format", "finishes practice sets more often than readings"),
)
_QUESTIONS = (
    "What would change in {topic} if you removed one of its assumptions?",
    "How would you explain {topic} to someone who has never heard of it?",
    "Which step in {topic} do you trust least, and why?",
    "Where have you seen {topic} outside your studies?",
    "What is the smallest example of {topic} that still shows the main idea?",
    "How would you check an answer about {topic} without the solution?",
)


def _clo(rng: random.Random, body: dict[str, Any], on: date) -> dict[str, Any]:
    topic, minutes = body["topic"], body["time_per_day_min"]
    objectives = [{"id": f"o{n}", "text": f"{topic}: {aspect}"} for n, aspect in enumerate(_ASPECTS, 1)]
    practised = rng.randint(0, 3)
    reviews = []
    for objective in objectives[:practised]:
        due_on = on + timedelta(days=rng.randint(-1, 4))
        reviews.append({"objective_id": objective["id"], "due_on": due_on.isoformat(), "due": due_on <= on})
    return {
        "has_plan": True,
        "objectives": objectives,
        "curricula": [{"code": "sim", "title": f"{topic} (simulated curriculum)"}],
        "milestones": [{"title": f"{topic}: checkpoint", "due": (on + timedelta(days=7)).isoformat()}],
        "weekly_minutes": minutes * 5,
        "reviews": sorted(reviews, key=lambda review: review["due_on"]),
    }


def _ta(rng: random.Random, body: dict[str, Any], on: date) -> dict[str, Any]:
    topic = body["topic"]
    deadlines = []
    for n in range(rng.randint(0, 3)):
        due_at = datetime.combine(on + timedelta(days=rng.randint(-1, 7)), datetime.min.time(), tzinfo=UTC)
        due_at += timedelta(hours=17)
        deadlines.append(
            {
                "title": f"{topic} assignment {n + 1}",
                "due_at": due_at.isoformat(),
                "overdue": due_at.date() < on,
            }
        )
    scores = [
        {"title": f"{topic} quiz {n + 1}", "score": round(rng.uniform(0.45, 0.95), 2)} for n in range(3)
    ]
    return {
        "deadlines": sorted(deadlines, key=lambda deadline: deadline["due_at"]),
        "milestones": [],
        "recent_minutes": rng.randint(60, 420),
        "mastery": scores[-1]["score"],
        "mastery_trend": round(scores[-1]["score"] - scores[0]["score"], 3),
        "recent_scores": scores,
    }


def _alex(rng: random.Random, body: dict[str, Any], on: date) -> dict[str, Any]:
    return {
        "patterns": [{"kind": kind, "description": text} for kind, text in rng.sample(_PATTERNS, 2)],
        "proactiveness": rng.choice(["low", "normal", "high"]),
        "acceptance_rate": round(rng.uniform(0.3, 0.9), 2),
        "typical_session_minutes": rng.choice([15, 20, 25, 30, 40]),
        "engagement": rng.choice(["steady", "rising", "dipping"]),
    }


def _socratic(rng: random.Random, body: dict[str, Any], on: date) -> dict[str, Any]:
    return {
        "questions": [question.format(topic=body["topic"]) for question in rng.sample(_QUESTIONS, 3)],
        "source": "agents_sim",
    }


_ANSWERS = {"clo": _clo, "ta": _ta, "alex": _alex, "socratic": _socratic}


_DAILY = frozenset({"ta", "socratic"})


def answer_for(agent: str, body: dict[str, Any], *, seed: int = 0, revision: int = 0) -> dict[str, Any]:
    """The agent's data for one learner's day: the same request gives the same data (and ETag).
    Deadlines and questions change every day; the curriculum and the profile once a week (their
    answers are those of the week's Monday), as they would from real agents: a daily revalidation
    of those is a 304."""
    on = date.fromisoformat(body["date"])
    if agent not in _DAILY:
        on -= timedelta(days=on.weekday())
    key = json.dumps([seed, revision, agent, body["learner_id"], on.isoformat(), body["topic"]])
    rng = random.Random(hashlib.sha256(key.encode()).digest())
    return _ANSWERS[agent](rng, body, on)


def _valid_body(raw: bytes) -> dict[str, Any] | None:
    """The request body if it is an `AgentRequest.body()` this simulator can answer."""
    try:
        body = json.loads(raw or b"{}")
        if not isinstance(body, dict):
            return None
        date.fromisoformat(body["date"])
    except (ValueError, KeyError, TypeError):
        return None
    texts_ok = all(isinstance(body.get(name), str) and body[name] for name in ("learner_id", "topic"))
    minutes = body.get("time_per_day_min")
    minutes_ok = isinstance(minutes, int) and not isinstance(minutes, bool) and minutes > 0
    return body if texts_ok and minutes_ok else None


class _Handler(SimHandler):
    _agent: str | None = None
    _seen: dict[str, Any]

    def _answered(self, status: int) -> None:
        if self._agent is not None:  # the report counts agent traffic, not its own
            self.server.state.answered(self._agent, status, self._seen)

    def _handle(self, method: str) -> None:
        # One handler serves every request of a keep-alive connection: forget the last one.
        self._agent: str | None = None
        self._seen: dict[str, Any] = {}
        path = urlsplit(self.path).path
        raw = self._read_body()
        if path.startswith("/_sim/"):
            return self._control(method, path, raw)
        match = _AGENT_PATH.match(path)
        if method != "POST" or match is None or match["agent"] not in AGENTS:
            return self._fail(HTTPStatus.NOT_FOUND, f"no route for {method} {path}", "not_found")
        self._agent = agent = match["agent"]
        state, config = self.server.state, self.server.state.config
        self._seen = {
            "at": state.since_start(time.monotonic()),
            "idempotency_key": self.headers.get("X-Idempotency-Key"),
            "if_none_match": self.headers.get("If-None-Match"),
        }
        nth = state.arrived(agent)
        delay_ms = config.latency_ms_by_agent.get(agent, config.latency_ms) + config.hang_ms_by_agent.get(
            agent, 0
        )
        if delay_ms:
            time.sleep(delay_ms / 1000)
        if config.outage:
            return self._fail(HTTPStatus.SERVICE_UNAVAILABLE, "the agents are down for maintenance", "outage")
        if self.headers.get("Authorization") != f"Bearer {config.token}":
            return self._fail(HTTPStatus.UNAUTHORIZED, "missing or invalid service token", "unauthorized")
        if not self._seen["idempotency_key"]:
            return self._fail(
                HTTPStatus.BAD_REQUEST, "X-Idempotency-Key is required", "idempotency_key_missing"
            )
        if agent in config.down:
            return self._fail(HTTPStatus.SERVICE_UNAVAILABLE, f"{agent} is down", "agent_down")
        if nth <= config.rate_limit_first or (
            config.rate_limit_rate and state.roll() < config.rate_limit_rate
        ):
            return self._fail(
                HTTPStatus.TOO_MANY_REQUESTS,
                "rate limit exceeded",
                "rate_limited",
                headers={"Retry-After": f"{config.retry_after:g}"},
            )
        if nth <= config.fail_first or (config.error_rate and state.roll() < config.error_rate):
            return self._fail(HTTPStatus.SERVICE_UNAVAILABLE, "temporary failure, try again", "unavailable")
        body = _valid_body(raw)
        if body is None:
            return self._fail(
                HTTPStatus.BAD_REQUEST,
                "the body must be a JSON object with learner_id, topic, date and time_per_day_min",
                "bad_request",
            )
        self._seen["learner_id"] = body["learner_id"]
        if agent in config.malformed:
            return self._send(HTTPStatus.OK, {"result": "this is not the agent contract"})
        if code := config.error_code_by_agent.get(agent):
            return self._fail(HTTPStatus.OK, f"{agent} declines to answer", code)
        data = answer_for(agent, body, seed=config.seed, revision=config.revision)
        etag = etag_for(data)
        if _matches(self._seen["if_none_match"], etag):
            return self._send(HTTPStatus.NOT_MODIFIED, None, {"ETag": etag})
        self._send(HTTPStatus.OK, {"ok": True, "data": data}, {"ETag": etag})


class AgentsServer(SimServer):
    def __init__(self, address: tuple[str, int], config: SimulatorConfig, *, verbose: bool = False) -> None:
        super().__init__(address, AgentsState(config), _Handler, verbose=verbose)

    @property
    def agent_urls(self) -> dict[str, str]:
        """What ORCHESTRATOR_AGENT_URLS should hold to reach this simulator."""
        return {name: f"{self.url}/agents/{name}" for name in AGENTS}


def start_in_thread(
    config: SimulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AgentsServer:
    """Serve in a background thread (tests, benchmarks); call `.shutdown()` to stop."""
    server = AgentsServer((host, port), config or SimulatorConfig())
    serve_in_thread(server, "agents-simulator")
    return server
