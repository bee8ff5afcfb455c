"""Blank the personal details of events older than the retention period (or an earlier date)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import context
from audit.retention import RetentionRefusedError, redact_before, retention_cutoff


class Command(BaseCommand):
    help = (
        "Redact personal details of audit events older than AUDIT_RETENTION_DAYS "
        "(or --before an earlier DATE)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--before",
            help="redact events before this date (YYYY-MM-DD), no later than the retention cut-off",
        )

    def handle(self, *args: Any, before: str | None = None, **options: Any) -> None:
        if before:
            try:
                cutoff = datetime.fromisoformat(before).replace(tzinfo=UTC)
            except ValueError as error:
                raise CommandError(f"--before must be a date like 2025-01-31, not {before!r}") from error
        else:
            cutoff = retention_cutoff()
            if cutoff is None:
                self.stdout.write("AUDIT_RETENTION_DAYS is 0: events are kept whole; nothing redacted.")
                return
        try:
            with context.bind(source="command"):
                done = redact_before(cutoff)
        except RetentionRefusedError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            f"Redacted {done.events:,} events before {cutoff:%Y-%m-%d}; "
            f"deleted {done.field_history:,} field-history entries."
        )
