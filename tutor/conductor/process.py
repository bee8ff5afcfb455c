"""The conductor process (`python manage.py run_conductor`): every LIVE_TICK_SECONDS it claims
its share of the live sessions (`classroom.live.leases`), ticks them (`classroom.live.services.
tick`: the score and the anomaly rules) and beats its heartbeat, which /healthz reports. Several
may run on several machines; a dead one's sessions are taken over once its leases lapse.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from audit import context
from classroom.live.leases import leases_claim, leases_release
from classroom.live.services import Ticked, tick
from tutor.models import WorkerHeartbeat

logger = logging.getLogger(__name__)
HEARTBEAT_EVERY = timedelta(seconds=15)


def conductor_cluster() -> str:
    """The conductors' heartbeat row, beside the django-q2 cluster's and the dispatcher's."""
    return f"{settings.Q_CLUSTER['name']}:conductor"


def holder_name() -> str:
    """This process's name on its leases: the machine, the pid and a random part (a pid comes back)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def tick_once(holder: str) -> list[Ticked]:
    with context.bind(source="worker"):  # each tick its own correlation id
        return tick(leases_claim(holder))


def serve(
    stop: threading.Event, *, holder: str, on_tick: Callable[[list[Ticked]], None] = lambda t: None
) -> None:
    """Tick until `stop` is set, on the tick grid (each tick at a multiple of LIVE_TICK_SECONDS),
    then release the leases so another conductor takes the sessions at once."""
    beat_at = None
    period = settings.LIVE_TICK_SECONDS
    try:
        while not stop.is_set():
            try:
                on_tick(tick_once(holder))
                now = timezone.now()
                if beat_at is None or now - beat_at >= HEARTBEAT_EVERY:
                    WorkerHeartbeat.beat(conductor_cluster())
                    beat_at = now
            except DatabaseError:
                logger.exception("conductor tick failed; trying again next tick")
                connection.close()
            stop.wait(period - time.time() % period)
    finally:
        try:
            leases_release(holder)
        except DatabaseError:
            logger.exception("could not release the conductor's leases; they lapse by themselves")
