"""The platform simulator playing a live class into a live session, in real time: every 5 seconds
it sends the class's events of those seconds as a signed batch, as the platform would
(`POST /api/live/sessions/<id>/signals`, `X-Platform-Signature`). The demo's script: a lively
start, a third of the class leaving at 25 s (a mass exit, raised on the next tick), the rest
falling quiet from 40 s (a drop, then low engagement) and coming back to life at 2:30, so a new
user sees the score fall and the warnings appear within a minute, and the recovery after.

`platform_sim --live-session ID` plays it from the command line; the live page's "Play a demo
class" button asks the running simulator to (`POST /_sim/live`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from classroom.platform.live_class import LiveClass, Phase

logger = logging.getLogger(__name__)
STEP_SECONDS = 5
GIVE_UP_AFTER = 3
DEMO_SCRIPT = (
    Phase(25),
    Phase(15, leave=10),
    Phase(110, activity=0.08),
    Phase(120, activity=1.0, join=10),
)


@dataclass
class Played:
    batches: int = 0
    events: int = 0
    failures: int = 0


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def play(
    *,
    session_id: int,
    app_url: str,
    secret: str,
    script: tuple[Phase, ...] = DEMO_SCRIPT,
    stop: threading.Event | None = None,
    seed: int = 7,
) -> Played:
    """Send the scripted class's events to the session as they happen, until the script ends,
    `stop` is set, the app answers that the session has ended (409), or its first three batches
    all failed (nothing is listening)."""
    stop = stop or threading.Event()
    start = datetime.now(UTC)
    live_class = LiveClass(start=start, script=script, seed=seed)
    url = f"{app_url.rstrip('/')}/api/live/sessions/{session_id}/signals"
    played = Played()
    began = time.monotonic()
    with httpx.Client(timeout=10) as client:
        for second in range(0, int(live_class.seconds), STEP_SECONDS):
            wait = began + second + STEP_SECONDS - time.monotonic()
            if stop.wait(max(0.0, wait)):
                break
            body = json.dumps({"events": live_class.events(second, second + STEP_SECONDS)}).encode()
            status, accepted = _send(client, url, body, secret)
            if status == 409:
                break
            if status == 200:
                played.batches += 1
                played.events += accepted
                continue
            played.failures += 1
            if played.batches == 0 and played.failures >= GIVE_UP_AFTER:
                break
    return played


def _send(client: httpx.Client, url: str, body: bytes, secret: str) -> tuple[int | None, int]:
    """The app's status for one signed batch (None when it could not be reached) and the events
    it took."""
    headers = {"Content-Type": "application/json", "X-Platform-Signature": sign(body, secret)}
    try:
        response = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as error:
        logger.warning("live demo: could not send a batch: %s", error)
        return None, 0
    if response.status_code != 200:
        logger.warning("live demo: the app answered %s: %s", response.status_code, response.text[:200])
        return response.status_code, 0
    return 200, response.json()["accepted"]


def play_in_thread(*, session_id: int, app_url: str, secret: str) -> threading.Thread:
    thread = threading.Thread(
        target=play,
        kwargs={"session_id": session_id, "app_url": app_url, "secret": secret},
        name=f"live-demo-{session_id}",
        daemon=True,
    )
    thread.start()
    return thread
