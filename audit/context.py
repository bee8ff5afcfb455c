"""Where the current action comes from: its source and the correlation id shared by its events.

A request, a worker task or a command binds these once; every `record(...)` inside reads them,
so one id ties together all events of one request or job.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class AuditContext:
    source: str
    correlation_id: str


_current: ContextVar[AuditContext | None] = ContextVar("audit_context", default=None)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def current() -> AuditContext:
    """The bound context, or a fresh system one for code that runs outside any binding."""
    ctx = _current.get()
    if ctx is None:
        ctx = AuditContext(source="system", correlation_id=new_correlation_id())
        _current.set(ctx)
    return ctx


@contextmanager
def bind(*, source: str, correlation_id: str | None = None) -> Iterator[AuditContext]:
    ctx = AuditContext(source=source, correlation_id=correlation_id or new_correlation_id())
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def current_correlation_id() -> str:
    """For django-auditlog (AUDITLOG_CID_GETTER): its entries share the events' correlation id."""
    return current().correlation_id
