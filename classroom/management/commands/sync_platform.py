from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import context
from classroom.models import Organisation, SchoolClass, Student, SyncRun
from classroom.platform.sync import sync_run_execute, sync_run_request


class Command(BaseCommand):
    help = "Sync mirrors from the platform in the foreground, with a progress bar."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--class", dest="class_id", type=int, help="one class, by id")
        target.add_argument("--student", dest="student_id", type=int, help="one student, by id")
        target.add_argument("--all", action="store_true", help="every organisation, one run each")

    def handle(self, *args: Any, class_id: int | None, student_id: int | None, **options: Any) -> None:
        with context.bind(source="command"):
            targets = self._targets(class_id, student_id)
            runs = [
                sync_run_request(trigger=SyncRun.Trigger.COMMAND, enqueue=False, **target)[0]
                for target in targets
            ]
            finished = [sync_run_execute(run_id=run.pk, progress=self._bar) for run in runs]
        failed = [run for run in finished if run.status != SyncRun.Status.SUCCEEDED]
        for run in failed:
            self.stderr.write(f"{run}: {run.error}. {run.hint}")
        if failed:
            raise CommandError(f"{len(failed)} of {len(runs)} sync runs did not fully succeed")

    def _targets(self, class_id: int | None, student_id: int | None) -> list[dict[str, Any]]:
        if class_id is not None:
            school_class = SchoolClass.objects.select_related("organisation").filter(pk=class_id).first()
            if school_class is None:
                raise CommandError(f"no class with id {class_id}")
            return [{"organisation": school_class.organisation, "school_class": school_class}]
        if student_id is not None:
            student = Student.objects.select_related("organisation").filter(pk=student_id).first()
            if student is None:
                raise CommandError(f"no student with id {student_id}")
            return [{"organisation": student.organisation, "student": student}]
        return [{"organisation": organisation} for organisation in Organisation.objects.all()]

    def _bar(self, run: SyncRun) -> None:
        width = 30
        filled = width * run.processed // run.total if run.total else width
        bar = "#" * filled + "." * (width - filled)
        line = f"\r{run} [{bar}] {run.processed}/{run.total}, {run.failed} failed"
        self.stdout.write(line, ending="" if run.is_active else "\n")
        self.stdout.flush()
