"""A stand-in for the learning platform, served over HTTP on loopback.

It answers the same API the client speaks, with the demo school's history
(`classroom.platform.history`), and has knobs for latency, errors, rate limits and outages.
It enforces idempotency keys the way a payments-grade API does: the same key and body replay
the first answer, the same key with another body is refused. `GET /_sim/report` says what it
received; `POST /_sim/config` changes the knobs while it runs; `POST /_sim/reset` forgets;
`POST /_sim/live` `{session_id, app_url, secret}` plays the demo's live class into a live
session of the app (`classroom.platform.live_player`).

API (JSON; every answer is `{"ok": true, "data": ...}` or `{"ok": false, "error", "code"}`):
    GET  /v1/students/<platform id>/changes?since=<ISO time>
         -> {"as_of", "performance": [...], "plan_progress": [...], "assignments": [...]}
    POST /v1/students/<platform id>/dispatches   (X-Idempotency-Key, {"kind", "payload"})
         -> 201 {"dispatch_id", "replayed": false}; a replay -> 200 with "replayed": true
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.utils import timezone

from classroom.platform import history, live_player
from classroom.platform.sim_http import SimHandler, SimServer, SimState, serve_in_thread

_CHANGES = re.compile(r"^/v1/students/(?P<student>[^/]+)/changes$")
_DISPATCHES = re.compile(r"^/v1/students/(?P<student>[^/]+)/dispatches$")


@dataclass
class SimulatorConfig:
    token: str = "demo-platform-token"
    latency_ms: int = 0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: int = 1
    outage: bool = False
    # Deterministic faults for tests: the first N requests to each path answer 503 / 429.
    fail_first: int = 0
    rate_limit_first: int = 0
    # Fetches of and dispatches to these students always answer 500.
    failing_students: list[str] = field(default_factory=list)
    # Every assignment and milestone title of these students reads this instead (hostile or
    # oversized text from the platform, for tests).
    titles: dict[str, str] = field(default_factory=dict)
    # A dispatch is recorded, then answered only after this delay (a client timeout in between).
    dispatch_delay_first_ms: int = 0
    seed: int = 0

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown knob(s): {', '.join(sorted(unknown))}")
        for name, value in changes.items():
            setattr(self, name, value)


@dataclass
class _Dispatch:
    body_hash: str
    answer: dict[str, Any]
    student: str
    kind: str
    payload: Any
    received_at: str


class PlatformState(SimState):
    """Everything the simulator remembers, shared by its request threads."""

    def reset(self) -> None:
        with self.lock:
            self.requests = 0
            self.by_path: dict[str, int] = {}
            self.status_counts: dict[str, int] = {}
            self.dispatches: dict[str, _Dispatch] = {}
            self.replays = 0
            self.delayed_keys: set[str] = set()

    def count(self, path: str) -> int:
        with self.lock:
            self.requests += 1
            self.by_path[path] = self.by_path.get(path, 0) + 1
            return self.by_path[path]

    def answered(self, status: int) -> None:
        with self.lock:
            self.status_counts[str(status)] = self.status_counts.get(str(status), 0) + 1

    def report(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "by_path": dict(self.by_path),
                "status_counts": dict(self.status_counts),
                "dispatches": [
                    {
                        "key": key,
                        "student": d.student,
                        "kind": d.kind,
                        "payload": d.payload,
                        "received_at": d.received_at,
                    }
                    for key, d in self.dispatches.items()
                ],
                "replays": self.replays,
                "config": asdict(self.config),
            }


def _json_default(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def changes_for(student: history.DemoStudent, since: datetime | None, now: datetime) -> dict[str, Any]:
    """The student's records updated after `since`, each with its `updated_at`."""
    today = timezone.localdate(now)
    start = datetime.combine(
        today - timedelta(days=history.HISTORY_DAYS), datetime.min.time(), tzinfo=now.tzinfo
    )

    def end_of(day: date) -> datetime:
        return min(now, datetime.combine(day, datetime.max.time(), tzinfo=now.tzinfo))

    performance = [{**row, "updated_at": end_of(row["date"])} for row in history.days(student, today)]
    assignments = [
        {**row, "updated_at": row["submitted_at"] or start}
        for row in history.assignments(student, today, now)
    ]
    milestones = [
        {**row, "updated_at": end_of(row["completed_on"]) if row["completed_on"] else start}
        for row in history.milestones(today)
    ]
    if since is not None:
        performance = [r for r in performance if r["updated_at"] > since]
        assignments = [r for r in assignments if r["updated_at"] > since]
        milestones = [r for r in milestones if r["updated_at"] > since]
    return {"as_of": now, "performance": performance, "plan_progress": milestones, "assignments": assignments}


