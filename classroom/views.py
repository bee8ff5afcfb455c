"""Teacher pages: the dashboard, a class, a student, and the alert actions."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from classroom import selectors
from classroom.access import (
    classes_for,
    get_alert_for_user,
    get_class_for_user,
    get_student_for_user,
    get_sync_run_for_user,
)
from classroom.live import selectors as live_selectors
from classroom.models import Alert, SyncRun
from classroom.platform.sync import sync_run_request, sync_student_if_stale
from classroom.services import AlertStateError, alert_acknowledge, alert_resolve


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Logged in, and a member of staff: learners use the JSON API, not the console."""

    @wraps(view)
    @login_required
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_staff_member:
            raise PermissionDenied("The console is for school staff; learners use the tutor app.")
        return view(request, *args, **kwargs)

    return wrapped


def _wants_fragment(request: HttpRequest) -> bool:
    """An htmx swap wants the roster alone; a history restore after a cache miss wants the page."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def _roster_context(request: HttpRequest, base_url: str, query: selectors.RosterQuery) -> dict[str, Any]:
    roster = selectors.roster(request.user, query)

    def url(**changes: Any) -> str:
        params = {
            "sort": f"-{query.sort}" if query.descending else query.sort,
            "status": query.status,
            "q": query.search,
            "class": query.class_id if base_url.endswith("/dashboard/") else None,
            "page": query.page,
            **changes,
        }
        if params["page"] == 1:
            del params["page"]
        if params["status"] == "all":
            del params["status"]
        return f"{base_url}?{urlencode({k: v for k, v in params.items() if v not in (None, '')})}"

    page = roster.page
    return {
        "roster": roster,
        "roster_url": base_url,
        "sort_urls": {column: url(sort=query.sort_param(column), page=1) for column in selectors.SORTS},
        "prev_url": url(page=page.previous_page_number()) if page.has_previous() else "",
        "next_url": url(page=page.next_page_number()) if page.has_next() else "",
        "filters": selectors.FILTERS,
    }


@staff_required
@vary_on_headers("HX-Request", "HX-History-Restore-Request")
def dashboard(request: HttpRequest) -> HttpResponse:
    query = selectors.RosterQuery.from_params(request.GET)
    context = _roster_context(request, reverse("classroom:dashboard"), query)
    context["class_choices"] = list(classes_for(request.user).order_by("name").values_list("pk", "name"))
    if _wants_fragment(request):
        return render(request, "classroom/_roster.html", context)
    context |= {
        "cards": selectors.class_cards(request.user),
        "widgets": selectors.alert_widgets(request.user),
    }
    return render(request, "classroom/dashboard.html", context)


@staff_required
@vary_on_headers("HX-Request", "HX-History-Restore-Request")
def class_detail(request: HttpRequest, pk: int) -> HttpResponse:
    school_class = get_class_for_user(request.user, pk)
    query = selectors.RosterQuery.from_params(request.GET, class_id=school_class.pk)
    context = _roster_context(request, reverse("classroom:class_detail", args=[pk]), query)
    if _wants_fragment(request):
        return render(request, "classroom/_roster.html", context)
    live_sessions = live_selectors.class_sessions(school_class.pk)
    context |= {
        "school_class": school_class,
        "teachers": list(school_class.teachers.order_by("last_name")),
        "widgets": selectors.alert_widgets(request.user, class_id=school_class.pk),
        "sync": selectors.class_sync_status(school_class),
        "live_sessions": live_sessions,
        "live_session": next((s for s in live_sessions if s.is_live), None),
    }
    return render(request, "classroom/class_detail.html", context)


@staff_required
def student_detail(request: HttpRequest, pk: int) -> HttpResponse:
    student = get_student_for_user(request.user, pk)
    refresh = sync_student_if_stale(student=student, by=request.user)
    history = selectors.student_history(request.user, student)
    return render(
        request, "classroom/student_detail.html", {"student": student, "history": history, "run": refresh}
    )


@staff_required
@require_POST
def class_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue a platform sync of the class; the page polls its progress."""
    school_class = get_class_for_user(request.user, pk)
    if not request.user.can_act_on_alerts:
        raise PermissionDenied("Only the class's teachers and organisation admins can refresh it.")
    run, _ = sync_run_request(
        organisation=school_class.organisation,
        school_class=school_class,
        trigger=SyncRun.Trigger.BUTTON,
        by=request.user,
    )
    if request.htmx:
        return render(request, "classroom/_sync_run.html", {"run": run})
    messages.info(request, "Refresh queued: the roster updates when the sync finishes.")
    return redirect("classroom:class_detail", pk=pk)


@staff_required
def sync_run_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress of one sync run, polled by the page while it is active."""
    run = get_sync_run_for_user(request.user, pk)
    return render(request, "classroom/_sync_run.html", {"run": run})


def _after_alert_change(request: HttpRequest, alert: Alert, done: str) -> HttpResponse:
    """The changed alert in place for htmx; otherwise a message and a redirect back."""
    if request.htmx:
        return render(request, "classroom/_alert.html", {"alert": alert})
    messages.success(request, done)
    return _redirect_back(request, alert)


def _redirect_back(request: HttpRequest, alert: Alert) -> HttpResponse:
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = reverse("classroom:student_detail", args=[alert.student_id])
    return redirect(next_url)


@staff_required
@require_POST
def alert_acknowledge_view(request: HttpRequest, pk: int) -> HttpResponse:
    alert = get_alert_for_user(request.user, pk)
    try:
        alert = alert_acknowledge(alert=alert, by=request.user)
    except AlertStateError as error:
        return _alert_conflict(request, alert, str(error))
    return _after_alert_change(
        request, alert, f"Acknowledged: {alert.get_kind_display()} for {alert.student}."
    )


@staff_required
@require_POST
def alert_resolve_view(request: HttpRequest, pk: int) -> HttpResponse:
    alert = get_alert_for_user(request.user, pk)
    try:
        alert = alert_resolve(alert=alert, by=request.user, note=request.POST.get("note", ""))
    except AlertStateError as error:
        return _alert_conflict(request, alert, str(error))
    return _after_alert_change(request, alert, f"Resolved: {alert.get_kind_display()} for {alert.student}.")


def _alert_conflict(request: HttpRequest, alert: Alert, reason: str) -> HttpResponse:
    alert.refresh_from_db()
    if request.htmx:
        return render(request, "classroom/_alert.html", {"alert": alert, "error": reason}, status=409)
    messages.error(request, f"Nothing changed: {reason}.")
    return _redirect_back(request, alert)


@staff_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("classroom:dashboard")
