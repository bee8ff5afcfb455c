"""The JSON API under /api/ (django-ninja), with its OpenAPI document at /api/openapi.json.

Every error is `{"error": CODE, "detail": "...", "fields": {...}}` with the status it names;
never a stack trace, never a 500 for bad input.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, ValidationError

from classroom.api_auth import API_AUTH, TokenRefused
from plans.api import router as plans_router
from plans.schema import PlanInvalid
from plans.services import PublishConflict
from tutor.proactive.api import proactive_router, schedules_router
from tutor.proactive.timing import ScheduleInvalid
from workflow.api import router as workflow_router
from workflow.services import WorkflowError

api = NinjaAPI(
    title="Proactive Tutor",
    version="1",
    description="Bearer token from `manage.py create_api_token USERNAME`, or the console's session.",
    auth=API_AUTH,
    urls_namespace="api",
)
api.add_router("/plans", plans_router)
api.add_router("/workflow", workflow_router)
api.add_router("/schedules", schedules_router)
api.add_router("/proactive", proactive_router)


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
