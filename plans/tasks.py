"""django-q2 entry points of study plans: thin, idempotent, safe to retry."""

from __future__ import annotations

from audit import context
from plans.services import drafts_expire


def expire_drafts() -> str:
    """The "plan-drafts-expiry" schedule."""
    with context.bind(source="worker"):
        return f"{drafts_expire()} drafts expired"
