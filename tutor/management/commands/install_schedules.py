from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django_q.models import Schedule

from tutor.schedules import RECURRING_JOBS


class Command(BaseCommand):
    help = "Create or update the django-q2 schedules declared in tutor/schedules.py (idempotent)."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        for job in RECURRING_JOBS:
            _, created = Schedule.objects.update_or_create(
                name=job.name,
                defaults={"func": job.func, "schedule_type": Schedule.CRON, "cron": job.cron, "repeats": -1},
            )
            self.stdout.write(f"{'created' if created else 'updated'} {job.name}: {job.cron} {job.func}")
