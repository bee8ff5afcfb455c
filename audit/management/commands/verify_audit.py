"""Check the activity log's hash chains (and saved checkpoints); exit non-zero naming every break."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, transaction

from audit import chain, checkpoints, context
from audit.services import record


class Command(BaseCommand):
    help = (
        "Verify the tamper-evident hash chains of the activity log (every organisation, or one), "
        "and the log against saved checkpoints."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organisation", type=int, help="verify one organisation's chain only")
        parser.add_argument(
            "--checkpoint",
            action="append",
            default=[],
            metavar="FILE",
            help="a checkpoint document sent by the daily audit-checkpoint job (may be repeated)",
        )

    def handle(
        self, *args: Any, organisation: int | None = None, checkpoint: list[str], **options: Any
    ) -> None:
        started = time.monotonic()
        unreadable, saved = _read(checkpoint)
        with context.bind(source="command"):
            report = chain.verify(organisation)
            held = []
            for found in saved:
                broken = checkpoints.check(found)
                if broken is None:
                    held.append(found)
                else:
                    report.breaks.append(broken)
            seconds = time.monotonic() - started
            details = {
                "chains": report.chains,
                "events": report.events,
                "redacted": report.redacted,
                "seconds": round(seconds, 2),
                "organisation": organisation,
            }
            for broken in report.breaks:
                _record_finding(broken, details)
        findings = unreadable + [f"audit log broken at {broken}" for broken in report.breaks]
        if findings:
            raise CommandError("\n".join(findings))
        for found in held:
            self.stdout.write(
                f"{checkpoints.describe(found).capitalize()} holds (taken {found['taken_at']})."
            )
        self.stdout.write(
            f"Audit log intact: {report.events:,} events in {report.chains} chain(s), "
            f"{report.redacted:,} redacted, checked in {seconds:.1f} s."
        )


def _read(paths: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    """The checkpoint documents in `paths`, and a line for each file that is not one."""
    problems, found = [], []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            problems.append(f"cannot read {path}: {getattr(error, 'strerror', None) or error}")
            continue
        try:
            found.append(checkpoints.parse(text))
        except checkpoints.NotACheckpointError as error:
            problems.append(f"{path} is not an audit checkpoint: {error}")
    return problems, found


def _record_finding(broken: chain.Break, details: dict[str, Any]) -> None:
    """Record the finding in the log, where the log can take it: in the broken chain when its
    events are the problem, else (its head is, or a checkpoint) in the chain of no organisation,
    since appending moves the very head in question. A chain that cannot take it (its head was
    deleted) raises; the finding is still printed and the command still fails."""
    for organisation_id in dict.fromkeys([broken.organisation_id if broken.event_id else None, None]):
        try:
            with transaction.atomic():
                record(
                    verb="audit.verified",
                    actor_name="system:verify_audit",
                    organisation_id=organisation_id or None,
                    status="failed",
                    why=str(broken),
                    details={
                        **details,
                        "broken_organisation": broken.organisation_id,
                        "first_broken_event": broken.event_id,
                    },
                )
            return
        except (chain.ChainHeadMissingError, DatabaseError):
            continue
