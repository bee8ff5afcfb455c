"""The live dashboard (`/live/<id>/`): the page, its panel (what polling fetches), the stream of
server-sent events that pushes the panel to the page on every tick, and the start and end of a
session from the console.

The stream sends the whole panel each time (so a tab that reconnects is whole again at once), as
an event named `tick` that htmx's SSE extension swaps in. Under an ASGI server it is the
process's fan-out (`classroom.live.stream`: one query per poll for every open tab); under WSGI
(runserver, the demo) a plain generator that polls for its own tab. Each stream ends after
LIVE_STREAM_SECONDS or when the session ends, and the browser reconnects.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from classroom.access import get_class_for_user, get_live_session_for_user
from classroom.live import reports, selectors, stream
from classroom.live.models import LiveSession
from classroom.live.services import LiveError, session_end, session_start
from classroom.live.stream import KEEPALIVE_SECONDS
from classroom.views import staff_required


@require_GET
@staff_required
def live_page(request: HttpRequest, pk: int) -> HttpResponse:
    session = get_live_session_for_user(request.user, pk)
    context = {"live": selectors.dashboard(session), "session": session, "demo": settings.DEBUG}
    return render(request, "classroom/live/page.html", context)


@require_GET
@staff_required
def live_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The panel alone: what the page polls when the browser has no EventSource."""
    session = get_live_session_for_user(request.user, pk)
    return render(request, "classroom/live/_panel.html", {"live": selectors.dashboard(session)})


@require_GET
@staff_required
def live_stream(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    session = get_live_session_for_user(request.user, pk)
    asgi = isinstance(request, ASGIRequest)
    content = stream.frames(session.pk) if asgi else _frames(_Feed(session.pk))
    response = StreamingHttpResponse(content, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy in front must pass each event on at once
    return response


@require_POST
@staff_required
def live_start(request: HttpRequest, pk: int) -> HttpResponse:
    school_class = get_class_for_user(request.user, pk)
    if not request.user.can_act_on_alerts:
        raise PermissionDenied
    topic = request.POST.get("topic", "").strip()[:200]
    if not topic:
        messages.error(request, "Give the live session a topic.")
        return redirect("classroom:class_detail", pk=pk)
    try:
        session = session_start(school_class=school_class, topic=topic, by=request.user)
    except LiveError as error:
        messages.error(request, error.detail)
        return redirect("classroom:class_detail", pk=pk)
    return redirect("classroom:live_page", pk=session.pk)


@require_POST
@staff_required
def live_demo(request: HttpRequest, pk: int) -> HttpResponse:
    """The demo only (DEBUG): ask the platform simulator to play its live class into the session."""
    session = get_live_session_for_user(request.user, pk)
    if not settings.DEBUG or not request.user.can_act_on_alerts:
        raise PermissionDenied
    try:
        answer = httpx.post(
            f"{settings.PLATFORM_BASE_URL.rstrip('/')}/_sim/live",
            json={
                "session_id": session.pk,
                "app_url": request.build_absolute_uri("/"),
                "secret": session.organisation.live_secret,
            },
            timeout=5,
        )
        answer.raise_for_status()
    except httpx.HTTPError as error:
        messages.error(
            request, f"The platform simulator at {settings.PLATFORM_BASE_URL} did not start it ({error})."
        )
    else:
        messages.success(
            request, "The simulator is playing a demo class: watch the score in the next minute."
        )
    return redirect("classroom:live_page", pk=pk)


@require_POST
@staff_required
def live_end(request: HttpRequest, pk: int) -> HttpResponse:
    session = get_live_session_for_user(request.user, pk)
    if not request.user.can_act_on_alerts:
        raise PermissionDenied
    session_end(session=session, by=request.user)
    return redirect("classroom:live_page", pk=pk)


class _Feed:
    """One open tab's stream under WSGI (a thread per tab there anyway): the panel whenever a new
    tick or the session's end arrives, a keep-alive comment otherwise, until LIVE_STREAM_SECONDS
    have passed or the session ended."""

    def __init__(self, session_id: int) -> None:
        self.session_id = session_id
        self.seen: tuple[object, ...] | None = None
        self.done = False
        self.ends_at = time.monotonic() + settings.LIVE_STREAM_SECONDS
        self.quiet_since = time.monotonic()

    def frame(self) -> str:
        """The next thing to send ("" for nothing yet). One small query while nothing changed."""
        session = stream.sessions_by_id([self.session_id]).get(self.session_id)
        state = stream.state_of(session)  # a session deleted meanwhile ends the stream
        if time.monotonic() >= self.ends_at or state[1] != LiveSession.Status.LIVE:
            self.done = True
        if state != self.seen:
            self.seen = state
            self.quiet_since = time.monotonic()
            return "" if session is None else stream.panel_frame(session)
        if time.monotonic() - self.quiet_since >= KEEPALIVE_SECONDS:
            self.quiet_since = time.monotonic()
            return ": keep-alive\n\n"
        return ""


def _frames(feed: _Feed) -> Iterator[str]:
    yield "retry: 2000\n\n"
    try:
        while not feed.done:
            frame = feed.frame()
            if frame:
                yield frame
            if not feed.done:
                time.sleep(settings.LIVE_STREAM_POLL_SECONDS)
    finally:
        stream.close_connection()  # when it ends, or when the tab goes away


@require_GET
@staff_required
def live_report(request: HttpRequest, pk: int) -> HttpResponse:
    """The session report: the whole session's score, time in each category and anomalies."""
    session = get_live_session_for_user(request.user, pk)
    return render(request, "classroom/live/report.html", {"report": reports.report(session)})


@require_GET
@staff_required
def live_report_csv(request: HttpRequest, pk: int) -> HttpResponse:
    """The report's data as CSV: the ticks, or with `?part=anomalies` the anomalies.

    Two files rather than two sections in one: a spreadsheet sorts, filters, charts and pivots a
    file as one table under one header row, and a second header in the middle of the column
    breaks all of that (and pandas' or Excel's import); each part keeps its own columns whole."""
    session = get_live_session_for_user(request.user, pk)
    part = request.GET.get("part", "ticks")
    if part not in reports.CSV_PARTS:
        return HttpResponse("part: is ticks or anomalies\n", status=400, content_type="text/plain")
    reports.report_export(session=session, part=part, by=request.user)
    rows = reports.tick_rows(session) if part == "ticks" else reports.anomaly_rows(session)
    content = reports.csv_chunks(reports.CSV_PARTS[part], rows)
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="live-session-{session.pk}-{part}.csv"'
    return response
