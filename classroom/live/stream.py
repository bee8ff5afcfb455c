"""The live dashboard's stream under ASGI: one fan-out per server process, so that a thousand
open tabs cost one query per poll and one render per changed session, not one of each per tab.

1. A stream subscribes to its session with a small queue; it gets the panel this process last
   rendered for the session at once, or the poller is woken to render it (whole on every
   (re)connect, as before).
2. The poller asks the database, once per LIVE_STREAM_POLL_SECONDS, for the status and latest
   tick of every session that has a stream open in this process (one query), renders the panel
   of each session whose state changed once, and offers that frame to each of its streams.
3. A session that ended (or was deleted) gets its last frame and then the end; its streams close.
4. With no stream left the poller stops; the next stream starts it again.

The poller's database work runs in one thread of its own, not in a request's: Django's ASGI
handler gives every request a thread of its own for sync code and keeps it until the response
ends, so a stream that queried from its request held a database connection for as long as the
tab stayed open (and PostgreSQL refuses connections past max_connections, 100 by default). A
stream gives its request's connection back before it starts; the idle thread stays. The panel is the same
for every viewer of a session (class-level figures, nothing per user), so one render serves all.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import weakref
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.db.models import OuterRef, Subquery
from django.template.loader import render_to_string

from classroom.live import selectors
from classroom.live.models import LiveSession, LiveTick

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15

# The fan-out's database thread: one per process, so its connection is one per process too.
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-stream")


def sessions_by_id(session_ids: list[int]) -> dict[int, LiveSession]:
    """The sessions of `session_ids` that still exist, each annotated with `latest`, the time of
    its latest tick (None before the first). One query, an index look-up per session."""
    latest = LiveTick.objects.filter(session=OuterRef("pk")).order_by("-at").values("at")[:1]
    sessions = LiveSession.objects.filter(pk__in=session_ids).annotate(latest=Subquery(latest))
    return {session.pk: session for session in sessions}


def state_of(session: LiveSession | None) -> tuple[Any, Any]:
    """What a new frame is sent for: a new tick, or a change of status (the end)."""
    return (None, None) if session is None else (session.latest, session.status)


def panel_frame(session: LiveSession) -> str:
    """The whole panel as one server-sent event named `tick` (what htmx's SSE extension swaps in)."""
    html = render_to_string("classroom/live/_panel.html", {"live": selectors.dashboard(session)})
    return "event: tick\n" + "".join(f"data: {line}\n" for line in html.splitlines()) + "\n"


def release() -> None:
    """Give the poller thread's database connection back as a request's end would (closed unless
    CONN_MAX_AGE keeps it); inside a transaction (a test's) it is not ours to close."""
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


def close_connection() -> None:
    """A stream outlives its request: give its database connection back now, in the thread that
    used it, not when the server next recycles that thread; inside a transaction (a test's) it is
    not the stream's to close."""
    if not connection.in_atomic_block:
        connection.close()


def _in_thread(function: Any) -> Any:
    return sync_to_async(function, thread_sensitive=False, executor=_EXECUTOR)


def _offer(queue: asyncio.Queue[str | None], item: str | None) -> None:
    """Put without waiting: a tab that reads slowly loses old panels, not the newest one (each
    frame is the whole panel) nor the end."""
    while queue.full():
        queue.get_nowait()
    queue.put_nowait(item)


class Hub:
    """One event loop's streams, by session, and the poller that feeds them."""

    def __init__(self) -> None:
        self.streams: dict[int, set[asyncio.Queue[str | None]]] = {}
        self.frames: dict[int, str] = {}  # the latest panel of each session with a stream
        self.seen: dict[int, tuple[Any, Any]] = {}
        self.wake = asyncio.Event()
        self.poller: asyncio.Task[None] | None = None

    def subscribe(self, session_id: int) -> asyncio.Queue[str | None]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=2)
        self.streams.setdefault(session_id, set()).add(queue)
        if session_id in self.frames:
            queue.put_nowait(self.frames[session_id])
        else:
            self.wake.set()
        if self.poller is None or self.poller.done():
            # A context of its own: not the first request's (its thread, its audit context).
            self.poller = asyncio.create_task(self._run(), context=contextvars.Context())
        return queue

    def unsubscribe(self, session_id: int, queue: asyncio.Queue[str | None]) -> None:
        queues = self.streams.get(session_id)
        if queues is None:
            return
        queues.discard(queue)
        if not queues:
            self._forget(session_id)

    def _forget(self, session_id: int) -> None:
        self.streams.pop(session_id, None)
        self.frames.pop(session_id, None)
        self.seen.pop(session_id, None)

    async def _run(self) -> None:
        while self.streams:
            self.wake.clear()
            try:
                await self.poll()
            except Exception:  # the database away: streams keep their keep-alives, polls go on
                logger.exception("the live streams' poll failed")
            finally:
                await _in_thread(release)()
            with contextlib.suppress(TimeoutError):  # woken early by a stream that needs a panel
                await asyncio.wait_for(self.wake.wait(), settings.LIVE_STREAM_POLL_SECONDS)

    async def poll(self) -> None:
        """One query for every session with a stream; one render per session that changed, each
        offered to the session's streams as soon as it is ready."""
        ids = list(self.streams)
        sessions = await _in_thread(sessions_by_id)(ids)
        for session_id in ids:
            session = sessions.get(session_id)
            state = state_of(session)
            if session_id not in self.streams or self.seen.get(session_id) == state:
                continue
            frame = "" if session is None else await _in_thread(panel_frame)(session)
            queues = self.streams.get(session_id)
            if queues is None:  # its last tab went away meanwhile
                continue
            self.seen[session_id], self.frames[session_id] = state, frame
            for queue in queues:
                if frame:
                    _offer(queue, frame)
                if state[1] != LiveSession.Status.LIVE:
                    _offer(queue, None)
            if state[1] != LiveSession.Status.LIVE:
                self._forget(session_id)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """This event loop's hub (a server process has one loop; a test, one per test)."""
    loop = asyncio.get_running_loop()
    if loop not in _hubs:
        _hubs[loop] = Hub()
    return _hubs[loop]


async def frames(session_id: int) -> AsyncIterator[str]:
    """One open tab's stream: the retry hint, the whole panel, then the panel on every new tick or
    the session's end, a keep-alive comment after KEEPALIVE_SECONDS of quiet, until
    LIVE_STREAM_SECONDS have passed (the browser then reconnects) or the session ended."""
    # The access check opened a connection in the request's thread, which Django's ASGI handler
    # keeps (idle) until the response ends: give it back now, not when the tab closes.
    await sync_to_async(close_connection)()
    yield "retry: 2000\n\n"
    fan_out = hub()
    queue = fan_out.subscribe(session_id)
    ends_at = time.monotonic() + settings.LIVE_STREAM_SECONDS
    sent = False
    try:
        while True:
            left = ends_at - time.monotonic()
            if sent and left <= 0:
                return
            try:
                wait = min(KEEPALIVE_SECONDS, left) if sent else KEEPALIVE_SECONDS
                frame = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                if sent and time.monotonic() >= ends_at:
                    return
                yield ": keep-alive\n\n"
                continue
            if frame is None:
                return
            yield frame
            sent = True
    finally:
        fan_out.unsubscribe(session_id, queue)
