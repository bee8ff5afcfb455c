from __future__ import annotations

from django.apps import AppConfig


class WorkflowConfig(AppConfig):
    """The 17-step Teacher Activation Workflow and /api/workflow/* (issue 6)."""

    name = "workflow"
    verbose_name = "Teacher Activation Workflow"

    def ready(self) -> None:
        from workflow import demo  # noqa: F401 - connects the demo school's bundles to seed_demo
