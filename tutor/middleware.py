"""The door every request passes: bad input refused before a view sees it, and the headers that
keep signed-in pages private.

`InputGuardMiddleware` refuses, for every field of every form and query string, a NUL character
(PostgreSQL cannot store one) and any value longer than `classroom.inputs.LONGEST` (no field
takes more), and turns an `InputInvalid` raised further in (a service's own limit) into the same
answer: 400 naming the field. The JSON API answers in its own format (`tutor.api`); a page
answers with the page, or for htmx the explanation in the page's notice area.

`ApiErrorsMiddleware` makes every error under /api/ the API's JSON, whatever produced it
(django-ninja's 405, Django's 404 for a path no route has, the CSRF refusal, a 500 page).

`SecurityHeadersMiddleware` adds `Permissions-Policy` to every answer and
`Cache-Control: private, no-store` to what a signed-in user is shown, so a shared computer's
back button or a proxy never shows one teacher's roster to the next person.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.cache import patch_cache_control

from classroom.inputs import LONGEST, NUL_PROBLEM, InputInvalid, too_long

Handler = Callable[[HttpRequest], HttpResponse]

# What a status means when the error has no code of its own.
ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    500: "server_error",
}
ERROR_DETAILS = {
    403: "refused (a session request needs the CSRF token; an API client sends its bearer token)",
    404: "no such endpoint; the endpoints are listed at /api/openapi.json",
    405: "this endpoint does not take that method",
    500: "an unexpected error; the operators have it in the log",
}


def _refusal(request: HttpRequest, invalid: InputInvalid) -> HttpResponse:
    if request.path.startswith("/api/"):
        body = {"error": "bad_request", "detail": str(invalid), "fields": {invalid.field: [invalid.problem]}}
        return JsonResponse(body, status=400)
    if getattr(request, "htmx", False):
        response = render(request, "_input_error.html", {"invalid": invalid}, status=400)
        response["HX-Retarget"] = "#notice"
        response["HX-Reswap"] = "innerHTML"
        return response
    return render(request, "input_error.html", {"invalid": invalid}, status=400)


def first_refused(request: HttpRequest) -> InputInvalid | None:
    """The first form or query field (name or value) that no field of the product accepts."""
    sources = [request.GET]
    if request.method == "POST" and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        sources.append(request.POST)
    for data in sources:
        for name, values in data.lists():
            label = name[:60]
            if "\x00" in name:
                return InputInvalid(label.replace("\x00", "?"), NUL_PROBLEM)
            for value in values:
                if "\x00" in value:
                    return InputInvalid(label, NUL_PROBLEM)
                if len(value) > LONGEST:
                    return InputInvalid(label, too_long(len(value), LONGEST))
    return None


class InputGuardMiddleware:
    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refused = first_refused(request)
        if refused is not None:
            return _refusal(request, refused)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, InputInvalid):
            return _refusal(request, exception)
        return None


class ApiErrorsMiddleware:
    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not request.path.startswith("/api/")
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        status = response.status_code
        body = {
            "error": ERROR_CODES.get(status, "error"),
            "detail": ERROR_DETAILS.get(status, f"HTTP {status}"),
            "fields": {},
        }
        answer = JsonResponse(body, status=status)
        if response.has_header("Allow"):
            answer["Allow"] = response["Allow"]
        return answer


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            patch_cache_control(response, private=True, no_store=True)
        return response
