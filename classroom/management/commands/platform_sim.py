from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from classroom.platform.sim_http import add_fault_arguments, fault_options, listen, serve_until_interrupted
from classroom.platform.simulator import PlatformServer, SimulatorConfig


class Command(BaseCommand):
    help = "Serve the learning-platform simulator on loopback (the demo's and the tests' platform)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_fault_arguments(parser, port=8765, token=SimulatorConfig.token, retry_after=int)

    def handle(self, *args: Any, **options: Any) -> None:
        server = listen(PlatformServer, options, SimulatorConfig(**fault_options(options)))
        self.stdout.write(f"Platform simulator on {server.url} (report: {server.url}/_sim/report)")
        serve_until_interrupted(server)
