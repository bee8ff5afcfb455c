"""django-q2 entry points: thin, idempotent wrappers over services."""

from __future__ import annotations

from audit import context
from classroom.models import Organisation
from classroom.services import alerts_recompute


def recompute_alerts(organisation_id: int) -> dict[str, int]:
    with context.bind(source="worker"):
        result = alerts_recompute(organisation=Organisation.objects.get(pk=organisation_id))
    return vars(result)


def recompute_all_alerts() -> dict[int, dict[str, int]]:
    return {pk: recompute_alerts(pk) for pk in Organisation.objects.values_list("pk", flat=True)}
