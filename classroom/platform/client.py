"""The learning platform's HTTP client: timeouts, retries with backoff, Retry-After, bounded concurrency.

Every failure becomes a `PlatformError` that says whether to retry and what an operator should
do about it (`hint`), so a sync run can show a teacher or an admin the remedy, not a traceback.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import httpx
from django.conf import settings
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

T = TypeVar("T")


class PlatformError(Exception):
    """A call to the platform failed; `hint` tells a person what to do about it."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        retryable: bool = False,
        retry_after: float | None = None,
        hint: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after
        self.hint = hint


@dataclass(frozen=True)
class StudentChanges:
    as_of: datetime
    performance: list[dict[str, Any]]
    plan_progress: list[dict[str, Any]]
    assignments: list[dict[str, Any]]


@dataclass(frozen=True)
class DispatchReceipt:
    dispatch_id: str
    replayed: bool
    status: int


def _hint_for(status: int, code: str, message: str) -> str:
    if status in (401, 403):
        return (
            f"platform returned {status}: the service token expired or is wrong; "
            "renew PLATFORM_TOKEN in the settings"
        )
    if status == 404 and code == "unknown_student":
        return "the platform does not know this student's id; check the student's platform id in the admin"
    if status == 429:
        return "the platform kept rate-limiting us; lower PLATFORM_CONCURRENCY or try again later"
    if status >= 500:
        return (
            f"the platform answered {status} ({message}); try again later, "
            "and check the platform's status if it persists"
        )
    return f"the platform refused the request ({status} {code}: {message}); report this to the developers"


class PlatformClient:
    """One client per sync or dispatch; thread-safe, so a pool of threads can share it."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        token: str | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
        backoff_base: float | None = None,
        max_retry_after: float | None = None,
        concurrency: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = (base_url or settings.PLATFORM_BASE_URL).rstrip("/")
        self.timeout = timeout if timeout is not None else settings.PLATFORM_TIMEOUT
        self.max_attempts = max_attempts or settings.PLATFORM_MAX_ATTEMPTS
        self.backoff_base = backoff_base if backoff_base is not None else settings.PLATFORM_BACKOFF_BASE
        self.max_retry_after = (
            max_retry_after if max_retry_after is not None else settings.PLATFORM_MAX_RETRY_AFTER
        )
        self.concurrency = max(1, concurrency or settings.PLATFORM_CONCURRENCY)
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=self.timeout,
            headers={"Authorization": f"Bearer {token or settings.PLATFORM_TOKEN}"},
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PlatformClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Calls

    def fetch_changes(self, platform_id: str, *, since: datetime | None) -> StudentChanges:
        """Everything about one student that changed on the platform since `since` (all, if None)."""
        params = {"since": since.isoformat()} if since else {}
        data = self._retrying(
            lambda: self._request("GET", f"/v1/students/{platform_id}/changes", params=params)
        )
        try:
            return StudentChanges(
                as_of=datetime.fromisoformat(data["data"]["as_of"]),
                performance=[_performance(r) for r in data["data"]["performance"]],
                plan_progress=[_milestone(r) for r in data["data"]["plan_progress"]],
                assignments=[_assignment(r) for r in data["data"]["assignments"]],
            )
        except (KeyError, TypeError, ValueError) as error:
            raise PlatformError(
                f"unexpected answer for {platform_id}: {error!r}",
                code="bad_payload",
                hint="the platform's answer did not have the expected shape; report this to the developers",
            ) from error

    def dispatch(
        self,
        platform_id: str,
        *,
        kind: str,
        payload: Any,
        idempotency_key: str,
        on_attempt: Callable[[int, int | None, str], None] | None = None,
    ) -> DispatchReceipt:
        """Send once, however often it is retried: every attempt carries the same idempotency key.

        `on_attempt(number, status, error)` is told the outcome of each attempt as it ends.
        """
        attempt = 0

        def send() -> dict[str, Any]:
            nonlocal attempt
            attempt += 1
            try:
                answer = self._request(
                    "POST",
                    f"/v1/students/{platform_id}/dispatches",
                    json={"kind": kind, "payload": payload},
                    headers={"X-Idempotency-Key": idempotency_key},
                )
            except PlatformError as error:
                if on_attempt:
                    on_attempt(attempt, error.status, str(error))
                raise
            if on_attempt:
                on_attempt(attempt, answer["_status"], "")
            return answer

        answer = self._retrying(send)
        return DispatchReceipt(
            dispatch_id=answer["data"]["dispatch_id"],
            replayed=answer["data"]["replayed"],
            status=answer["_status"],
        )

    def map_concurrently(
        self, items: Iterable[T], call: Callable[[T], Any]
    ) -> Iterator[tuple[T, Any, PlatformError | None]]:
        """Run `call(item)` for every item on at most `concurrency` threads, yielding
        `(item, result, error)` as each finishes. Items are read lazily and at most twice the
        concurrency are in flight, so memory does not grow with the number of items; closing
        the iterator early cancels what has not started."""
        window = self.concurrency * 2
        items = iter(items)
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="platform") as pool:
            pending: dict[Future, T] = {}
            try:
                while True:
                    while len(pending) < window:
                        item = next(items, _END)
                        if item is _END:
                            break
                        pending[pool.submit(call, item)] = item
                    if not pending:
                        return
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        item = pending.pop(future)
                        error = future.exception()
                        if error is not None and not isinstance(error, PlatformError):
                            raise error
                        yield item, None if error else future.result(), error
            finally:
                for future in pending:
                    future.cancel()

    # Plumbing

    def _retrying(self, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, PlatformError) and e.retryable),
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(call)

    def _wait(self, state: RetryCallState) -> float:
        """Retry-After when the platform gives one; else 1 s, 2 s, 4 s… (times the base) plus up to 25%."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, PlatformError) and error.retry_after is not None:
            return error.retry_after
        delay = self.backoff_base * 2 ** (state.attempt_number - 1)
        return delay + random.uniform(0, delay * 0.25)

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as error:
            raise PlatformError(
                f"{method} {path} timed out after {self.timeout:g} s",
                code="timeout",
                retryable=True,
                hint="the platform did not answer in time; try again later, or raise PLATFORM_TIMEOUT",
            ) from error
        except httpx.TransportError as error:
            raise PlatformError(
                f"could not reach the platform at {self.base_url}: {error}",
                code="unreachable",
                retryable=True,
                hint=f"could not reach the platform at {self.base_url}; check PLATFORM_BASE_URL and network",
            ) from error
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.is_success and body.get("ok"):
            return {**body, "_status": response.status_code}
        status = response.status_code
        code, message = str(body.get("code", "")), str(body.get("error", response.reason_phrase))
        retry_after = _retry_after(response) if status == 429 else None
        retryable = status >= 500 or (status == 429 and (retry_after or 0) <= self.max_retry_after)
        hint = _hint_for(status, code, message)
        if status == 429 and not retryable:
            hint = (
                f"the platform asked us to wait {retry_after:g} s, longer than PLATFORM_MAX_RETRY_AFTER; "
                "try again later"
            )
        raise PlatformError(
            f"platform returned {status} {code}: {message}",
            status=status,
            code=code,
            retryable=retryable,
            retry_after=retry_after,
            hint=hint,
        )


