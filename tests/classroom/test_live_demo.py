"""The demo's live class: the platform simulator plays scripted participants into a live session
over real HTTP, signed, and the score and the warning follow; started from the command line or
from the live page's button in the demo."""

from __future__ import annotations

import httpx
import pytest
from django.core.management import CommandError, call_command

from classroom.live.models import LiveAnomaly, LiveEvent
from classroom.live.services import session_start, tick
from classroom.platform import live_player, simulator
from classroom.platform.live_class import Phase
from tests.classroom.live_fixtures import SECRET
from tests.conftest import login


@pytest.mark.django_db(transaction=True)
def test_the_player_sends_signed_batches_that_raise_the_exit(live_server, live_school):
    session = session_start(school_class=live_school.school_class, topic="Demo", by=None)
    played = live_player.play(
        session_id=session.pk, app_url=live_server.url, secret=SECRET, script=(Phase(5), Phase(5, leave=12))
    )
    assert (played.batches, played.failures) == (2, 0)
    assert played.events == LiveEvent.objects.filter(session=session).count() > 30
    tick([session.pk])
    assert LiveAnomaly.objects.get(session=session).type == "MASS_EXIT"


@pytest.mark.django_db(transaction=True)
def test_a_wrong_secret_is_refused_and_the_player_gives_up(live_server, live_school):
    session = session_start(school_class=live_school.school_class, topic="Demo", by=None)
    played = live_player.play(session_id=session.pk, app_url=live_server.url, secret="wrong")
    assert (played.batches, played.failures) == (0, live_player.GIVE_UP_AFTER)
    assert not LiveEvent.objects.exists()


def test_the_command_says_when_nothing_took_its_batches(db):
    with pytest.raises(CommandError, match="no batch was taken"):
        call_command("platform_sim", "--live-session", "1", "--app-url", "http://127.0.0.1:9")


def test_the_simulator_plays_on_request_and_refuses_a_bad_one(db):
    server = simulator.start_in_thread()
    try:
        bad = httpx.post(f"{server.url}/_sim/live", json={"session_id": 1})
        assert bad.status_code == 400
        good = httpx.post(
            f"{server.url}/_sim/live", json={"session_id": 1, "app_url": "http://127.0.0.1:9", "secret": "s"}
        )
        assert good.status_code == 202
        assert good.json()["data"] == {"playing": 1}
    finally:
        server.shutdown()


def test_the_pages_demo_button_asks_the_simulator(client, live_school, settings):
    server = simulator.start_in_thread()
    settings.PLATFORM_BASE_URL = server.url
    try:
        session = session_start(school_class=live_school.school_class, topic="Demo", by=None)
        login(client, live_school.teacher)
        settings.DEBUG = True
        assert "Play a demo class" in client.get(f"/live/{session.pk}/").content.decode()
        page = client.post(f"/live/{session.pk}/demo/", follow=True).content.decode()
        assert "The simulator is playing a demo class" in page
        settings.DEBUG = False
        assert "Play a demo class" not in client.get(f"/live/{session.pk}/").content.decode()
        assert client.post(f"/live/{session.pk}/demo/").status_code == 403
    finally:
        server.shutdown()
