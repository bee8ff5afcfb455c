from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from classroom.demo import DEMO_LIVE_SECRET
from classroom.platform import live_player
from classroom.platform.sim_http import add_fault_arguments, fault_options, listen, serve_until_interrupted
from classroom.platform.simulator import PlatformServer, SimulatorConfig


class Command(BaseCommand):
    help = "Serve the learning-platform simulator on loopback (the demo's and the tests' platform)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_fault_arguments(parser, port=8765, token=SimulatorConfig.token, retry_after=int)
        parser.add_argument(
            "--live-session",
            type=int,
            help="instead of serving: play the demo's live class into this live session, then exit",
        )
        parser.add_argument("--app-url", default="http://127.0.0.1:8000", help="the app, for --live-session")
        parser.add_argument(
            "--live-secret",
            default=DEMO_LIVE_SECRET,
            help="the organisation's live secret, for --live-session",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["live_session"] is not None:
            self.stdout.write(
                f"Playing the demo's live class into live session {options['live_session']} ..."
            )
            self.stdout.flush()
            played = live_player.play(
                session_id=options["live_session"], app_url=options["app_url"], secret=options["live_secret"]
            )
            if played.batches == 0:
                raise CommandError(f"no batch was taken by {options['app_url']} ({played.failures} failed)")
            self.stdout.write(
                f"{played.batches} batches, {played.events} events sent, {played.failures} failed"
            )
            return
        server = listen(PlatformServer, options, SimulatorConfig(**fault_options(options)))
        self.stdout.write(f"Platform simulator on {server.url} (report: {server.url}/_sim/report)")
        serve_until_interrupted(server)
