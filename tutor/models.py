from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """The last time a django-q2 worker ran the heartbeat task; /healthz reports its age."""

    cluster = models.CharField(max_length=100, primary_key=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.cluster} at {self.beat_at:%Y-%m-%d %H:%M:%S}"
