"""The live dashboard in the console: starting a session from the class page, the page and its
panel, the stream of server-sent events, ending it; scoped to the class's teachers; no student
named anywhere on it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from classroom.live.models import LiveSession
from classroom.live.services import session_end, session_start, tick
from classroom.platform.live_class import Phase
from tests import factories
from tests.conftest import login


@pytest.fixture
def played(replay):
    """A live session with three minutes of a class, a third of which left at the end."""
    session = replay(Phase(150), Phase(30, leave=10))
    session.run()
    return session.session


def test_a_teacher_starts_a_live_session_from_the_class_page(client, live_school):
    login(client, live_school.teacher)
    page = client.get(f"/classes/{live_school.school_class.pk}/").content.decode()
    assert "Start a live session" in page
    response = client.post(f"/classes/{live_school.school_class.pk}/live/", {"topic": "Fractions"})
    session = LiveSession.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/live/{session.pk}/"
    page = client.get(f"/classes/{live_school.school_class.pk}/").content.decode()
    assert "Open the live dashboard" in page


def test_a_start_without_a_topic_or_while_one_is_live_says_why(client, live_school):
    login(client, live_school.teacher)
    url = f"/classes/{live_school.school_class.pk}/live/"
    assert "Give the live session a topic." in client.post(url, {"topic": " "}, follow=True).content.decode()
    client.post(url, {"topic": "Fractions"})
    again = client.post(url, {"topic": "Decimals"}, follow=True).content.decode()
    assert "has a live session already" in again
    assert LiveSession.objects.count() == 1


def test_the_page_shows_the_score_signals_chart_and_alerts(client, live_school, played):
    login(client, live_school.teacher)
    page = client.get(f"/live/{played.pk}/").content.decode()
    assert f'sse-connect="/live/{played.pk}/stream/"' in page
    assert "Chat per minute" in page and "Poll participation" in page
    assert 'class="critical"' in page  # the critical line
    assert "Mass exit" in page and "10 of 30 participants left" in page
    assert 'class="mark warning"' in page or 'class="mark critical"' in page


def test_the_page_names_no_participant_and_shows_no_chat(client, live_school, played):
    login(client, live_school.teacher)
    page = client.get(f"/live/{played.pk}/").content.decode()
    assert "p0-0" not in page
    assert "a message" not in page


def test_the_panel_alone_is_what_polling_fetches(client, live_school, played):
    login(client, live_school.teacher)
    panel = client.get(f"/live/{played.pk}/panel/").content.decode()
    assert panel.lstrip().startswith('<div class="live-panel"')
    assert "<html" not in panel


def test_the_page_takes_a_fixed_number_of_queries(client, live_school, played, django_assert_max_num_queries):
    login(client, live_school.teacher)
    with django_assert_max_num_queries(12):
        assert client.get(f"/live/{played.pk}/").status_code == 200


def test_another_teacher_gets_404_and_a_learner_no_console(client, live_school, played):
    login(client, live_school.outsider)
    for path in ("", "panel/", "stream/"):
        assert client.get(f"/live/{played.pk}/{path}").status_code == 404
    assert client.post(f"/live/{played.pk}/end/").status_code == 404
    learner = factories.UserFactory(role="learner", organisation=live_school.organisation)
    login(client, learner)
    assert client.get(f"/live/{played.pk}/").status_code == 403


def test_the_stream_sends_the_panel_at_once_then_each_new_tick_then_the_end(client, live_school, settings):
    settings.LIVE_STREAM_POLL_SECONDS = 0.01
    settings.LIVE_STREAM_SECONDS = 60
    session = session_start(school_class=live_school.school_class, topic="Fractions", by=live_school.teacher)
    login(client, live_school.teacher)
    response = client.get(f"/live/{session.pk}/stream/")
    assert response["Content-Type"] == "text/event-stream"
    assert "no-cache" in response["Cache-Control"]
    frames = iter(response.streaming_content)
    assert next(frames) == b"retry: 2000\n\n"
    first = next(frames).decode()
    assert first.startswith("event: tick\n")
    assert all(line.startswith("data: ") for line in first.strip().splitlines()[1:])
    tick([session.pk], now=timezone.now() + timedelta(seconds=5))
    second = next(frames).decode()
    assert "event: tick" in second
    assert "Nobody is in the session." in second  # the tick's state, pushed
    session_end(session=session, by=live_school.teacher)
    last = next(frames).decode()
    assert "event: tick" in last
    assert list(frames) == []  # the stream closes once the session has ended


def test_a_stream_ends_after_its_time_and_the_browser_reconnects(client, live_school, settings):
    settings.LIVE_STREAM_POLL_SECONDS = 0.01
    settings.LIVE_STREAM_SECONDS = 0
    session = session_start(school_class=live_school.school_class, topic="Fractions", by=live_school.teacher)
    login(client, live_school.teacher)
    frames = list(client.get(f"/live/{session.pk}/stream/").streaming_content)
    assert frames[0] == b"retry: 2000\n\n"
    assert frames[1].startswith(b"event: tick\n")  # whole again on every connection
    assert len(frames) == 2


def test_the_teacher_ends_the_session_from_the_page(client, live_school, played):
    login(client, live_school.teacher)
    response = client.post(f"/live/{played.pk}/end/", follow=True)
    assert "This live session ended at" in response.content.decode()
    played.refresh_from_db()
    assert not played.is_live


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_stream_is_asynchronous(async_client, live_school, settings):
    """What an ASGI server (uvicorn, in production) runs: the same events from an async
    generator, so an open tab holds no thread."""
    settings.LIVE_STREAM_POLL_SECONDS = 0.01
    settings.LIVE_STREAM_SECONDS = 0
    session = await sync_to_async(session_start)(
        school_class=live_school.school_class, topic="Fractions", by=live_school.teacher
    )
    await async_client.aforce_login(live_school.teacher)
    response = await async_client.get(f"/live/{session.pk}/stream/")
    assert response.is_async
    frames = [frame async for frame in response.streaming_content]
    assert frames[0] == b"retry: 2000\n\n"
    assert frames[1].startswith(b"event: tick\n")
