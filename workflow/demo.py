"""The demo school's bundles, and its recommendations computed from the seeded history, so that
every class has a clean bundle recommendation (a cluster of the low-confidence students), non-bundle
ones, `do_not_decide_yet` (no data, never assessed), an open acute regression (stalled mastery)
and a QA_003 exclusion (went quiet). Idempotent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.dispatch import receiver

from classroom.models import Organisation, SchoolClass, User
from classroom.signals import demo_seeded
from workflow import catalog
from workflow.models import Bundle
from workflow.services import recommendations_refresh

BUNDLES = (
    ("BND-MATH-LINEQ", "Linear equations rebuild", catalog.ObjectType.INTERVENTION, "Mathematics",
     "linear_equations", ["integer_operations", "inverse_operations"], "worked-example cards"),
    ("BND-MATH-CONF", "Equation fluency with confidence checks", catalog.ObjectType.COMPOSITE, "Mathematics",
     "equation_fluency", ["self_explanation"], "confidence check-ins"),
    ("BND-SCI-CELLS", "Cells and systems rebuild", catalog.ObjectType.INTERVENTION, "Science",
     "cell_structure", ["scientific_vocabulary", "diagram_reading"], "labelled diagram packs"),
    ("BND-SCI-CONF", "Lab reasoning with confidence checks", catalog.ObjectType.COMPOSITE, "Science",
     "experimental_design", ["self_explanation"], "confidence check-ins"),
)  # fmt: skip


@receiver(demo_seeded)
def seed_demo_workflow(
    sender: Any, *, organisation: Organisation, users: dict[str, User], now: datetime, **kwargs: Any
) -> None:
    for code, title, kind, subject, anchor, supporting, bridge in BUNDLES:
        Bundle.objects.update_or_create(
            organisation=organisation,
            code=code,
            defaults={
                "title": title,
                "object_type": kind,
                "subject": subject,
                "anchor_skill": anchor,
                "supporting_threads": supporting,
                "asset_bridge": bridge,
            },
        )
    for school_class in SchoolClass.objects.filter(organisation=organisation, is_active=True):
        recommendations_refresh(school_class=school_class, now=now)
