"""django-q2 entry points of the activation workflow: thin, idempotent, safe to retry."""

from __future__ import annotations

from audit import context
from classroom.models import SchoolClass
from workflow.services import recommendations_refresh


def refresh_recommendations() -> int:
    """The "workflow-recommendations" schedule: every active class's recommendations, clusters and
    acute-regression alerts recomputed from the mirrors."""
    with context.bind(source="worker"):
        classes = SchoolClass.objects.filter(is_active=True)
        return sum(recommendations_refresh(school_class=school_class) for school_class in classes)
