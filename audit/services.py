"""The one write path into the activity log."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from audit import context
from audit.models import ActivityEvent


def record(
    *,
    verb: str,
    actor: Any = None,
    actor_name: str = "",
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str | int = "",
    organisation_id: int | None = None,
    student_id: int | None = None,
    class_id: int | None = None,
    why: str = "",
    status: str = ActivityEvent.Status.SUCCEEDED,
    details: dict[str, Any] | None = None,
    source: str | None = None,
) -> ActivityEvent:
    """Append one event. Call it inside the service's transaction so the event and the write
    it describes commit or roll back together.

    `actor` is a user; automation passes `actor_name="system:<component>"` instead. A model
    `target` fills target type and id; its `organisation_id`, `student_id` and `class_id`
    attributes fill those columns unless given.
    """
    if actor is None and not actor_name:
        raise ValueError("an event needs an actor or an actor_name such as 'system:alerts'")
    if status not in ActivityEvent.Status.values:
        raise ValueError(f"unknown status {status!r}")
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or target.pk
        organisation_id = organisation_id or getattr(target, "organisation_id", None)
        student_id = student_id or getattr(target, "student_id", None)
    if organisation_id is None and actor is not None:
        organisation_id = getattr(actor, "organisation_id", None)
    ctx = context.current()
    return ActivityEvent.objects.create(
        occurred_at=timezone.now(),
        organisation_id=organisation_id,
        actor=actor,
        actor_name=actor_name or actor.get_username(),
        verb=verb,
        target_type=target_type,
        target_id=str(target_id),
        student_id=student_id,
        class_id=class_id,
        why=why,
        status=status,
        source=source or ctx.source,
        correlation_id=ctx.correlation_id,
        details=details or {},
    )
