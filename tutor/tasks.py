"""Operational tasks run by the django-q2 workers."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from tutor.models import WorkerHeartbeat


def heartbeat() -> None:
    """Proves a worker is taking tasks off the queue. Idempotent: an upsert of one row."""
    WorkerHeartbeat.objects.update_or_create(
        cluster=settings.Q_CLUSTER["name"], defaults={"beat_at": timezone.now()}
    )
