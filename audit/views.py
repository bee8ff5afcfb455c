"""The audit pages: search, an event in its whole context, a student's timeline, failures, CSV export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url

from audit import selectors
from audit.directory import Option, Reach, directory
from audit.forms import ACTION_SUGGESTIONS, FilterForm
from audit.services import failure_resolve, record

CSV_ROWS_PER_CHUNK = 500
# The longest note a failure's resolution takes (the log keeps it as the event's rationale).
NOTE_LIMIT = 500


def with_reach(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed-in users with audit pages get `reach`; anyone else gets a 404."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        reach = directory().reach(request.user)
        if reach is None:
            raise Http404("no audit pages for this account")
        return view(request, reach, *args, **kwargs)

    return wrapped


def _form(request: HttpRequest) -> FilterForm:
    classes = [(option.id, option.label) for option in directory().classes(request.user)]
    return FilterForm(request.GET, classes=classes)


@require_GET
@vary_on_headers("HX-Request")
@with_reach
def event_list(request: HttpRequest, reach: Reach) -> HttpResponse:
    return _render_list(request, reach, student=None)


@require_GET
@vary_on_headers("HX-Request")
@with_reach
def student_timeline(request: HttpRequest, reach: Reach, pk: int) -> HttpResponse:
    student = directory().student(request.user, pk)
    if student is None:
        raise Http404("no such student within reach")
    return _render_list(request, reach, student=student)


def _render_list(request: HttpRequest, reach: Reach, student: Option | None) -> HttpResponse:
    form = _form(request)
    context: dict[str, Any] = {"form": form, "student": student, "actions": ACTION_SUGGESTIONS}
    status = 200
    if form.is_valid():
        filters = form.filters()
        if student is not None:
            filters = replace(filters, student_id=student.id, student="")
        events = selectors.search(request.user, reach, filters)
        page = selectors.page(events, request.GET.get("after", ""), settings.AUDIT_PAGE_SIZE)
        params = filters.as_params()
        context["page"] = page
        context["export_query"] = _query(params)
        context["next_query"] = _query({**params, "after": page.next_cursor})
    else:
        status = 400
    partial = request.htmx and not request.htmx.history_restore_request
    response = render(
        request, "audit/_results.html" if partial else "audit/event_list.html", context, status=status
    )
    if partial and "export_query" in context:
        # The address bar gets the search without its empty fields, like the export and page links.
        query = context["export_query"]
        push_url(response, f"{request.path}?{query}" if query else request.path)
    return response


def _query(params: dict[str, str]) -> str:
    return urlencode({key: value for key, value in params.items() if value})


@require_GET
@with_reach
def event_detail(request: HttpRequest, reach: Reach, pk: int) -> HttpResponse:
    event = get_object_or_404(selectors.visible_events(reach), pk=pk)
    related = selectors.correlated(reach, event)
    selectors.label_events([event, *related])
    details = dict(event.details)
    changes = details.pop("changes", None)
    context = {
        "event": event,
        "related": related,
        "changes": changes if isinstance(changes, dict) else None,
        "details_json": json.dumps(details, indent=2, sort_keys=True, ensure_ascii=False) if details else "",
        "failure": selectors.failure_of(event),
    }
    return render(request, "audit/event_detail.html", context)


def _csv_lines(rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    """The CSV in pieces of CSV_ROWS_PER_CHUNK rows: one write to the client per piece, not per row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(selectors.EXPORT_COLUMNS)
    for count, row in enumerate(rows, start=1):
        writer.writerow([_cell(value) for value in row])
        if count % CSV_ROWS_PER_CHUNK == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return selectors.neutralise(json.dumps(value, sort_keys=True, ensure_ascii=False))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return selectors.neutralise(value)


@require_GET
@with_reach
def export_csv(request: HttpRequest, reach: Reach) -> HttpResponse:
    form = _form(request)
    if not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
        return HttpResponse(f"Invalid filter: {problems}\n", status=400, content_type="text/plain")
    filters = form.filters()
    record(
        verb="audit.exported",
        actor=request.user,
        why="CSV export of the activity log",
        details={"filters": filters.as_params(), "columns": list(selectors.EXPORT_COLUMNS)},
    )
    events = selectors.search(request.user, reach, filters)
    response = StreamingHttpResponse(_csv_lines(selectors.export_rows(events)), content_type="text/csv")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response


@require_GET
@with_reach
def failure_list(request: HttpRequest, reach: Reach) -> HttpResponse:
    failures = list(selectors.open_failures(reach)[:200])
    return render(
        request,
        "audit/failures.html",
        {"failures": failures, "can_resolve": _can_resolve(request.user)},
    )


def _can_resolve(user: Any) -> bool:
    return user.is_superuser or user.role in ("org_admin", "compliance")


@require_POST
@with_reach
def failure_resolve_view(request: HttpRequest, reach: Reach, pk: int) -> HttpResponse:
    failure = get_object_or_404(selectors.open_failures(reach), pk=pk)
    if not _can_resolve(request.user):
        return HttpResponse("Only organisation admins and compliance staff resolve failures.", status=403)
    note = request.POST.get("note", "").strip()
    if len(note) > NOTE_LIMIT:
        problem = f"note: is {len(note):,} characters long; the limit is {NOTE_LIMIT:,}"
        context = {
            "failures": list(selectors.open_failures(reach)[:200]),
            "can_resolve": True,
            "error": problem,
        }
        return render(request, "audit/failures.html", context, status=400)
    try:
        failure_resolve(failure, by=request.user, note=note)
    except ValueError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Resolved: {failure.summary or failure.fingerprint}")
    return redirect("audit:failure_list")
