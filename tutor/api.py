"""The JSON API under /api/ (django-ninja), with its OpenAPI document at /api/openapi.json.

Every error is `{"error": CODE, "detail": "...", "fields": {...}}` with the status it names;
never a stack trace, never a 500 for bad input.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser

from audit import context
from classroom.api_auth import API_AUTH, TokenRefused
from classroom.inputs import InputInvalid, refused_value
from classroom.live.api import router as live_router
from classroom.live.services import LiveError
from plans.api import router as plans_router
from plans.schema import PlanInvalid
from plans.services import PublishConflict
from tutor.middleware import ERROR_CODES
from tutor.orchestrator.api import router as orchestrator_router
from tutor.orchestrator.services import OrchestratorError
from tutor.proactive.api import proactive_router, schedules_router
from tutor.proactive.timing import ScheduleInvalid
from workflow.api import router as workflow_router
from workflow.services import WorkflowError

logger = logging.getLogger(__name__)


class GuardedParser(Parser):
    """JSON bodies as django-ninja reads them, refusing what no field takes (a NUL, an overlong
    text) anywhere in the document before a schema or a service sees it."""

    def parse_body(self, request: HttpRequest) -> Any:
        data = json.loads(request.body)
        refused = refused_value(data)
        if refused is not None:
            raise refused
        return data


api = NinjaAPI(
    title="Proactive Tutor",
    version="1",
    description="Bearer token from `manage.py create_api_token USERNAME`, or the console's session. "
    'Every error is `{"error": CODE, "detail": "...", "fields": {...}}`.',
    auth=API_AUTH,
    urls_namespace="api",
    parser=GuardedParser(),
)
api.add_router("/plans", plans_router)
api.add_router("/workflow", workflow_router)
api.add_router("/schedules", schedules_router)
api.add_router("/proactive", proactive_router)
api.add_router("/orchestrator", orchestrator_router)
api.add_router("/live", live_router)


def _error(
    request: HttpRequest, status: int, code: str, detail: str, fields: dict | None = None
) -> HttpResponse:
    return api.create_response(
        request, {"error": code, "detail": detail, "fields": fields or {}}, status=status
    )


@api.exception_handler(AuthenticationError)
def _unauthorized(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    # A token that has expired or been revoked says so; any other refusal says how to send one.
    detail = (
        exc.message
        if isinstance(exc, TokenRefused)
        else "send Authorization: Bearer <token> (manage.py create_api_token USERNAME)"
    )
    return _error(request, 401, "unauthorized", detail)


@api.exception_handler(PermissionDenied)
def _forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return _error(request, 403, "forbidden", str(exc) or "not allowed")


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, "not_found", "no such object within your classes")


@api.exception_handler(ValidationError)
def _bad_request(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    fields: dict[str, list[str]] = {}
    for error in exc.errors:
        location = ".".join(
            str(part) for part in error.get("loc", ()) if part not in ("body", "body", "query", "path")
        )
        fields.setdefault(location or "body", []).append(error.get("msg", "invalid"))
    detail = "; ".join(f"{name}: {', '.join(problems)}" for name, problems in fields.items())
    return _error(request, 400, "bad_request", detail, fields)


@api.exception_handler(PlanInvalid)
def _invalid_plan(request: HttpRequest, exc: PlanInvalid) -> HttpResponse:
    return _error(request, 400, "invalid_plan", str(exc), exc.by_field())


@api.exception_handler(PublishConflict)
def _conflict(request: HttpRequest, exc: PublishConflict) -> HttpResponse:
    return _error(request, 409, "conflict", str(exc))


@api.exception_handler(WorkflowError)
def _workflow_refused(request: HttpRequest, exc: WorkflowError) -> HttpResponse:
    return api.create_response(
        request, {"error": exc.code, "detail": exc.detail, **exc.extra}, status=exc.status
    )


@api.exception_handler(ScheduleInvalid)
def _invalid_schedule(request: HttpRequest, exc: ScheduleInvalid) -> HttpResponse:
    return _error(request, 400, "invalid_schedule", str(exc), {exc.field: [exc.problem]})


@api.exception_handler(InputInvalid)
def _refused_input(request: HttpRequest, exc: InputInvalid) -> HttpResponse:
    return _error(request, 400, "bad_request", str(exc), {exc.field: [exc.problem]})


@api.exception_handler(OrchestratorError)
def _orchestrator_refused(request: HttpRequest, exc: OrchestratorError) -> HttpResponse:
    response = _error(
        request, exc.status, exc.code, exc.detail, {exc.field: [exc.detail]} if exc.field else None
    )
    if exc.retry_after is not None:
        response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(LiveError)
def _live_refused(request: HttpRequest, exc: LiveError) -> HttpResponse:
    return _error(request, exc.status, exc.code, exc.detail, {exc.field: [exc.detail]} if exc.field else None)


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    """django-ninja's own refusals (an unreadable body, a method the route lacks) in the house format."""
    cause = exc.__cause__
    if isinstance(cause, InputInvalid):
        return _refused_input(request, cause)
    if isinstance(cause, ValueError):
        problem = f"is not a JSON document ({cause})"
        return _error(request, 400, "bad_request", f"body: {problem}", {"body": [problem]})
    return _error(request, exc.status_code, ERROR_CODES.get(exc.status_code, "error"), str(exc))


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    """Never a stack trace: the error is logged, and the answer gives the id to quote."""
    logger.exception("API error on %s %s", request.method, request.path)
    correlation_id = context.current().correlation_id
    return _error(
        request,
        500,
        "server_error",
        f"an unexpected error; quote correlation id {correlation_id} to the operators",
    )
