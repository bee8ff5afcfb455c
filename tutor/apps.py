from __future__ import annotations

from django.apps import AppConfig


class TutorConfig(AppConfig):
    """The project package; also owns operations (worker heartbeat, schedules) and the AI: the LLM
    gateway, the tutor chat and the proactive engine."""

    name = "tutor"
    verbose_name = "Tutor"

    def ready(self) -> None:
        from tutor import receivers  # noqa: F401 - connects to the signals of the apps below