_END = object()


def _retry_after(response: httpx.Response) -> float:
    raw = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return 1.0


def _performance(row: dict[str, Any]) -> dict[str, Any]:
    mastery = row["mastery"]
    confidence = row["confidence"]
    if mastery is not None and not 0 <= float(mastery) <= 1:
        raise ValueError(f"mastery {mastery} outside 0..1 on {row['date']}")
    if confidence is not None and not 1 <= int(confidence) <= 5:
        raise ValueError(f"confidence {confidence} outside 1..5 on {row['date']}")
    return {
        "date": date.fromisoformat(row["date"]),
        "study_minutes": max(0, int(row["study_minutes"])),
        "mastery": None if mastery is None else float(mastery),
        "confidence": None if confidence is None else int(confidence),
        "checked_in": bool(row["checked_in"]),
    }


def _text(row: dict[str, Any], key: str, limit: int, *, cut: bool = False) -> str:
    """A text the platform sent, as our columns hold it: an id longer than its column, or any text
    with a NUL (PostgreSQL cannot store one), makes the answer malformed; a title is cut to fit."""
    value = str(row[key])
    if "\x00" in value:
        raise ValueError(f"{key} holds a NUL character")
    if len(value) > limit and not cut:
        raise ValueError(f"{key} is {len(value):,} characters long; at most {limit}")
    return value[:limit]


def _milestone(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "platform_id": _text(row, "id", 64),
        "title": _text(row, "title", 200, cut=True),
        "due_on": date.fromisoformat(row["due_on"]),
        "completed_on": date.fromisoformat(row["completed_on"]) if row["completed_on"] else None,
    }


def _assignment(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "platform_id": _text(row, "id", 64),
        "class_platform_id": row.get("class_id"),
        "title": _text(row, "title", 200, cut=True),
        "due_at": datetime.fromisoformat(row["due_at"]),
        "submitted_at": datetime.fromisoformat(row["submitted_at"]) if row["submitted_at"] else None,
    }
