"""django-q2 entry points of the audit app: thin, idempotent, safe to retry."""

from __future__ import annotations

from audit import context
from audit.notify import notify as notify_service
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
