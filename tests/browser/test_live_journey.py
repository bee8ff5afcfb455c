"""A teacher watches a live session in a real Chromium: the page connects to its stream of
server-sent events, and each tick the conductor makes is pushed into the page in place, the
score first, then the alert when a third of the class leaves. The test thread plays the
platform (its signed batches go through the ingest) and the conductor (it calls the tick)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from classroom.live.api import parse_events
from classroom.live.services import session_start, signals_ingest, tick
from tests.browser.pages import log_in, mark_for_swap

pytestmark = pytest.mark.browser


def _batch(session, events: list[dict]) -> None:
    now = timezone.now()
    signals_ingest(session=session, events=parse_events({"events": events}, now=now), now=now)


def _event(kind: str, who: str, n: int, **extra) -> dict:
    return {
        "id": f"{kind}-{who}-{n}",
        "type": kind,
        "at": timezone.now().isoformat(),
        "participant": who,
        **extra,
    }


def test_the_stream_pushes_each_tick_and_the_alert_into_the_page(transactional_db, live_school, page: Page):
    session = session_start(school_class=live_school.school_class, topic="Fractions", by=live_school.teacher)
    log_in(page, live_school.teacher.username)
    page.goto(f"/live/{session.pk}/")
    expect(page.locator("#live-connection")).to_contain_text("Live:")
    expect(page.locator(".live-big")).to_have_text("—")
    mark_for_swap(page, ".live-panel")

    people = [f"kid{n}" for n in range(12)]
    _batch(session, [_event("join", who, 0) for who in people] + [_event("chat", who, 1) for who in people])
    tick([session.pk], now=timezone.now() + timedelta(seconds=5))

    expect(page.locator(".live-panel:not([data-stale])")).to_have_count(1)
    expect(page.locator(".live-big")).not_to_have_text("—")
    assert page.evaluate("window.__marker") == 1, "the page reloaded instead of taking the pushed panel"
    expect(page.locator(".live-cards")).to_contain_text("Chat per minute")

    _batch(session, [_event("leave", who, 2) for who in people[:6]])
    tick([session.pk], now=timezone.now() + timedelta(seconds=10))

    expect(page.locator(".live-anomalies")).to_contain_text("6 of 12 participants left")
    expect(page.locator(".live-anomalies .badge")).to_have_text("critical")
    assert "kid" not in page.content(), "a participant's id reached the page"


def test_without_eventsource_the_page_polls_its_panel(transactional_db, live_school, page: Page):
    session = session_start(school_class=live_school.school_class, topic="Fractions", by=live_school.teacher)
    page.add_init_script("delete window.EventSource")
    log_in(page, live_school.teacher.username)
    page.goto(f"/live/{session.pk}/")
    expect(page.locator("#live-connection")).to_contain_text("checking every 5 seconds")
    _batch(session, [_event("join", "kid0", 0), _event("chat", "kid0", 1)])
    tick([session.pk], now=timezone.now() + timedelta(seconds=5))
    expect(page.locator(".live-big")).not_to_have_text("—", timeout=12_000)
