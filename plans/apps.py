from __future__ import annotations

from django.apps import AppConfig


class PlansConfig(AppConfig):
    """Study plans, plan versions, drafts, validation, diff, publish and approval (issue 5)."""

    name = "plans"
    verbose_name = "Study plans"

    def ready(self) -> None:
        from plans import demo  # noqa: F401 - connects the demo school's plans to seed_demo
