"""What the tutor does when the apps below it report something (they never import tutor)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.dispatch import receiver
from django_q.tasks import async_task

from classroom.signals import students_synced


@receiver(students_synced)
def _detect_patterns_after_sync(sender: Any, *, student_ids: list[int], **kwargs: Any) -> None:
    if student_ids:
        transaction.on_commit(lambda: async_task("tutor.tasks.detect_patterns", student_ids))
