from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from classroom.platform.sim_http import add_fault_arguments, fault_options, listen, serve_until_interrupted
from tutor.orchestrator.agents_sim import AgentsServer, SimulatorConfig


def config_from_options(options: dict[str, Any]) -> SimulatorConfig:
    """The simulator's knobs from the command's options, refused with a readable error when out
    of range (kept apart from `handle` so it can be checked without serving)."""
    return SimulatorConfig(**fault_options(options), seed=options["seed"])


class Command(BaseCommand):
    help = "Serve the four remote agents' simulator on loopback (the demo's and the tests' agents)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_fault_arguments(parser, port=8766, token=settings.ORCHESTRATOR_AGENT_TOKEN, retry_after=float)
        parser.add_argument("--seed", type=int, default=0, help="seeds the answers and the random faults")

    def handle(self, *args: Any, **options: Any) -> None:
        server = listen(AgentsServer, options, config_from_options(options))
        self.stdout.write(f"Agents simulator on {server.url} (report: {server.url}/_sim/report). Set:")
        for name, url in server.agent_urls.items():
            self.stdout.write(f"  ORCHESTRATOR_{name.upper()}_URL={url}")
        self.stdout.write("  and ORCHESTRATOR_AGENT_TOKEN to the --token value.")
        serve_until_interrupted(server)
