from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import context
from classroom.demo import BLOCK, demo_school_seed


class Command(BaseCommand):
    help = "Create or refresh the demo school (idempotent). --class-size N makes rosters of N students."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--class-size", type=int, default=BLOCK, help=f"students per class (default {BLOCK})"
        )

    def handle(self, *args: Any, class_size: int, **options: Any) -> None:
        if class_size < 1 or class_size > 100_000:
            raise CommandError(f"--class-size must be between 1 and 100000; got {class_size}")
        with context.bind(source="command"):
            result = demo_school_seed(class_size=class_size)
        self.stdout.write(
            f"Demo school {result.organisation.name!r}: "
            f"{result.classes} classes, {result.students} students, "
            f"{result.performance_rows} days of performance, {result.assignments} assignments, "
            f"{result.milestones} milestones; {result.alerts_opened} new alerts."
        )
        self.stdout.write(
            "Logins: ms.rivera / mr.okafor (demo-teacher), compliance (demo-compliance), admin (demo-admin)"
        )