class _Handler(SimHandler):
    def _answered(self, status: int) -> None:
        if not self.path.startswith("/_sim/"):  # the report counts platform traffic, not its own
            self.server.state.answered(status)

    def _json_default(self, value: Any) -> Any:
        return _json_default(value)

    def _control(self, method: str, path: str, raw: bytes) -> None:
        if method == "POST" and path == "/_sim/live":
            return self._live(raw)
        return super()._control(method, path, raw)

    def _live(self, raw: bytes) -> None:
        """Play the demo's live class into a session of the app: `{session_id, app_url, secret}`."""
        try:
            asked = json.loads(raw or b"{}")
            session_id, app_url, secret = (
                int(asked["session_id"]),
                str(asked["app_url"]),
                str(asked["secret"]),
            )
        except (ValueError, TypeError, KeyError) as error:
            return self._fail(
                HTTPStatus.BAD_REQUEST,
                f"session_id, app_url and secret are required ({error})",
                "bad_request",
            )
        live_player.play_in_thread(session_id=session_id, app_url=app_url, secret=secret)
        self._send(HTTPStatus.ACCEPTED, {"ok": True, "data": {"playing": session_id}})

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        if url.path.startswith("/_sim/"):
            return self._control(method, url.path, body)
        state, config = self.server.state, self.server.state.config
        nth = state.count(f"{method} {url.path}")
        if config.latency_ms:
            time.sleep(config.latency_ms / 1000)
        if config.outage:
            return self._fail(
                HTTPStatus.SERVICE_UNAVAILABLE, "the platform is down for maintenance", "outage"
            )
        if self.headers.get("Authorization") != f"Bearer {config.token}":
            return self._fail(HTTPStatus.UNAUTHORIZED, "missing or invalid service token", "unauthorized")
        if nth <= config.rate_limit_first or (
            config.rate_limit_rate and state.roll() < config.rate_limit_rate
        ):
            return self._fail(
                HTTPStatus.TOO_MANY_REQUESTS,
                "rate limit exceeded",
                "rate_limited",
                headers={"Retry-After": str(config.retry_after)},
            )
        if nth <= config.fail_first or (config.error_rate and state.roll() < config.error_rate):
            return self._fail(HTTPStatus.SERVICE_UNAVAILABLE, "temporary failure, try again", "unavailable")
        if method == "GET" and (match := _CHANGES.match(url.path)):
            return self._changes(match["student"], parse_qs(url.query).get("since", [None])[0])
        if method == "POST" and (match := _DISPATCHES.match(url.path)):
            return self._dispatch(match["student"], body)
        return self._fail(HTTPStatus.NOT_FOUND, f"no route for {method} {url.path}", "not_found")

    def _changes(self, platform_id: str, since_raw: str | None) -> None:
        student = history.DemoStudent.parse(platform_id)
        if student is None:
            return self._fail(HTTPStatus.NOT_FOUND, f"unknown student {platform_id!r}", "unknown_student")
        if platform_id in self.server.state.config.failing_students:
            return self._fail(
                HTTPStatus.INTERNAL_SERVER_ERROR, "internal error reading this student", "internal"
            )
        since = None
        if since_raw:
            try:
                since = datetime.fromisoformat(since_raw)
            except ValueError:
                return self._fail(HTTPStatus.BAD_REQUEST, "since must be an ISO 8601 time", "bad_request")
            if since.tzinfo is None:
                return self._fail(HTTPStatus.BAD_REQUEST, "since must carry a time zone", "bad_request")
        data = changes_for(student, since, timezone.now())
        title = self.server.state.config.titles.get(platform_id)
        if title is not None:
            for row in (*data["assignments"], *data["plan_progress"]):
                row["title"] = title
        self._send(HTTPStatus.OK, {"ok": True, "data": data})

    def _dispatch(self, platform_id: str, body: bytes) -> None:
        state = self.server.state
        if platform_id in state.config.failing_students:
            return self._fail(
                HTTPStatus.INTERNAL_SERVER_ERROR, "internal error sending to this student", "internal"
            )
        key = self.headers.get("X-Idempotency-Key", "")
        if not key:
            return self._fail(
                HTTPStatus.BAD_REQUEST, "X-Idempotency-Key is required", "idempotency_key_missing"
            )
        try:
            sent = json.loads(body or b"{}")
        except ValueError:
            return self._fail(HTTPStatus.BAD_REQUEST, "the body is not JSON", "bad_request")
        if not isinstance(sent, dict) or not isinstance(sent.get("kind"), str) or "payload" not in sent:
            return self._fail(HTTPStatus.UNPROCESSABLE_ENTITY, "kind and payload are required", "invalid")
        body_hash = hashlib.sha256(json.dumps([platform_id, sent], sort_keys=True).encode()).hexdigest()
        delay = 0.0
        with state.lock:
            known = state.dispatches.get(key)
            if known is not None:
                if known.body_hash != body_hash:
                    conflict = True
                else:
                    conflict = False
                    state.replays += 1
            else:
                answer = {"dispatch_id": f"dsp-{len(state.dispatches) + 1:06d}", "replayed": False}
                state.dispatches[key] = _Dispatch(
                    body_hash, answer, platform_id, sent["kind"], sent["payload"], timezone.now().isoformat()
                )
                if state.config.dispatch_delay_first_ms and key not in state.delayed_keys:
                    state.delayed_keys.add(key)
                    delay = state.config.dispatch_delay_first_ms / 1000
        if known is not None:
            if conflict:
                return self._fail(
                    HTTPStatus.UNPROCESSABLE_ENTITY,
                    "this idempotency key was used with a different request",
                    "idempotency_key_reused",
                )
            return self._send(HTTPStatus.OK, {"ok": True, "data": {**known.answer, "replayed": True}})
        if delay:
            time.sleep(delay)
        self._send(HTTPStatus.CREATED, {"ok": True, "data": answer})


class PlatformServer(SimServer):
    def __init__(self, address: tuple[str, int], config: SimulatorConfig, *, verbose: bool = False) -> None:
        super().__init__(address, PlatformState(config), _Handler, verbose=verbose)


def start_in_thread(
    config: SimulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> PlatformServer:
    """Serve in a background thread (tests, benchmarks); call `.shutdown()` to stop."""
    server = PlatformServer((host, port), config or SimulatorConfig())
    serve_in_thread(server, "platform-simulator")
    return server
