"""The live streams' fan-out under ASGI (`classroom.live.stream`): every open tab of a process fed
by one query per poll and one render per changed session; a session's end closes its tabs; a tab
that goes away leaves the fan-out, and the poller stops with the last one."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from classroom.live import stream
from classroom.live.services import session_end, session_start, tick

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fast(settings):
    settings.LIVE_STREAM_POLL_SECONDS = 0.01
    settings.LIVE_STREAM_SECONDS = 60


@pytest.fixture
def counted(monkeypatch):
    """The session ids of each poll, and the session of each render."""
    polls: list[list[int]] = []
    renders: list[int] = []
    sessions_by_id, panel_frame = stream.sessions_by_id, stream.panel_frame

    def counting_sessions(session_ids):
        polls.append(sorted(session_ids))
        return sessions_by_id(session_ids)

    def counting_frame(session):
        renders.append(session.pk)
        return panel_frame(session)

    monkeypatch.setattr(stream, "sessions_by_id", counting_sessions)
    monkeypatch.setattr(stream, "panel_frame", counting_frame)
    return polls, renders


async def _start(school_class, teacher):
    return await sync_to_async(session_start)(school_class=school_class, topic="Fractions", by=teacher)


async def _opened(session_id: int):
    """A tab's stream, past its retry hint and its first panel (which it returns)."""
    tab = stream.frames(session_id)
    assert await anext(tab) == "retry: 2000\n\n"
    return tab, await anext(tab)


def test_one_query_reads_the_state_of_every_open_session(live_school, django_assert_num_queries):
    ticked = session_start(school_class=live_school.school_class, topic="Fractions", by=live_school.teacher)
    quiet = session_start(school_class=live_school.colleague_class, topic="Sums", by=live_school.colleague)
    tick([ticked.pk], now=timezone.now() + timedelta(seconds=5))
    with django_assert_num_queries(1):
        found = stream.sessions_by_id([ticked.pk, quiet.pk, 999_999])
    assert set(found) == {ticked.pk, quiet.pk}  # a session deleted meanwhile is simply absent
    assert found[ticked.pk].latest is not None
    assert stream.state_of(found[quiet.pk]) == (None, "live")


async def test_two_tabs_of_a_session_share_each_poll_and_each_render(live_school, fast, counted):
    polls, renders = counted
    session = await _start(live_school.school_class, live_school.teacher)
    other = await _start(live_school.colleague_class, live_school.colleague)
    first, panel = await _opened(session.pk)
    second, same = await _opened(session.pk)
    third, _ = await _opened(other.pk)
    assert panel.startswith("event: tick\n") and same == panel  # the second tab got the panel at once
    assert sorted(renders) == sorted([session.pk, other.pk])  # a render per session, not per tab
    await sync_to_async(tick)([session.pk, other.pk], now=timezone.now() + timedelta(seconds=5))
    for tab in (first, second, third):
        assert "Nobody is in the session." in await anext(tab)  # the tick's state, pushed
    assert sorted(renders) == sorted([session.pk, other.pk] * 2)
    assert polls[-1] == sorted([session.pk, other.pk])  # one poll for every open session
    for tab in (first, second, third):
        await tab.aclose()


async def test_a_tab_of_a_session_that_ends_gets_its_last_frame_and_closes(live_school, fast):
    session = await _start(live_school.school_class, live_school.teacher)
    tab, _ = await _opened(session.pk)
    await sync_to_async(session_end)(session=session, by=live_school.teacher)
    assert (await anext(tab)).startswith("event: tick\n")
    with pytest.raises(StopAsyncIteration):
        await anext(tab)
    assert session.pk not in stream.hub().streams


async def test_a_tab_that_goes_away_leaves_and_the_poller_stops_with_the_last(live_school, fast):
    session = await _start(live_school.school_class, live_school.teacher)
    first, _ = await _opened(session.pk)
    second, _ = await _opened(session.pk)
    fan_out = stream.hub()
    await first.aclose()
    assert len(fan_out.streams[session.pk]) == 1
    await second.aclose()
    assert fan_out.streams == {} and fan_out.frames == {}
    await asyncio.wait_for(fan_out.poller, 1)  # nothing left to poll for


async def test_a_quiet_tab_gets_keep_alives_until_its_time_is_up(live_school, fast, settings, monkeypatch):
    monkeypatch.setattr(stream, "KEEPALIVE_SECONDS", 0.05)
    session = await _start(live_school.school_class, live_school.teacher)
    tab, _ = await _opened(session.pk)
    assert await anext(tab) == ": keep-alive\n\n"
    settings.LIVE_STREAM_SECONDS = 0
    closed, _ = await _opened(session.pk)
    with pytest.raises(StopAsyncIteration):  # after its whole panel, a stream past its time ends
        await anext(closed)
    await tab.aclose()
