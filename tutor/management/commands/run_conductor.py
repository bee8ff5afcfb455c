from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from classroom.live.services import Ticked
from tutor.conductor.process import holder_name, serve, tick_once


class Command(BaseCommand):
    help = (
        "The live-session conductor: every LIVE_TICK_SECONDS, the engagement score and anomalies of "
        "its share of the live sessions (several may run; SIGTERM or Ctrl-C stops it after the "
        "tick under way and hands its sessions on). --once for a single tick."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one tick, then exit")

    def handle(self, *args: Any, once: bool, **options: Any) -> None:
        holder = holder_name()
        if once:
            self._say(tick_once(holder))
            return
        stop = threading.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: stop.set())
        self.stdout.write(f"conductor {holder}: ticking live sessions (SIGTERM or Ctrl-C stops)")
        self.stdout.flush()
        serve(stop, holder=holder, on_tick=lambda ticked: self._say(ticked) if ticked else None)
        self.stdout.write("conductor: stopped")

    def _say(self, ticked: list[Ticked]) -> None:
        anomalies = sum(len(t.anomalies) for t in ticked)
        self.stdout.write(f"{len(ticked)} live sessions ticked, {anomalies} anomalies")
        self.stdout.flush()
