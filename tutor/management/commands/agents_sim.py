from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tutor.orchestrator.agents_sim import AgentsServer, SimulatorConfig


def config_from_options(options: dict[str, Any]) -> SimulatorConfig:
    """The simulator's knobs from the command's options, refused with a readable error when out
    of range (kept apart from `handle` so it can be checked without serving)."""
    for name in ("error_rate", "rate_limit_rate"):
        if not 0 <= options[name] <= 1:
            raise CommandError(f"--{name.replace('_', '-')} must be between 0 and 1; got {options[name]}")
    if options["latency_ms"] < 0 or options["retry_after"] < 0:
        raise CommandError("--latency-ms and --retry-after must be zero or more")
    return SimulatorConfig(
        token=options["token"],
        latency_ms=options["latency_ms"],
        error_rate=options["error_rate"],
        rate_limit_rate=options["rate_limit_rate"],
        retry_after=options["retry_after"],
        outage=options["outage"],
        seed=options["seed"],
    )


class Command(BaseCommand):
    help = "Serve the four remote agents' simulator on loopback (the demo's and the tests' agents)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8766)
        parser.add_argument(
            "--token",
            default=settings.ORCHESTRATOR_AGENT_TOKEN,
            help="the bearer token it accepts (default: ORCHESTRATOR_AGENT_TOKEN)",
        )
        parser.add_argument("--latency-ms", type=int, default=0, help="added to every answer")
        parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 503")
        parser.add_argument(
            "--rate-limit-rate", type=float, default=0.0, help="share of requests answered 429"
        )
        parser.add_argument("--retry-after", type=float, default=1.0, help="seconds, in 429 answers")
        parser.add_argument("--outage", action="store_true", help="answer every request 503")
        parser.add_argument("--seed", type=int, default=0, help="seeds the answers and the random faults")
        parser.add_argument("--verbose", action="store_true", help="log every request")

    def handle(self, *args: Any, **options: Any) -> None:
        config = config_from_options(options)
        try:
            server = AgentsServer((options["host"], options["port"]), config, verbose=options["verbose"])
        except OSError as error:
            raise CommandError(
                f"cannot listen on {options['host']}:{options['port']}: {error.strerror}"
            ) from None
        self.stdout.write(f"Agents simulator on {server.url} (report: {server.url}/_sim/report). Set:")
        for name, url in server.agent_urls.items():
            self.stdout.write(f"  ORCHESTRATOR_{name.upper()}_URL={url}")
        self.stdout.write("  and ORCHESTRATOR_AGENT_TOKEN to the --token value.")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
