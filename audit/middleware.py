from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from audit import context


class AuditContextMiddleware:
    """Binds one correlation id per request; the source is the admin, the JSON API or a page.

    An incoming `X-Correlation-ID` is used only where `AUDIT_TRUST_CORRELATION_HEADER` says a
    proxy in front sets it: otherwise any client could file its own events under another job's
    id, and the event page would show them as part of that job.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        source = "admin" if path.startswith("/admin/") else "api" if path.startswith("/api/") else "page"
        trusted = settings.AUDIT_TRUST_CORRELATION_HEADER
        incoming = request.headers.get("X-Correlation-ID", "") if trusted else ""
        correlation_id = incoming if 8 <= len(incoming) <= 64 and incoming.isascii() else None
        with context.bind(source=source, correlation_id=correlation_id) as ctx:
            request.correlation_id = ctx.correlation_id
            response = self.get_response(request)
        response["X-Correlation-ID"] = ctx.correlation_id
        return response
