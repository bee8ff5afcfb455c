"""A remote agent: one of the four agents reached over HTTP, speaking the agent contract of seeds/003_*.

`fetch` is bounded by one deadline (day.run's budget) rather than by a number of retries alone:
every attempt's timeout and every wait is cut to what is left, so a slow or failing agent costs
the learner at most the budget, and the orchestrator still has time to fall back to cached data
(seeds/003_* "Degraded Mode"). As the seed's "Retry Logic" says, a 429 is retried after its
Retry-After and a 5xx (or a timeout, or a refused connection) after base·1, base·2, base·4 s
(plus up to 25 % of jitter; tenacity does the retrying);
other 4xx answers are not retried, since asking again cannot change them. Every attempt carries
the same X-Idempotency-Key, so an agent that did the work but lost its answer can replay it.

A failure is an `AgentUnavailable` whose reason is one line for a teacher: the agent's name,
what went wrong, the attempts and the seconds spent. It never quotes the agent's error text,
which may echo the learner's data back; only the agent's short error code.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from django.conf import settings
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base

from tutor.orchestrator.contract import AgentAnswer, AgentRequest, AgentUnavailable

# An agent's answer is a few kilobytes; a bigger one is a fault, not worth holding in memory.
_MAX_BODY_BYTES = 1_000_000
_AGENT_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")

_client: httpx.Client | None = None
_client_lock = threading.Lock()


def _shared_client() -> httpx.Client:
    """The process's pooled client: every agent and thread shares its warm keep-alive
    connections (httpx.Client is thread-safe)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = httpx.Client(limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))
        return _client


def _forget_after_fork() -> None:
    """A forked worker starts without its parent's client (whose sockets the parent still uses)
    and with a lock of its own (the parent's may have been held by another thread at the fork)."""
    global _client, _client_lock
    _client, _client_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


class _Failure(Exception):
    """One attempt's failure. `what` is the reason's middle ("503 (outage)"); `retry_after` is
    the wait the agent asked for, if it asked."""

    def __init__(
        self, code: str, what: str, *, retryable: bool = True, retry_after: float | None = None
    ) -> None:
        super().__init__(what)
        self.code = code
        self.what = what
        self.retryable = retryable
        self.retry_after = retry_after
        # The wait before the next attempt, once tenacity has asked for it (`_wait`).
        self.wait: float | None = None


def _wait(state: RetryCallState) -> float:
    """The agent's Retry-After when it gave one; else base x 1, 2, 4 s plus up to 25 %."""
    failure = state.outcome.exception() if state.outcome else None
    if isinstance(failure, _Failure) and failure.retry_after is not None:
        wait = failure.retry_after
    else:
        delay = settings.ORCHESTRATOR_AGENT_BACKOFF_BASE * 2 ** (state.attempt_number - 1)
        wait = delay + random.uniform(0, delay * 0.25)
    if isinstance(failure, _Failure):
        failure.wait = wait
    return wait


