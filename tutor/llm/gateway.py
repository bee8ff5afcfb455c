"""The one way the product asks a language model: Anthropic's Messages API, or the caller's rules.

`complete(...)` always returns a `Reply` a teacher can read. When there is no key, or the model
service fails in any way, the caller's deterministic `fallback` answers instead and the reply
says so (`source="fallback"`, `fallback_reason`), which the UI shows as such.

1. Names become pseudonyms before anything leaves the process (`pseudonyms`).
2. The model is called through the `anthropic` SDK, which retries 408/409/429/5xx/529 and
   timeouts itself (`LLM_MAX_RETRIES`); what still fails reaches us as one exception.
   No temperature is sent: the 2.x SDK speaks API version 2026-10-21, which refuses sampling
   parameters, and its `messages.create` no longer takes them.
3. Tool calls are validated against the offered tool's schema; an invalid one is dropped,
   never executed, and listed in `Reply.filtered`.
4. The text, the model's or the fallback's, passes the content filter (`tutor.llm.safety`).
5. One audit event `llm.call` records the call: parameters, tokens, latency, the SHA-256 of the
   request, the source, what was filtered; never the prompt or a student's name. A refusal of
   our credentials or request (400/401/403/404...) also opens a Failure with the remediation;
   the next successful call clears it.

A tool-use round trip: the caller appends `assistant_turn(reply)` and
`tool_results_turn([(call, result, is_error), ...])` to its messages and calls `complete` again.

Do not call `complete` inside a transaction that holds locks: a call can take
`LLM_TIMEOUT * (LLM_MAX_RETRIES + 1)` plus back-off.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import anthropic
from django.conf import settings
from django.db import transaction

from audit import chain
from audit.models import ActivityEvent, Failure
from audit.services import failure_clear, new_event, record_events, record_failure
from tutor.llm import safety, schema
from tutor.llm.pseudonyms import Pseudonyms

VERB = "llm.call"
RULES = "rules"
_FAILURE_PREFIX = f"{VERB}|http-"


@dataclass(frozen=True)
class Tool:
    """A tool offered to the model. Its schema is checked when declared (`tutor.llm.schema`)."""

    name: str
    description: str
    input_schema: dict[str, Any]

    def __post_init__(self) -> None:
        if self.input_schema.get("type") != "object":
            raise ValueError(f"tool {self.name}: input_schema must describe an object")
        schema.check_schema(self.input_schema, where=f"tool {self.name}")

    def as_param(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "input_schema": self.input_schema}


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class FallbackAnswer:
    """What a caller's rule-based fallback returns. Tool calls are (name, input) pairs; the
    gateway gives them ids ("rules_1", ...) and validates them like the model's."""

    text: str
    tool_calls: Sequence[tuple[str, dict[str, Any]]] = ()


@dataclass
class Reply:
    text: str
    tool_calls: list[ToolCall]
    source: str
    fallback_reason: str
    model: str
    input_tokens: int
    output_tokens: int
    latency_ms: int
    filtered: list[str] = field(default_factory=list)
    event_id: int = 0

    @property
    def is_fallback(self) -> bool:
        return self.source == "fallback"


@dataclass(frozen=True)
class _Params:
    model: str
    max_tokens: int
    timeout: float
    max_retries: int

    @classmethod
    def from_settings(cls) -> _Params:
        return cls(
            model=settings.LLM_MODEL,
            max_tokens=settings.LLM_MAX_TOKENS,
            timeout=settings.LLM_TIMEOUT,
            max_retries=settings.LLM_MAX_RETRIES,
        )

    def audited(self) -> dict[str, Any]:
        # The SDK version fixes the API version it sends (anthropic-version), so it is a parameter too.
        return {
            "max_tokens": self.max_tokens,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "sdk": f"anthropic {anthropic.__version__}",
        }


@dataclass
class _Answer:
    """A model's or a fallback's answer, before validation and filtering."""

    text: str
    tool_calls: list[ToolCall]
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    details: dict[str, Any] = field(default_factory=dict)


