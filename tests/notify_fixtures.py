"""Real receivers on loopback for the notifications: an SMTP server and a Slack-like webhook."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

# The secret part of an incoming-webhook URL, which must never be written anywhere.
WEBHOOK_SECRET = "T0000SECRET/B0000SECRET/xoxSecretToken0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Mailbox:
    """What the SMTP server received: one parsed message per DATA, with its envelope recipients."""

    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"

    @property
    def subjects(self) -> list[str]:
        return [str(message["Subject"]) for message in self.messages]


@pytest.fixture
def smtp_server(settings) -> Iterator[Mailbox]:
    """An SMTP server on 127.0.0.1 and a free port; Django sends to it through the SMTP backend."""
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = controller.hostname
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_TIMEOUT = 5
    yield mailbox
    controller.stop()


class WebhookServer(ThreadingHTTPServer):
    """Records the JSON body of every POST; answers `fail_status` to the next `fail_next` posts
    (a `fail()` call sets both)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _WebhookHandler)
        self.bodies: list[dict[str, Any]] = []  # the posts answered 200
        self.refused: list[dict[str, Any]] = []  # the posts answered with an error
        self.fail_next = 0
        self.fail_status = 500
        self.delay = 0.0  # seconds before each answer, to hold two senders in flight at once
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/services/{WEBHOOK_SECRET}"

    def fail(self, times: int, status: int = 500) -> None:
        with self.lock:
            self.fail_next, self.fail_status = times, status

    @property
    def texts(self) -> list[str]:
        return [body["text"] for body in self.bodies]


class _WebhookHandler(BaseHTTPRequestHandler):
    server: WebhookServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's hook
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(self.server.delay)
        with self.server.lock:
            failing = self.server.fail_next > 0
            if failing:
                self.server.fail_next -= 1
                self.server.refused.append(body)
            else:
                self.server.bodies.append(body)
            status = self.server.fail_status if failing else 200
        # Like Slack's answers; the 502 echoes the URL, as some proxies' error pages do.
        answer = {
            200: b"ok",
            404: b"no_service",
            410: b"channel_is_archived",
            502: f"bad gateway for {self.path}".encode(),
        }.get(status, b"")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        pass


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    """A Slack-like incoming webhook on 127.0.0.1, in a thread for the test's duration."""
    server = WebhookServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