class _StopBeforeDeadline(stop_base):
    """Stops when the wait before the next attempt would reach `deadline` (tenacity computes the
    wait before it asks whether to stop)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, state: RetryCallState) -> bool:
        return time.monotonic() + (state.upcoming_sleep or 0.0) >= self.deadline


def _why_it_ended(failure: _Failure, attempts: int, max_attempts: int, deadline: float) -> str:
    """The middle of the reason: what the last attempt got, and why no other followed."""
    if not failure.retryable:
        return failure.what
    if attempts >= max_attempts:
        return f"{failure.what} on the last allowed attempt (ORCHESTRATOR_AGENT_MAX_ATTEMPTS)"
    if time.monotonic() >= deadline:
        return f"{failure.what}, and no time is left before the deadline"
    if failure.retry_after is not None:
        return f"{failure.what}, more than the time left before the deadline"
    return f"{failure.what}, and a retry in {failure.wait or 0:.2f} s would pass the deadline"


class RemoteAgent:
    """One remote agent. Holds no connection of its own, so it is cheap to build per day.run and
    safe to call from several threads at once."""

    def __init__(self, name: str, url: str, token: str) -> None:
        self.name = name
        self.url = url
        self.token = token

    def fetch(self, request: AgentRequest, *, etag: str, deadline: float) -> AgentAnswer:
        """The agent's answer to `request`, revalidating `etag` when given; raises
        `AgentUnavailable` once a failure cannot be retried, the attempts run out, or waiting
        would pass `deadline` (a `time.monotonic()` value).

        Each attempt's timeout is cut to the time left (at most ORCHESTRATOR_AGENT_TIMEOUT);
        tenacity retries what asking again can fix, after the agent's Retry-After or the backoff
        (with up to 25 % of jitter, so that learners whose agent failed at once do not all come
        back at once), and stops before a wait that would pass the deadline.
        """
        started = time.monotonic()
        if deadline <= started:
            raise self._unavailable("timeout", "no time was left before the deadline", 0, started)
        max_attempts = max(1, settings.ORCHESTRATOR_AGENT_MAX_ATTEMPTS)
        content = json.dumps(request.body()).encode()
        headers = {
            "Authorization": f"Bearer {self.token}",
            "X-Idempotency-Key": request.idempotency_key,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        if etag:
            headers["If-None-Match"] = etag
        retrying = Retrying(
            stop=stop_after_attempt(max_attempts) | _StopBeforeDeadline(deadline),
            wait=_wait,
            retry=retry_if_exception(lambda error: isinstance(error, _Failure) and error.retryable),
            reraise=True,
        )
        try:
            return retrying(self._attempt, content, headers, etag, deadline=deadline)
        except _Failure as failure:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise self._unavailable(
                failure.code, _why_it_ended(failure, attempts, max_attempts, deadline), attempts, started
            ) from None

    def _attempt(self, content: bytes, headers: dict[str, str], etag: str, *, deadline: float) -> AgentAnswer:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Failure("timeout", "no time is left before the deadline", retryable=False)
        timeout = min(settings.ORCHESTRATOR_AGENT_TIMEOUT, left)
        try:
            with _shared_client().stream(
                "POST", self.url, content=content, headers=headers, timeout=timeout
            ) as response:
                body = self._read(response, deadline)
        except httpx.TimeoutException as error:
            raise _Failure("timeout", f"no answer within {timeout:.2f} s") from error
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as error:
            raise _Failure(
                "unreachable", f"the URL is not valid ({self._url_setting})", retryable=False
            ) from error
        except httpx.RequestError as error:
            raise _Failure("unreachable", f"could not talk to the agent ({type(error).__name__})") from error
        return self._judge(response, body, etag)

    def _read(self, response: httpx.Response, deadline: float) -> bytes:
        """The body, given up on past the deadline (a per-read timeout alone would let an agent
        that trickles bytes run past it) or past the size limit."""
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > _MAX_BODY_BYTES:
                raise _Failure(
                    "bad_answer",
                    f"{response.status_code} with a body over {_MAX_BODY_BYTES:,} bytes",
                    retryable=False,
                )
            if time.monotonic() > deadline:
                raise _Failure("timeout", "the answer was still arriving at the deadline")
            chunks.append(chunk)
        return b"".join(chunks)

    def _judge(self, response: httpx.Response, raw: bytes, etag: str) -> AgentAnswer:
        status = response.status_code
        if status == 304:
            if not etag:
                raise _Failure("bad_answer", "304 to a request without If-None-Match", retryable=False)
            return AgentAnswer(data=None, etag=etag, not_modified=True)
        body = _json_object(raw)
        label = f"{status}{_agent_code(body)}"
        if status == 429:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            asked = "" if retry_after is None else f", asked to wait {retry_after:g} s (Retry-After)"
            raise _Failure("rate_limited", f"{label} — rate limited{asked}", retry_after=retry_after)
        if status >= 500:
            raise _Failure(f"http_{status}", label)
        if not 200 <= status < 300:
            raise _Failure(f"http_{status}", f"{label} — {self._refusal(status)}", retryable=False)
        if body is None or not isinstance(body.get("ok"), bool):
            raise _Failure(
                "bad_answer", f"{status} with a body that is not the agent contract", retryable=False
            )
        if body["ok"] is False:
            raise _Failure("agent_error", f"{label} — the agent answered ok: false", retryable=False)
        if not isinstance(body.get("data"), dict):
            raise _Failure("bad_answer", f"{status} ok: true without a data object", retryable=False)
        return AgentAnswer(data=body["data"], etag=response.headers.get("ETag", ""))

    def _refusal(self, status: int) -> str:
        if status in (401, 403):
            return "the agent refused our token (ORCHESTRATOR_AGENT_TOKEN)"
        if status == 404:
            return f"no agent at this URL ({self._url_setting})"
        if 300 <= status < 400:
            return f"the agent redirected us elsewhere (check {self._url_setting})"
        return "the agent rejected the request"

    @property
    def _url_setting(self) -> str:
        return f"ORCHESTRATOR_{self.name.upper()}_URL"

    def _unavailable(self, code: str, what: str, attempts: int, started: float) -> AgentUnavailable:
        spent = time.monotonic() - started
        plural = "" if attempts == 1 else "s"
        return AgentUnavailable(
            f"{self.name}: {what}; {attempts} attempt{plural} in {spent:.1f} s", code=code
        )


def _json_object(raw: bytes) -> dict[str, object] | None:
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _agent_code(body: dict[str, object] | None) -> str:
    """The agent's own error code, as " (code)", when it is a short token and not free text."""
    code = body.get("code") if body else None
    return f" ({code})" if isinstance(code, str) and _AGENT_CODE.match(code) else ""


def _retry_after(raw: str | None) -> float | None:
    """Retry-After in seconds, whether given as seconds or as an HTTP date; None if absent or unreadable."""
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
