from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit import context
from tutor.proactive.dispatcher import PassReport, run_due_tasks, serve


class Command(BaseCommand):
    help = (
        "The proactive dispatcher: due scheduled tasks, each sent once, as they fall due (the "
        "process production runs beside qcluster; SIGTERM or Ctrl-C stops it after the pass under "
        "way). --once for a single pass."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one pass, then exit")

    def handle(self, *args: Any, once: bool, **options: Any) -> None:
        if once:
            with context.bind(source="command"):
                self._say(run_due_tasks())
            return
        stop = threading.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: stop.set())
        self.stdout.write("dispatcher: sending due tasks as they fall due (SIGTERM or Ctrl-C stops)")
        serve(stop, on_pass=lambda report: self._say(report) if report.claimed else None)
        self.stdout.write("dispatcher: stopped")

    def _say(self, report: PassReport) -> None:
        outcome = ", ".join(f"{status} {n}" for status, n in sorted(report.by_status.items())) or "nothing"
        self.stdout.write(f"{report.claimed} due: {outcome}")
        self.stdout.flush()
