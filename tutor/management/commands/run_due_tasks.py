from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit import context
from tutor.proactive.dispatcher import run_due_tasks

POLL_SECONDS = 30


class Command(BaseCommand):
    help = "Run the proactive dispatcher: due scheduled tasks, each once. --once for a single pass."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one pass, then exit")

    def handle(self, *args: Any, once: bool, **options: Any) -> None:
        while True:
            with context.bind(source="command"):
                result = run_due_tasks()
            outcome = (
                ", ".join(f"{status} {n}" for status, n in sorted(result.by_status.items())) or "nothing"
            )
            self.stdout.write(f"{result.claimed} due: {outcome}")
            if once:
                return
            time.sleep(POLL_SECONDS)
