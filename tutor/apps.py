from __future__ import annotations

from django.apps import AppConfig


class TutorConfig(AppConfig):
    """The project package; also owns operations (worker heartbeat, schedules) and, later, the AI."""

    name = "tutor"
    verbose_name = "Tutor"
