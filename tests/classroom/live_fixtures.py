"""Live sessions in tests: signing a batch as the platform does, and replaying a scripted class
through the ingest and the tick, five seconds at a time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from classroom.live.api import parse_events
from classroom.live.models import LiveAnomaly, LiveSession
from classroom.live.services import session_start, signals_ingest, tick
from classroom.platform.live_class import LiveClass, Phase
from classroom.platform.live_player import sign

SECRET = "test-live-secret"
# On the 5-second tick grid, so that the class's seconds and the ticks line up.
START = datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC)


def post_signed(
    client: Client, path: str, payload: Any, *, secret: str = SECRET, raw: bytes | None = None, **headers: str
):
    body = raw if raw is not None else json.dumps(payload).encode()
    return client.post(
        path,
        body,
        content_type="application/json",
        HTTP_X_PLATFORM_SIGNATURE=sign(body, secret),
        **headers,
    )


@dataclass
class Replay:
    session: LiveSession
    live_class: LiveClass

    def run(self, until: int | None = None) -> list[LiveAnomaly]:
        """Ingest and tick every 5 seconds up to `until` seconds (the whole script by default);
        the anomalies raised, in order."""
        raised = []
        end = int(self.live_class.seconds if until is None else until)
        for second in range(0, end, 5):
            batch = self.live_class.events(second, second + 5)
            now = START + timedelta(seconds=second + 5)
            if batch:
                signals_ingest(session=self.session, events=parse_events({"events": batch}, now=now), now=now)
            for ticked in tick([self.session.pk], now=now):
                raised += ticked.anomalies
        return raised


@pytest.fixture
def live_school(school):
    school.organisation.live_secret = SECRET
    school.organisation.save(update_fields=["live_secret"])
    return school


@pytest.fixture
def replay(live_school):
    def make(*script: Phase, **options: Any) -> Replay:
        session = session_start(
            school_class=live_school.school_class, topic="Linear equations", by=live_school.teacher, now=START
        )
        return Replay(session, LiveClass(start=START, script=script, **options))

    return make
