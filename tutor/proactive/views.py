"""The proactive engine's pages: a student's schedules with their runs and controls, a class's
schedules, the learner profile, and the automation switches.

The student page has three sections (controls, patterns, schedules); each action answers its
section alone for htmx, and without JavaScript a redirect back (or the whole page with the error
in place when the action is refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Case, Count, F, Prefetch, QuerySet, When
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from classroom.access import get_class_for_user, get_student_for_user, students_for
from classroom.models import Enrollment, SchoolClass, Student, User
from classroom.views import staff_required
from tutor.models import (
    AutomationSwitch,
    ObservedPattern,
    ProactivenessSettings,
    ScheduledTask,
    TaskRun,
)
from tutor.proactive import patterns, selectors, services
from tutor.proactive.dispatcher import approve
from tutor.proactive.timing import ScheduleInvalid, zone

SECTIONS = ("controls", "patterns", "schedules")
RECENT_RUNS = 5
CLASS_PAGE_SIZE = 25
WAITING_SHOWN = 10
COMMON_ZONES = [
    "UTC",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Paris",
    "Europe/Berlin",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
]
DONE_WORDS = {"pause": "Paused", "resume": "Resumed", "cancel": "Cancelled"}
ENDED = (ScheduledTask.Status.CANCELLED, ScheduledTask.Status.DONE, ScheduledTask.Status.UNDELIVERED)


# Reads the page needs that selectors.py does not offer: schedules with their recent runs in a
# fixed number of queries, evidence in words, and the approval queue a user reaches.


def _with_recent_runs(tasks: QuerySet[ScheduledTask], runs: int) -> QuerySet[ScheduledTask]:
    recent = TaskRun.objects.order_by("-scheduled_for", "-pk")[:runs]
    return (
        tasks.select_related("student", "owner", "pattern")
        .annotate(run_count=Count("runs"))
        .prefetch_related(Prefetch("runs", queryset=recent, to_attr="recent_runs"))
        .order_by(
            Case(When(status__in=ENDED, then=1), default=0),
            F("next_run_at").asc(nulls_last=True),
            "-pk",
        )
    )


def _evidence(evidence: dict[str, Any]) -> list[tuple[str, str]]:
    def words(value: Any) -> str:
        if isinstance(value, dict):
            return ", ".join(f"{key}: {words(item)}" for key, item in value.items())
        if isinstance(value, list | tuple):
            return ", ".join(words(item) for item in value)
        return str(value)

    return [(key.replace("_", " ").capitalize(), words(value)) for key, value in evidence.items()]


def _pattern_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "evidence_lines": _evidence(row["evidence"])} for row in rows]


def _waiting_runs(user: User) -> QuerySet[TaskRun]:
    return TaskRun.objects.filter(
        status=TaskRun.Status.PENDING_APPROVAL, task__student__in=students_for(user)
    ).select_related("task__student")


def _prefs(student: Student) -> ProactivenessSettings:
    """The learner's settings, unsaved defaults if never set: a read does not create the row
    (services.settings_for would)."""
    found = ProactivenessSettings.objects.filter(student=student).select_related("changed_by").first()
    return found or ProactivenessSettings(student=student)


def _controls(student: Student) -> dict[str, Any]:
    prefs = _prefs(student)
    return {
        "prefs": prefs,
        "levels": ProactivenessSettings.Level.choices,
        "suppressed": [(v, label) for v, label in ScheduledTask.Kind.choices if v in prefs.suppressed_types],
        "threshold": settings.PROACTIVE_DISMISSALS_TO_SUPPRESS,
    }


def _patterns(student: Student) -> dict[str, Any]:
    rows = ObservedPattern.objects.filter(student=student).values()
    return {"patterns": _pattern_rows(list(rows)), "window_days": patterns.WINDOW_DAYS}


def _is_over(task: ScheduledTask) -> bool:
    """Done, cancelled or not delivered, with nothing left to decide: a one-off is done as soon as
    it is claimed, but its run may still wait for a teacher's approval, so it stays in view until
    then (one being retried is active again)."""
    waiting = any(run.status == TaskRun.Status.PENDING_APPROVAL for run in task.recent_runs)
    return task.status in ENDED and not waiting


def _schedules(student: Student) -> dict[str, Any]:
    tasks = list(_with_recent_runs(ScheduledTask.objects.filter(student=student), RECENT_RUNS))
    choices = ObservedPattern.objects.filter(student=student).values_list("pk", "description")
    zones = sorted({*COMMON_ZONES, settings.TIME_ZONE, *(t.time_zone for t in tasks)})
    approval = [label for v, label in ScheduledTask.Kind.choices if v in settings.PROACTIVE_APPROVAL_KINDS]
    return {
        "schedules": [t for t in tasks if not _is_over(t)],
        "ended": [t for t in tasks if _is_over(t)],
        "ended_ids": [t.pk for t in tasks if _is_over(t)],
        # The ended list opens by itself when it holds a message that never reached the learner.
        "undelivered": sum(1 for t in tasks if t.status == ScheduledTask.Status.UNDELIVERED),
        "kinds": ScheduledTask.Kind.choices,
        "pattern_choices": list(choices),
        "time_zones": zones,
        "approval_kinds": approval,
    }


SECTION_CONTEXT = {"controls": _controls, "patterns": _patterns, "schedules": _schedules}


def _render(
    request: HttpRequest, student: Student, section: str | None, *, status: int = 200, **extra: Any
) -> HttpResponse:
    """The section alone for htmx; the whole page otherwise, with `extra` (an outcome, a refused
    form's values and errors) shown where it belongs."""
    fragment = bool(section and request.htmx and not request.htmx.history_restore_request)
    context: dict[str, Any] = {
        "student": student,
        "can_edit": request.user.can_act_on_alerts,
        "form": {"kind": ScheduledTask.Kind.REMINDER, "time_zone": settings.TIME_ZONE},
        "errors": {},
    }
    for name in [section] if fragment else SECTIONS:
        context |= SECTION_CONTEXT[name](student)
    if fragment:
        return render(request, f"tutor/proactive/_{section}.html", context | extra, status=status)
    context["switches"] = services.switches(student.organisation_id)
    return render(request, "tutor/proactive/student_schedules.html", context | extra, status=status)


def _notice(section: str, text: str, *, ok: bool = True, task_id: int | None = None) -> dict[str, Any]:
    return {"section": section, "ok": ok, "text": text, "task_id": task_id}


def _done(
    request: HttpRequest, student: Student, section: str, text: str, *, task_id: int | None = None
) -> HttpResponse:
    """Success: the section with the outcome for htmx; a message and a redirect back without it."""
    if request.htmx:
        return _render(request, student, section, notice=_notice(section, text, task_id=task_id))
    messages.success(request, text)
    return redirect(f"{reverse('proactive:student_schedules', args=[student.pk])}#proactive-{section}")


def _require_editor(user: User) -> None:
    if not user.can_act_on_alerts:
        raise PermissionDenied("only the student's teachers and organisation admins change these")


def _in_zone(moment: datetime, time_zone: str) -> str:
    return f"{timezone.localtime(moment, zone(time_zone)):%a %d %b %Y %H:%M} ({time_zone})"


def _run_at(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise ScheduleInvalid("run_at", f"{value!r} is not a date and time like 2026-03-02T16:30") from None


def _pattern_of(student: Student, value: str) -> ObservedPattern | None:
    if not value:
        return None
    found = ObservedPattern.objects.filter(student=student, pk=value if value.isdigit() else 0).first()
    if found is None:
        raise ScheduleInvalid("pattern", "is not one of this student's patterns")
    return found


@require_GET
@vary_on_headers("HX-Request", "HX-Target")
@staff_required
def student_schedules(request: HttpRequest, pk: int) -> HttpResponse:
    """The page, or one section when htmx reloads it (its target names it)."""
    student = get_student_for_user(request.user, pk)
    section = (request.htmx.target or "").removeprefix("proactive-") if request.htmx else ""
    return _render(request, student, section if section in SECTIONS else None)


@require_POST
@staff_required
def schedule_create(request: HttpRequest, pk: int) -> HttpResponse:
    student = get_student_for_user(request.user, pk)
    _require_editor(request.user)
    names = ("kind", "cron", "run_at", "time_zone", "intent", "pattern")
    form = {name: request.POST.get(name, "").strip() for name in names}
    try:
        task = services.schedule_create(
            by=request.user,
            student=student,
            kind=form["kind"],
            intent=form["intent"],
            cron=form["cron"],
            run_at=_run_at(form["run_at"]),
            time_zone=form["time_zone"],
            pattern=_pattern_of(student, form["pattern"]),
        )
    except ScheduleInvalid as invalid:
        errors = {invalid.field: invalid.problem}
        return _render(request, student, "schedules", status=400, form=form, errors=errors)
    text = f"{task.get_kind_display()} scheduled; first run {_in_zone(task.next_run_at, task.time_zone)}."
    return _done(request, student, "schedules", text, task_id=task.pk)


@require_POST
@staff_required
def schedule_manage(request: HttpRequest, pk: int) -> HttpResponse:
    """Pause, resume or cancel (the button's `action`); a stale button is 409 with the reason."""
    task = get_object_or_404(selectors.schedules_for(request.user), pk=pk)
    _require_editor(request.user)
    action = request.POST.get("action", "")
    try:
        task = services.schedule_manage(task=task, by=request.user, action=action)
    except ScheduleInvalid as refused:
        notice = _notice("schedules", f"Nothing changed: {refused.problem}.", ok=False, task_id=task.pk)
        status = 409 if action in services.TRANSITIONS else 400
        return _render(request, task.student, "schedules", status=status, notice=notice)
    text = f"{DONE_WORDS[action]}: {task.get_kind_display().lower()} “{task.intent[:60]}”."
    return _done(request, task.student, "schedules", text, task_id=task.pk)


@require_POST
@staff_required
def run_approve(request: HttpRequest, pk: int) -> HttpResponse:
    """Approve a run waiting in the approval queue: it is sent now, unless a control stops it."""
    runs = TaskRun.objects.filter(task__in=selectors.schedules_for(request.user))
    run = get_object_or_404(runs.select_related("task__student"), pk=pk)
    _require_editor(request.user)
    student = run.task.student
    try:
        status = approve(run=run, by=request.user)
    except ValueError:
        text = "Nothing sent: this run is no longer waiting for approval."
        notice = _notice("schedules", text, ok=False, task_id=run.task_id)
        return _render(request, student, "schedules", status=409, notice=notice)
    if status == TaskRun.Status.SENT:
        text = f"Approved and sent to {student.first_name}."
    else:
        text = f"Approved, not sent: {run.error or run.rationale}."
    return _done(request, student, "schedules", text, task_id=run.task_id)


@require_POST
@staff_required
def student_pause(request: HttpRequest, pk: int) -> HttpResponse:
    student = get_student_for_user(request.user, pk)
    _require_editor(request.user)
    paused = request.POST.get("paused") == "1"
    services.student_pause(student=student, by=request.user, paused=paused)
    state = "paused" if paused else "resumed"
    return _done(request, student, "controls", f"Proactive messages {state} for {student.first_name}.")


@require_POST
@staff_required
def proactiveness_adjust(request: HttpRequest, pk: int) -> HttpResponse:
    student = get_student_for_user(request.user, pk)
    _require_editor(request.user)
    try:
        prefs = services.proactiveness_adjust(
            student=student, by=request.user, level=request.POST.get("level", "")
        )
    except ScheduleInvalid as invalid:
        notice = _notice("controls", f"Nothing changed: the level {invalid.problem}.", ok=False)
        return _render(request, student, "controls", status=400, notice=notice)
    return _done(request, student, "controls", f"Proactiveness set to {prefs.get_level_display().lower()}.")


@require_POST
@staff_required
def suppression_undo(request: HttpRequest, pk: int) -> HttpResponse:
    """Take a suppression back: the type is sent again and its dismissals count from zero."""
    student = get_student_for_user(request.user, pk)
    _require_editor(request.user)
    kind = request.POST.get("suggestion_type", "")
    try:
        services.suppression_undo(student=student, suggestion_type=kind, by=request.user)
    except ScheduleInvalid as refused:
        notice = _notice("controls", f"Nothing changed: {refused.problem}.", ok=False)
        return _render(request, student, "controls", status=409, notice=notice)
    label = ScheduledTask.Kind(kind).label
    return _done(request, student, "controls", f"{label}s are sent to {student.first_name} again.")


@require_POST
@staff_required
def patterns_detect(request: HttpRequest, pk: int) -> HttpResponse:
    student = get_student_for_user(request.user, pk)
    _require_editor(request.user)
    found = services.patterns_detect(student=student)
    days = patterns.WINDOW_DAYS
    text = f"{len(found)} pattern{'s' if len(found) != 1 else ''} found in the last {days} days."
    response = _done(request, student, "patterns", text)
    if request.htmx:
        response["HX-Trigger"] = "patterns-changed"  # the create form offers the new patterns
    return response


@require_GET
@staff_required
def class_schedules(request: HttpRequest, pk: int) -> HttpResponse:
    """Every schedule of the class's students, a page at a time, each with its latest run."""
    school_class = get_class_for_user(request.user, pk)
    status = request.GET.get("status", "")
    tasks = ScheduledTask.objects.filter(student__in=_roster(school_class))
    if status in ScheduledTask.Status.values:
        tasks = tasks.filter(status=status)
    page = Paginator(_with_recent_runs(tasks, 1), CLASS_PAGE_SIZE).get_page(request.GET.get("page"))
    waiting = TaskRun.objects.filter(
        status=TaskRun.Status.PENDING_APPROVAL, task__student__in=_roster(school_class)
    ).count()
    context = {"school_class": school_class, "page": page, "waiting": waiting}
    context |= {"status": status, "statuses": ScheduledTask.Status.choices}
    return render(request, "tutor/proactive/class_schedules.html", context)


def _roster(school_class: SchoolClass) -> QuerySet[Enrollment]:
    return Enrollment.objects.filter(school_class=school_class, status=Enrollment.Status.ACTIVE).values(
        "student_id"
    )


@require_GET
@staff_required
def student_profile(request: HttpRequest, pk: int) -> HttpResponse:
    """What the tutor knows about a learner: the same reading as GET /api/proactive/profile."""
    student = get_student_for_user(request.user, pk)
    profile = selectors.profile(student)
    kinds, statuses = dict(ScheduledTask.Kind.choices), dict(ScheduledTask.Status.choices)
    context = {
        "student": student,
        "patterns": _pattern_rows(profile["patterns"]),
        "settings": profile["settings"],
        "level": ProactivenessSettings.Level(profile["settings"]["level"]).label,
        "suppressed": [kinds[kind] for kind in profile["settings"]["suppressed_types"]],
        "schedules": [
            {**row, "kind_label": kinds[row["kind"]], "status_label": statuses[row["status"]]}
            for row in profile["schedules"]
        ],
    }
    return render(request, "tutor/proactive/profile.html", context)


def _automation(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    waiting = _waiting_runs(request.user).order_by("started_at")
    return {
        "switches": selectors.switch_states(request.user.organisation_id),
        "can_flip": request.user.is_superuser or request.user.role == User.Role.ORG_ADMIN,
        "waiting_count": waiting.count(),
        "waiting": list(waiting[:WAITING_SHOWN]),
        **extra,
    }


@require_GET
@staff_required
def automation(request: HttpRequest) -> HttpResponse:
    """The kill switch and shadow mode, who flipped them, when and why, and the approval queue."""
    return render(request, "tutor/proactive/automation.html", _automation(request))


@require_POST
@staff_required
def switch_flip(request: HttpRequest, name: str) -> HttpResponse:
    """Org admins only (the service refuses anyone else: 403); the next due task reads it."""
    if name not in AutomationSwitch.Name.values:
        raise Http404
    on = request.POST.get("on") == "1"
    reason = request.POST.get("reason", "").strip()
    switch = services.switch_set(name=name, on=on, by=request.user, reason=reason)
    text = f"{switch.get_name_display()} turned {'on' if on else 'off'}."
    if request.htmx:
        return render(request, "tutor/proactive/_switches.html", _automation(request, notice=text))
    messages.success(request, text)
    return redirect("proactive:automation")