class _Unavailable(Exception):
    """The model gave no usable answer. `remediation` is set when it will not fix itself."""

    def __init__(
        self,
        reason: str,
        *,
        details: dict[str, Any] | None = None,
        remediation: str = "",
        severity: str = Failure.Severity.NORMAL,
        fingerprint: str = "",
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details or {}
        self.remediation = remediation
        self.severity = severity
        self.fingerprint = fingerprint


def complete(**ask: Any) -> Reply:
    """Ask the model (or, failing that, `fallback`) and return a filtered, audited reply; the
    fields are `Ask`'s.

    `actor` is the user the call is made for, or a string such as "system:proactive" for
    automation. `purpose` says why, in a few words; it becomes the event's rationale.
    With `pseudonyms`, the reply's text and tool inputs speak of "Student A": show them to a
    teacher through `pseudonyms.unmask` / `unmask_data`, map labels with `student_id_for`.
    """
    [reply] = complete_many([Ask(**ask)])
    return reply


@dataclass(frozen=True)
class Ask:
    """One request of `complete_many`: what `complete` takes."""

    purpose: str
    system: str
    messages: list[dict[str, Any]]
    fallback: Callable[[], FallbackAnswer | str]
    actor: Any
    organisation_id: int | None
    student_id: int | None = None
    class_id: int | None = None
    pseudonyms: Pseudonyms | None = None
    tools: Sequence[Tool] = ()
    tool_choice: dict[str, Any] | None = None


def complete_many(asks: Sequence[Ask], *, concurrency: int = 1) -> list[Reply]:
    """`complete` for many requests at once (the proactive dispatcher's batch of messages): up to
    `concurrency` model calls in flight on threads (the SDK's client is thread-safe), each
    fallback run in the calling thread (it may read the database), and the calls' events
    appended to the log in one transaction. The replies come back in the order of `asks`."""
    params = _Params.from_settings()
    requests = [_request(params, a.system, a.messages, a.tools, a.tool_choice, a.pseudonyms) for a in asks]
    workers = min(concurrency, len(asks)) if settings.ANTHROPIC_API_KEY else 1
    if workers <= 1:
        asked = [_asked(request, params) for request in requests]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm") as pool:
            asked = list(pool.map(lambda request: _asked(request, params), requests))
    replies: list[Reply] = []
    calls: list[_Call] = []
    for ask, request, (answer, failed, seconds) in zip(asks, requests, asked, strict=True):
        started = time.monotonic()
        if failed is not None:
            answer = _ask_fallback(ask.fallback)
        tool_calls, notes = _validated(answer.tool_calls, {tool.name: tool for tool in ask.tools})
        filtered = safety.filter_reply(answer.text)
        reply = Reply(
            text=filtered.text,
            tool_calls=tool_calls,
            source="fallback" if failed else "model",
            fallback_reason=failed.reason if failed else "",
            model=answer.model,
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
            latency_ms=round((seconds + time.monotonic() - started) * 1000),
            filtered=filtered.notes + notes,
        )
        replies.append(reply)
        calls.append(
            _Call(
                ask=ask,
                reply=reply,
                prompt_sha256=hashlib.sha256(chain.canonical(request)).hexdigest(),
                blocked=filtered.blocked,
                extra={**answer.details, **(failed.details if failed else {})},
                failed=failed,
            )
        )
    for reply, event in zip(replies, _record_calls(calls, params), strict=True):
        reply.event_id = event.pk
    return replies


def _asked(request: dict[str, Any], params: _Params) -> tuple[_Answer | None, _Unavailable | None, float]:
    """The model's answer or why there is none, and the seconds it took."""
    started = time.monotonic()
    try:
        return _ask_model(request, params), None, time.monotonic() - started
    except _Unavailable as unavailable:
        return None, unavailable, time.monotonic() - started


def assistant_turn(reply: Reply) -> dict[str, Any]:
    """The assistant message to append before answering `reply`'s tool calls, rebuilt with its
    tool_use blocks (the API pairs each tool_result with one by id). Rejected calls are left
    out: they never ran, so they get no tool_result either."""
    content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
    content += [
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}
        for call in reply.tool_calls
    ]
    if not content:
        # The API refuses an empty turn; ask again instead (its filtered notes say what was dropped).
        raise ValueError("this reply has no text and no accepted tool call to send back")
    return {"role": "assistant", "content": content}


