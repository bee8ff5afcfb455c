from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from classroom.platform.simulator import PlatformServer, SimulatorConfig


class Command(BaseCommand):
    help = "Serve the learning-platform simulator on loopback (the demo's and the tests' platform)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--token", default=SimulatorConfig.token, help="the service token it accepts")
        parser.add_argument("--latency-ms", type=int, default=0, help="added to every answer")
        parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 503")
        parser.add_argument(
            "--rate-limit-rate", type=float, default=0.0, help="share of requests answered 429"
        )
        parser.add_argument("--retry-after", type=int, default=1, help="seconds, in 429 answers")
        parser.add_argument("--outage", action="store_true", help="answer every request 503")
        parser.add_argument("--verbose", action="store_true", help="log every request")

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("error_rate", "rate_limit_rate"):
            if not 0 <= options[name] <= 1:
                raise CommandError(f"--{name.replace('_', '-')} must be between 0 and 1; got {options[name]}")
        if options["latency_ms"] < 0 or options["retry_after"] < 0:
            raise CommandError("--latency-ms and --retry-after must be zero or more")
        config = SimulatorConfig(
            token=options["token"],
            latency_ms=options["latency_ms"],
            error_rate=options["error_rate"],
            rate_limit_rate=options["rate_limit_rate"],
            retry_after=options["retry_after"],
            outage=options["outage"],
        )
        try:
            server = PlatformServer((options["host"], options["port"]), config, verbose=options["verbose"])
        except OSError as error:
            raise CommandError(
                f"cannot listen on {options['host']}:{options['port']}: {error.strerror}"
            ) from None
        self.stdout.write(f"Platform simulator on {server.url} (report: {server.url}/_sim/report)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
