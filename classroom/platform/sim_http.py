"""What the simulators on loopback share: the learning platform's (`classroom.platform.simulator`)
and the remote agents' (`tutor.orchestrator.agents_sim`). A JSON request handler with the control
routes (`GET /_sim/report`, `POST /_sim/reset`, `POST /_sim/config`), a threading server, and the
fault knobs their commands take (latency, errors, 429s, outage)."""

from __future__ import annotations

import json
import random
import threading
from dataclasses import asdict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.core.management.base import CommandError, CommandParser


class SimState:
    """What a simulator remembers, shared by its request threads: its config, a lock, and the
    seeded random numbers its faults are drawn from."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.rng = random.Random(config.seed)
        self.reset()

    def reset(self) -> None:
        raise NotImplementedError

    def roll(self) -> float:
        with self.lock:
            return self.rng.random()


class SimHandler(BaseHTTPRequestHandler):
    """A simulator's handler: `_handle(method)` answers everything but the control routes, which
    `_control` serves from the server's `state` (its `config` with `update`, `report()` and
    `reset()`). `_answered(status)` is told of every answer, to count what the simulator sent."""

    server: SimServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY the second waits for the
    # client's delayed ACK (~40 ms on every answer of a keep-alive connection).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self._handle("POST")

    def _handle(self, method: str) -> None:
        raise NotImplementedError

    def _answered(self, status: int) -> None:
        """Told of each answer before it goes out; the simulators count their own traffic here."""

    def _json_default(self, value: Any) -> Any:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    def _control(self, method: str, path: str, raw: bytes) -> None:
        state = self.server.state
        if method == "GET" and path == "/_sim/report":
            return self._send(HTTPStatus.OK, {"ok": True, "data": state.report()})
        if method == "POST" and path == "/_sim/reset":
            state.reset()
            return self._send(HTTPStatus.OK, {"ok": True, "data": state.report()})
        if method == "POST" and path == "/_sim/config":
            try:
                state.config.update(json.loads(raw or b"{}"))
            except (ValueError, TypeError, AttributeError) as error:
                return self._fail(HTTPStatus.BAD_REQUEST, str(error), "bad_request")
            return self._send(HTTPStatus.OK, {"ok": True, "data": asdict(state.config)})
        return self._fail(HTTPStatus.NOT_FOUND, f"no route for {method} {path}", "not_found")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _fail(self, status: HTTPStatus, error: str, code: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"ok": False, "error": error, "code": code}, headers)

    def _send(
        self, status: HTTPStatus, payload: dict[str, Any] | None, headers: dict[str, str] | None = None
    ) -> None:
        """`payload` as JSON with `headers`; None sends the headers alone (a 304 has no body)."""
        self._answered(int(status))
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if payload is None:
                self.end_headers()
                return
            encoded = json.dumps(payload, default=self._json_default).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up waiting (a hang outlived its timeout): nobody is left to answer.
            self.close_connection = True


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], state: Any, handler: type[SimHandler], *, verbose: bool = False
    ) -> None:
        self.state = state
        self.verbose = verbose
        super().__init__(address, handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def serve_in_thread(server: SimServer, name: str) -> None:
    """Serve in a background thread (tests, benchmarks); `server.shutdown()` stops it. A short
    poll keeps `shutdown()` quick: tests start and stop a simulator each."""
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
    ).start()


def add_fault_arguments(parser: CommandParser, *, port: int, token: str, retry_after: type) -> None:
    """The options both simulator commands take: where to listen, the token they accept, and
    their faults."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--token", default=token, help=f"the bearer token it accepts ({token})")
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every answer")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 503")
    parser.add_argument("--rate-limit-rate", type=float, default=0.0, help="share of requests answered 429")
    parser.add_argument(
        "--retry-after", type=retry_after, default=retry_after(1), help="seconds, in 429 answers"
    )
    parser.add_argument("--outage", action="store_true", help="answer every request 503")
    parser.add_argument("--verbose", action="store_true", help="log every request")


def fault_options(options: dict[str, Any]) -> dict[str, Any]:
    """The fault knobs of a simulator's config from the command's options, refused with one
    readable line when out of range."""
    for name in ("error_rate", "rate_limit_rate"):
        if not 0 <= options[name] <= 1:
            raise CommandError(f"--{name.replace('_', '-')} must be between 0 and 1; got {options[name]}")
    if options["latency_ms"] < 0 or options["retry_after"] < 0:
        raise CommandError("--latency-ms and --retry-after must be zero or more")
    names = ("token", "latency_ms", "error_rate", "rate_limit_rate", "retry_after", "outage")
    return {name: options[name] for name in names}


def serve_until_interrupted(server: SimServer) -> None:
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def listen(server_class: type[SimServer], options: dict[str, Any], config: Any) -> SimServer:
    """The command's server on --host:--port, or the command's one-line error."""
    try:
        return server_class((options["host"], options["port"]), config, verbose=options["verbose"])
    except OSError as error:
        raise CommandError(
            f"cannot listen on {options['host']}:{options['port']}: {error.strerror}"
        ) from None