def tool_results_turn(results: Sequence[tuple[ToolCall, dict[str, Any] | str, bool]]) -> dict[str, Any]:
    """The user message carrying the results of tool calls: (call, result or error text, is_error).
    A dict result is sent as JSON text."""
    content = []
    for call, result, is_error in results:
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": call.id,
            "content": result if isinstance(result, str) else json.dumps(result, ensure_ascii=False),
        }
        if is_error:
            block["is_error"] = True
        content.append(block)
    return {"role": "user", "content": content}


# One client per process and configuration: the SDK's httpx2 client is thread-safe and keeps
# connections alive (no TLS handshake per call). The process id is part of the key because a
# django-q2 worker forks after start-up, and a forked child must not share its parent's sockets.
_clients: dict[tuple[Any, ...], anthropic.Anthropic] = {}
_clients_lock = threading.Lock()
_MAX_CLIENTS = 4


def _client(params: _Params) -> anthropic.Anthropic:
    key = (
        os.getpid(),
        settings.ANTHROPIC_API_KEY,
        settings.ANTHROPIC_BASE_URL,
        params.max_retries,
        params.timeout,
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            if len(_clients) >= _MAX_CLIENTS:
                # Settings changed (tests, a rotated key): forget the oldest; a call still using
                # it keeps its reference, and the garbage collector closes it afterwards.
                _clients.pop(next(iter(_clients)))
            client = _clients[key] = anthropic.Anthropic(
                api_key=settings.ANTHROPIC_API_KEY,
                base_url=settings.ANTHROPIC_BASE_URL or None,
                max_retries=params.max_retries,
                timeout=params.timeout,
            )
    return client


def _request(
    params: _Params,
    system: str,
    messages: list[dict[str, Any]],
    tools: Sequence[Tool],
    tool_choice: dict[str, Any] | None,
    pseudonyms: Pseudonyms | None,
) -> dict[str, Any]:
    """The exact body sent: what the prompt hash covers."""
    request: dict[str, Any] = {
        "model": params.model,
        "max_tokens": params.max_tokens,
        "system": pseudonyms.mask(system) if pseudonyms else system,
        "messages": [_masked_message(message, pseudonyms) for message in messages],
    }
    if tools:
        request["tools"] = [tool.as_param() for tool in tools]
    if tool_choice:
        request["tool_choice"] = tool_choice
    return request


def _masked_message(message: dict[str, Any], pseudonyms: Pseudonyms | None) -> dict[str, Any]:
    return {**message, "content": _masked_content(message["content"], pseudonyms)}


def _masked_content(content: Any, pseudonyms: Pseudonyms | None) -> Any:
    """A copy of a message's content with every text the model reads masked; block types, ids
    and tool names are left alone."""
    if pseudonyms is None:
        return json.loads(json.dumps(content))
    if isinstance(content, str):
        return pseudonyms.mask(content)
    blocks = []
    for block in content:
        block = dict(block)
        if block.get("type") == "text":
            block["text"] = pseudonyms.mask(block["text"])
        elif block.get("type") == "tool_use":
            block["input"] = pseudonyms.mask_data(block["input"])
        elif block.get("type") == "tool_result" and "content" in block:
            block["content"] = _masked_content(block["content"], pseudonyms)
        blocks.append(block)
    return blocks


def _ask_model(request: dict[str, Any], params: _Params) -> _Answer:
    if not settings.ANTHROPIC_API_KEY:
        raise _Unavailable("no ANTHROPIC_API_KEY set")
    try:
        message = _client(params).messages.create(**request)
    except anthropic.APITimeoutError as err:
        raise _Unavailable(
            f"the model timed out after {params.timeout:g} s", details={"attempts": _attempts(err)}
        ) from err
    except anthropic.APIConnectionError as err:
        raise _Unavailable(
            "the model service could not be reached", details={"attempts": _attempts(err)}
        ) from err
    except anthropic.APIStatusError as err:
        raise _status_failure(err) from err
    except (anthropic.AnthropicError, ValueError) as err:
        # ValueError: a body that claims to be JSON and is not.
        raise _Unavailable(f"the model's answer could not be read ({type(err).__name__})") from err
    return _read(message)


_STATUS_WORDS = {
    400: "bad request",
    401: "authentication failed",
    403: "permission denied",
    404: "not found",
    408: "request timeout",
    409: "conflict",
    413: "request too large",
    422: "unprocessable request",
    429: "rate limited",
    500: "internal error",
    502: "bad gateway",
    503: "unavailable",
    504: "gateway timeout",
    529: "overloaded",
}
# Statuses the SDK retries: they fix themselves, so they do not open a Failure.
_TRANSIENT = {408, 409, 429}


def _status_failure(err: anthropic.APIStatusError) -> _Unavailable:
    code = err.status_code
    reason = f"the model service answered {code} ({_STATUS_WORDS.get(code, 'error')})"
    details = {
        "http_status": code,
        "error_type": err.type or "",
        "request_id": err.request_id or "",
        "attempts": _attempts(err),
    }
    if code >= 500 or code in _TRANSIENT:
        return _Unavailable(reason, details=details)
    if code == 401:
        remediation = "the API key was refused: set ANTHROPIC_API_KEY to a valid Anthropic API key"
    elif code == 403:
        remediation = (
            "the API key is not allowed to do this: check the key's workspace permissions and LLM_MODEL"
        )
    elif code == 404:
        remediation = "the model or endpoint was not found: check LLM_MODEL and ANTHROPIC_BASE_URL"
    else:
        remediation = (
            "the model service refused the request: check LLM_MODEL, LLM_MAX_TOKENS and the tools of "
            "this purpose; the event's prompt_sha256 identifies the request"
        )
    return _Unavailable(
        reason,
        details=details,
        remediation=remediation,
        severity=Failure.Severity.HIGH if code in (401, 403) else Failure.Severity.NORMAL,
        fingerprint=f"{_FAILURE_PREFIX}{code}",
    )


def _attempts(err: anthropic.APIError) -> int | None:
    """How many HTTP attempts the SDK made: it numbers its retries in a request header."""
    try:
        return int(err.request.headers["x-stainless-retry-count"]) + 1
    except (AttributeError, KeyError, ValueError):
        return None


def _read(message: Any) -> _Answer:
    """Our own check of the answer's shape: without strict validation the SDK hands back a str
    for a non-JSON body, a list for a JSON array, and blocks with missing fields."""
    if not isinstance(message, anthropic.types.Message) or not isinstance(message.content, list):
        raise _Unavailable("the model's answer was malformed: not a message")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in message.content:
        kind = getattr(block, "type", None)
        if kind == "text" and isinstance(getattr(block, "text", None), str):
            texts.append(block.text)
        elif kind == "tool_use" and isinstance(getattr(block, "name", None), str):
            # An input that is not an object is kept as it came: validation rejects it with a reason.
            calls.append(ToolCall(id=str(block.id), name=block.name, input=getattr(block, "input", None)))
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise _Unavailable(f"the model's answer was malformed: an unreadable {kind or 'untyped'} block")
    if not texts and not calls:
        raise _Unavailable("the model's answer was empty")
    usage = getattr(message, "usage", None)
    return _Answer(
        text="\n\n".join(text for text in texts if text),
        tool_calls=calls,
        model=message.model if isinstance(message.model, str) else "",
        input_tokens=_count(getattr(usage, "input_tokens", 0)),
        output_tokens=_count(getattr(usage, "output_tokens", 0)),
        details={"stop_reason": message.stop_reason or "", "message_id": message.id or ""},
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _ask_fallback(fallback: Callable[[], FallbackAnswer | str]) -> _Answer:
    """The caller's rules. If they raise, that is a bug in our code and it propagates."""
    answer = fallback()
    if isinstance(answer, str):
        answer = FallbackAnswer(answer)
    calls = [
        ToolCall(id=f"rules_{n}", name=name, input=given)
        for n, (name, given) in enumerate(answer.tool_calls, start=1)
    ]
    return _Answer(text=answer.text, tool_calls=calls, model=RULES)


def _validated(calls: list[ToolCall], offered: dict[str, Tool]) -> tuple[list[ToolCall], list[str]]:
    """The calls that may run, and a note for each that may not."""
    accepted: list[ToolCall] = []
    notes: list[str] = []
    for call in calls:
        tool = offered.get(call.name)
        if tool is None:
            notes.append(f"tool {call.name[:64]}: not offered, call dropped")
            continue
        found = schema.problems(call.input, tool.input_schema)
        if found:
            notes.append(f"tool {call.name}: input rejected: {'; '.join(found)}")
        else:
            accepted.append(call)
    return accepted, notes


@dataclass
class _Call:
    """One answered request, waiting for its audit event."""

    ask: Ask
    reply: Reply
    prompt_sha256: str
    blocked: bool
    extra: dict[str, Any]
    failed: _Unavailable | None


def _record_calls(calls: Sequence[_Call], params: _Params) -> list[ActivityEvent]:
    """Each call's one audit event (and a Failure for a call that needs someone), in one
    transaction; the events in the order of `calls`."""
    events: dict[int, ActivityEvent] = {}
    plain: list[tuple[int, ActivityEvent]] = []
    with transaction.atomic():
        for n, call in enumerate(calls):
            ask, reply = call.ask, call.reply
            scope = {
                **({"actor_name": ask.actor} if isinstance(ask.actor, str) else {"actor": ask.actor}),
                "organisation_id": ask.organisation_id,
                "student_id": ask.student_id,
                "class_id": ask.class_id,
            }
            details = {
                "purpose": ask.purpose,
                "source": reply.source,
                "fallback_reason": reply.fallback_reason,
                "model": params.model,
                "answered_by": reply.model,
                "parameters": params.audited(),
                "input_tokens": reply.input_tokens,
                "output_tokens": reply.output_tokens,
                "latency_ms": reply.latency_ms,
                "prompt_sha256": call.prompt_sha256,
                "pseudonymised": ask.pseudonyms is not None,
                "tools_offered": sorted(tool.name for tool in ask.tools),
                "tools_called": [tool_call.name for tool_call in reply.tool_calls],
                "filtered": reply.filtered,
                "blocked": call.blocked,
                **call.extra,
            }
            if call.failed is not None and call.failed.remediation:
                events[n] = record_failure(
                    verb=VERB,
                    remediation=call.failed.remediation,
                    severity=call.failed.severity,
                    fingerprint=call.failed.fingerprint,
                    why=f"{ask.purpose}: {call.failed.reason}",
                    details=details,
                    **scope,
                )
            else:
                plain.append((n, new_event(verb=VERB, why=ask.purpose, details=details, **scope)))
        for (n, _), event in zip(plain, record_events([event for _, event in plain]), strict=True):
            events[n] = event
        for organisation_id in sorted(
            {call.ask.organisation_id for call in calls if call.reply.source == "model"}, key=str
        ):
            _clear_fixed_failures(organisation_id)
    return [events[n] for n in range(len(calls))]


def _clear_fixed_failures(organisation_id: int | None) -> None:
    """A successful call proves the key and request work again: close what said otherwise."""
    open_ones = Failure.objects.filter(
        organisation_id=organisation_id, state=Failure.State.OPEN, fingerprint__startswith=_FAILURE_PREFIX
    ).values_list("fingerprint", flat=True)
    for fingerprint in list(open_ones):
        failure_clear(
            organisation_id=organisation_id,
            fingerprint=fingerprint,
            actor_name="system:llm",
            why="a later model call succeeded",
        )
