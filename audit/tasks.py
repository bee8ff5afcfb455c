"""django-q2 entry points of the audit app: thin, idempotent, safe to retry."""

from __future__ import annotations

from audit import context
from audit.checkpoints import checkpoints_take
from audit.notify import notify as notify_service
from audit.notify import send_checkpoints
from audit.retention import redact_before, retention_cutoff


def redact_expired() -> str:
    cutoff = retention_cutoff()
    if cutoff is None:
        return "retention off (AUDIT_RETENTION_DAYS=0)"
    with context.bind(source="worker"):
        done = redact_before(cutoff)
    return f"redacted {done.events} events before {cutoff:%Y-%m-%d}"


def notify() -> str:
    """The "audit-notify" schedule. Safe to run twice at once: each item is claimed before it is sent."""
    with context.bind(source="worker"):
        report = notify_service()
    return f"notifications: {report.sent} sent, {report.failed} failed, {report.skipped} skipped"


def checkpoint() -> str:
    """The "audit-checkpoint" schedule (daily): sign each organisation's chain head and send it
    to its channels. Safe to run twice: a chain with nothing new since its checkpoint gets no
    other, and each checkpoint is claimed per channel before it is sent."""
    with context.bind(source="worker"):
        taken = checkpoints_take()
        report = send_checkpoints()
    return (
        f"checkpoints: {len(taken)} taken; {report.sent} sent, {report.failed} failed, "
        f"{report.skipped} skipped"
    )
