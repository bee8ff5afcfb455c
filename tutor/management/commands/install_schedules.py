from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django_q.models import Schedule

from audit import context
from audit.services import record
from tutor.schedules import RECURRING_JOBS


class Command(BaseCommand):
    help = "Create or update the django-q2 schedules declared in tutor/schedules.py (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        with context.bind(source="command"), transaction.atomic():
            for job in RECURRING_JOBS:
                _, created = Schedule.objects.update_or_create(
                    name=job.name,
                    defaults={
                        "func": job.func,
                        "schedule_type": Schedule.CRON,
                        "cron": job.cron,
                        "repeats": -1,
                    },
                )
                self.stdout.write(f"{'created' if created else 'updated'} {job.name}: {job.cron} {job.func}")
            record(
                verb="schedules.installed",
                actor_name="system:install_schedules",
                details={"jobs": [{"name": j.name, "cron": j.cron, "func": j.func} for j in RECURRING_JOBS]},
            )
