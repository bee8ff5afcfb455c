"""A fake Anthropic Messages API on loopback, for driving the real SDK in tests.

It answers `POST /v1/messages` in the real response shape, checks the few things the real
service checks that our code could get wrong (the bearer key, required fields, no sampling
parameters, a `tool_result` for every `tool_use` of the previous assistant turn), and answers
from a script:

    fake_llm.script(text("Hello"), tool_use("save_plan", {"weeks": 2}), status(529))

Each HTTP request takes the next scripted answer, so a call the SDK retries consumes one
answer per attempt: script `fake_llm.attempts` failures to make a call fail for good.
With nothing queued it answers a short text.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.conf import settings as django_settings

API_KEY = "sk-ant-test-fake-key"
DEFAULT_TEXT = "Fake answer."
# How long the SDK is told to wait before retrying an error (the real service sends retry-after
# on 429 and 529); short, so retry tests stay fast.
RETRY_AFTER_MS = 20

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Answer:
    """One scripted answer: a message (`content`), an error `status`, or a `raw` body."""

    content: tuple[dict[str, Any], ...] = ()
    status: int = 200
    raw: bytes | None = None
    content_type: str = "application/json"
    delay: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None


def text(value: str, *, input_tokens: int | None = None, output_tokens: int | None = None) -> Answer:
    return Answer(
        content=({"type": "text", "text": value},), input_tokens=input_tokens, output_tokens=output_tokens
    )


def tool_use(name: str, input: dict[str, Any], *, preface: str = "", id: str = "") -> Answer:  # noqa: A002
    blocks: list[dict[str, Any]] = [{"type": "text", "text": preface}] if preface else []
    blocks.append({"type": "tool_use", "id": id, "name": name, "input": input})
    return Answer(content=tuple(blocks))


def status(code: int, message: str = "") -> Answer:
    return Answer(status=code, raw=_error_body(code, message or f"fake error {code}"))


def delay(seconds: float, then: Answer | None = None) -> Answer:
    """Answer only after `seconds`: longer than LLM_TIMEOUT and the client gives up first."""
    then = then or text(DEFAULT_TEXT)
    return Answer(
        content=then.content, status=then.status, raw=then.raw, content_type=then.content_type, delay=seconds
    )


def raw(body: str | bytes, *, code: int = 200, content_type: str = "application/json") -> Answer:
    """A body as given: for malformed answers."""
    return Answer(
        status=code, raw=body.encode() if isinstance(body, str) else body, content_type=content_type
    )


def _error_body(code: int, message: str) -> bytes:
    kind = _ERROR_TYPES.get(code, "api_error")
    return json.dumps(
        {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}
    ).encode()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeAnthropic:
    url: str = ""
    api_key: str = API_KEY
    requests: list[Received] = field(default_factory=list)
    _queue: deque[Answer] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def script(self, *answers: Answer | str) -> None:
        """Queue what the next requests get, in order; a plain string is a text answer."""
        with self._lock:
            self._queue.extend(text(a) if isinstance(a, str) else a for a in answers)

    @property
    def attempts(self) -> int:
        """HTTP requests one failing call makes: the first and the SDK's retries."""
        return django_settings.LLM_MAX_RETRIES + 1

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def sent_text(self) -> str:
        """Everything the server received, bodies and headers, as one string to search."""
        return json.dumps([[r.headers, r.body] for r in self.requests], ensure_ascii=False)

    def _next(self) -> Answer:
        with self._lock:
            return self._queue.popleft() if self._queue else text(DEFAULT_TEXT)

    def _record(self, received: Received) -> None:
        with self._lock:
            self.requests.append(received)

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}_fake{next(self._ids):04d}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._send(400, _error_body(400, "the body is not JSON"))
        fake._record(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        if self.path.split("?")[0] != "/v1/messages":
            return self._send(404, _error_body(404, f"no route {self.path}"))
        # The SDK authenticates with a bearer header; the real API also takes x-api-key.
        given = self.headers.get("Authorization", "").removeprefix("Bearer ") or self.headers.get("x-api-key")
        if given != fake.api_key:
            return self._send(401, _error_body(401, "invalid x-api-key"))
        problem = _invalid(body)
        if problem:
            return self._send(400, _error_body(400, problem))
        answer = fake._next()
        if answer.delay and fake._stopping.wait(answer.delay):
            return
        if answer.raw is not None:
            return self._send(answer.status, answer.raw, answer.content_type)
        self._send(200, json.dumps(_message(fake, body, answer)).encode())

    def _send(self, code: int, payload: bytes, content_type: str = "application/json") -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("request-id", "req_fake")
            if code in (429, 529) or code >= 500:
                self.send_header("retry-after-ms", str(RETRY_AFTER_MS))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); nothing to answer


def _invalid(body: dict[str, Any]) -> str:
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return f"{name}: Field required"
    # API version 2026-10-21 (what the 2.x SDK sends) refuses sampling parameters at any value.
    for name in ("temperature", "top_p", "top_k"):
        if name in body:
            return f"{name}: Extra inputs are not permitted"
    messages = body["messages"]
    for n, message in enumerate(messages):
        if message.get("role") not in ("user", "assistant"):
            return f"messages.{n}.role: must be user or assistant"
        if not message.get("content"):
            return f"messages.{n}: content must not be empty"
    # Like the real API: every tool_use of an assistant turn is answered in the next user turn.
    for n, (asked, answered) in enumerate(itertools.pairwise(messages)):
        if asked["role"] != "assistant" or not isinstance(asked["content"], list):
            continue
        wanted = {b["id"] for b in asked["content"] if b.get("type") == "tool_use"}
        content = answered["content"] if isinstance(answered["content"], list) else []
        given = {b.get("tool_use_id") for b in content if b.get("type") == "tool_result"}
        if wanted - given:
            return f"messages.{n + 1}: tool_use ids without tool_result blocks: {sorted(wanted - given)}"
    return ""


def _message(fake: FakeAnthropic, body: dict[str, Any], answer: Answer) -> dict[str, Any]:
    content = [
        {**block, "id": block.get("id") or fake._next_id("toolu")} if block["type"] == "tool_use" else block
        for block in answer.content
    ]
    said = "".join(block.get("text", "") for block in content)
    return {
        "id": fake._next_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": answer.input_tokens or max(1, len(json.dumps(body)) // 4),
            "output_tokens": answer.output_tokens or max(1, len(said) // 4),
        },
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fake: FakeAnthropic) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)


@pytest.fixture
def fake_llm(settings: Any) -> Iterator[FakeAnthropic]:
    """A fresh fake Messages API per test, reached by the real SDK through the settings."""
    fake = FakeAnthropic()
    server = _Server(fake)
    # A short poll interval: shutdown() waits for it, at the end of every test.
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-anthropic", daemon=True
    ).start()
    host, port = server.server_address[:2]
    fake.url = f"http://{host}:{port}"
    settings.ANTHROPIC_API_KEY = fake.api_key
    settings.ANTHROPIC_BASE_URL = fake.url
    settings.LLM_TIMEOUT = 1.0
    settings.LLM_MAX_RETRIES = 1
    yield fake
    fake._stopping.set()
    server.shutdown()
    server.server_close()
