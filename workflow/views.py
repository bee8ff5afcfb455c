"""The Teacher Activation Workflow's six surfaces (shared/seeds/002) as server-rendered pages.

Each surface is a page whose panel (`workflow/_<surface>.html`, the workflow's progress included)
is rendered alone for htmx. Every POST calls one service and answers with the panel: the outcome,
or the refusal in words a teacher reads, in place (400/409 are swapped too). Moving between surfaces
saves the draft's step; the system proposes, the teacher decides (V-12).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from contextlib import suppress
from typing import Any
from urllib.parse import urlencode

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from classroom.inputs import parse_id
from classroom.models import SchoolClass, User
from classroom.views import staff_required
from workflow import catalog, services
from workflow.catalog import OverrideScope, Stage, Surface
from workflow.models import (
    WorkflowDraft,
)
from workflow.panels import (
    PANELS,
    Selection,
    as_int,
    cluster_member,
    draft_choices,
    excluded_members,
    find_target,
    member_rows,
)
from workflow.services import WorkflowError
from workflow.words import CHOOSE_FIRST, STAGE_TITLES, activation_words, no, ok, refusal_words, resolved_words

URL_NAMES = {
    Surface.RECOMMENDATIONS: "recommendations",
    Surface.SMART_GROUPING: "smart_grouping",
    Surface.SCAFFOLD_PREVIEW: "scaffold_preview",
    Surface.ACTIVATION_REVIEW: "activation_review",
    Surface.ACTIVATION_CONFIRMATION: "activation_confirmation",
    Surface.PLAN_REVIEW: "plan_review",
}
SELECTING_SURFACES = (Surface.SCAFFOLD_PREVIEW, Surface.ACTIVATION_REVIEW, Surface.ACTIVATION_CONFIRMATION)
# Steps a teacher reaches only by doing them (a commit, a resolution, a plan decision): "Continue"
# never walks through one of these on the way to another step.
ACTION_STEPS = frozenset({"TAW_11", "TAW_12", "TAW_15", "TAW_16", "TAW_17"})


# Pages ---------------------------------------------------------------------------------------------


@require_GET
@staff_required
def resume(request: HttpRequest, class_id: int) -> HttpResponse:
    """Where the teacher left off: the surface of the draft's current step (the first one if none)."""
    school_class = services.class_for_teacher(request.user, class_id)
    draft = services.draft_get(teacher=request.user, school_class=school_class)
    step = catalog.STEP_BY_ID[_current_step(draft)]
    return redirect(_surface_url(school_class, step.surface, _selection({}, draft)))


@require_GET
@vary_on_headers("HX-Request")
@staff_required
def surface_page(request: HttpRequest, class_id: int, surface: Surface) -> HttpResponse:
    return _page(request, services.class_for_teacher(request.user, class_id), surface)


# Actions -------------------------------------------------------------------------------------------


@require_POST
@staff_required
def step_move(request: HttpRequest, class_id: int) -> HttpResponse:
    """Navigation: the draft moves to the chosen step (remembering the chosen group or student) and
    the browser goes to that step's surface; an unreachable step is explained where the teacher is."""
    school_class = services.class_for_teacher(request.user, class_id)
    back = _surface_named(request.POST.get("surface", ""))
    draft = services.draft_get(teacher=request.user, school_class=school_class)
    chosen, changes = _posted_selection(request.POST), {}
    if chosen is not None:
        changes = chosen.state() | ({} if chosen == _selection({}, draft) else {"members": []})
    try:
        draft = _move(request.user, school_class, request.POST.get("step", ""), changes)
    except WorkflowError as error:
        return _refused(request, school_class, back, error)
    step = catalog.STEP_BY_ID[draft.step]
    return _go(request, _surface_url(school_class, step.surface, _selection({}, draft)))


@require_POST
@staff_required
def recommendations_refresh(request: HttpRequest, class_id: int) -> HttpResponse:
    school_class = services.class_for_teacher(request.user, class_id)
    count = services.recommendations_refresh(school_class=school_class, by=request.user)
    line = f"Recommendations refreshed from the latest data: {count} student{'s' if count != 1 else ''}."
    return _page(request, school_class, Surface.RECOMMENDATIONS, outcome=ok(line))


@require_POST
@staff_required
def alert_review(request: HttpRequest, class_id: int, alert_id: int) -> HttpResponse:
    """TAW_15 from the Recommendations Panel or Plan Review: dismiss with a context flag, or escalate."""
    school_class = services.class_for_teacher(request.user, class_id)
    surface = _surface_named(request.POST.get("surface", ""))
    flag = request.POST.get("context_flag", "")
    try:
        alert = services.review(
            teacher=request.user,
            school_class=school_class,
            alert_id=alert_id,
            action=request.POST.get("action", ""),
            context_flag=flag,
        )
    except WorkflowError as error:
        return _refused(request, school_class, surface, error)
    if surface == Surface.PLAN_REVIEW:
        _move_if_reachable(request.user, school_class, "TAW_15")
    return _page(request, school_class, surface, outcome=ok(resolved_words(alert, flag)))


@require_POST
@staff_required
def membership(request: HttpRequest, class_id: int) -> HttpResponse:
    """TAW_06: take a member out of their cluster with a grouping override code, or put them back;
    the draft holds the list as `{"excluded": [{"studentId", "overrideCode"}]}`."""
    school_class = services.class_for_teacher(request.user, class_id)
    student = cluster_member(school_class, parse_id(request.POST.get("student"), field="student"))
    if student is None:
        outcome = no("That student is in none of this class's groups.")
        return _page(request, school_class, Surface.SMART_GROUPING, status=400, outcome=outcome)
    draft = services.draft_get(teacher=request.user, school_class=school_class)
    excluded = [e for e in excluded_members(draft) if e.get("studentId") != student.pk]
    code, taking_out = request.POST.get("override_code", ""), request.POST.get("action") != "put_back"
    if taking_out:
        excluded.append({"studentId": student.pk, "overrideCode": code})
    try:
        _move(request.user, school_class, "TAW_06", {"excluded": excluded})
    except WorkflowError as error:
        return _refused(request, school_class, Surface.SMART_GROUPING, error)
    if taking_out:
        label = catalog.OVERRIDE_BY_CODE[code].label
        line = f"{student.full_name} is out of the group ({label}): they will not be activated with it."
    else:
        line = f"{student.full_name} is back in the group."
    return _page(request, school_class, Surface.SMART_GROUPING, outcome=ok(line))


@require_POST
@staff_required
def activation_review_save(request: HttpRequest, class_id: int) -> HttpResponse:
    """TAW_07..09: the teacher's per-member tiers (a deviation with its activation override code and
    confirmation) go into the draft, then on to the Activation Confirmation (TAW_10)."""
    school_class = services.class_for_teacher(request.user, class_id)
    draft = services.draft_get(teacher=request.user, school_class=school_class)
    selection = _posted_selection(request.POST) or _selection({}, draft)
    target = find_target(school_class, selection, draft)
    if target is None:
        outcome = no(CHOOSE_FIRST)
        return _page(
            request, school_class, Surface.ACTIVATION_REVIEW, status=400, outcome=outcome, selection=selection
        )
    members, deferred, excluded = member_rows(target)
    try:
        choices = _tier_choices(request.POST, members)
        steps = [*(["TAW_08"] if choices else []), *(["TAW_09"] if deferred or excluded else []), "TAW_10"]
        with transaction.atomic():
            for step in steps:
                _move(request.user, school_class, step, selection.state() | {"members": choices})
    except WorkflowError as error:
        return _refused(request, school_class, Surface.ACTIVATION_REVIEW, error, selection=selection)
    return _go(request, _surface_url(school_class, Surface.ACTIVATION_CONFIRMATION, selection))


@require_POST
@staff_required
def activation_confirm(request: HttpRequest, class_id: int) -> HttpResponse:
    """TAW_11 (a cluster, in bulk) or TAW_12 (one student: a bundle is activated, a non-bundle
    recommendation routed). The outcome, or the guardrail's refusal, is shown in place."""
    school_class = services.class_for_teacher(request.user, class_id)
    draft = services.draft_get(teacher=request.user, school_class=school_class)
    selection = _posted_selection(request.POST) or _selection({}, draft)
    choices = draft_choices(draft, selection)
    try:
        result = services.activate(
            teacher=request.user,
            school_class=school_class,
            cluster_id=selection.cluster_id,
            student_ids=[selection.student_id] if selection.student_id else None,
            members=[
                services.MemberChoice(c["studentId"], c["scaffoldTier"], c["overrideCode"]) for c in choices
            ],
            confirmed=all(c.get("confirmed") for c in choices),
        )
    except WorkflowError as error:
        surface = Surface.ACTIVATION_CONFIRMATION
        return _refused(request, school_class, surface, error, selection=selection, choices=choices)
    outcome = activation_words(result, school_class)
    return _page(request, school_class, Surface.ACTIVATION_CONFIRMATION, outcome=outcome, selection=selection)


@require_POST
@staff_required
def plan_continue(request: HttpRequest, class_id: int, assignment_id: int) -> HttpResponse:
    """TAW_16: keep the plan going after reviewing it."""
    school_class = services.class_for_teacher(request.user, class_id)
    try:
        assignment = services.plan_continue(
            teacher=request.user, school_class=school_class, assignment_id=assignment_id
        )
    except WorkflowError as error:
        return _refused(request, school_class, Surface.PLAN_REVIEW, error)
    _move_if_reachable(request.user, school_class, "TAW_16")
    line = f"{assignment.student.full_name}'s plan on {assignment.bundle.title} continues."
    return _page(request, school_class, Surface.PLAN_REVIEW, outcome=ok(line))


@require_POST
@staff_required
def plan_exit(request: HttpRequest, class_id: int, assignment_id: int) -> HttpResponse:
    """TAW_17: close a bundle assignment with an exit override code."""
    school_class = services.class_for_teacher(request.user, class_id)
    code = request.POST.get("override_code", "")
    try:
        assignment = services.exit_plan(
            teacher=request.user, school_class=school_class, assignment_id=assignment_id, override_code=code
        )
    except WorkflowError as error:
        return _refused(request, school_class, Surface.PLAN_REVIEW, error)
    label = catalog.OVERRIDE_BY_CODE[code].label
    line = f"Closed {assignment.student.full_name}'s plan on {assignment.bundle.title}: {label}."
    return _page(request, school_class, Surface.PLAN_REVIEW, outcome=ok(line))


# Rendering -----------------------------------------------------------------------------------------


def _page(
    request: HttpRequest,
    school_class: SchoolClass,
    surface: Surface,
    *,
    status: int = 200,
    outcome: dict[str, Any] | None = None,
    selection: Selection | None = None,
) -> HttpResponse:
    """The surface's panel alone for htmx, the whole page otherwise."""
    draft = services.draft_get(teacher=request.user, school_class=school_class)
    selection = selection or _selection(request.GET, draft)
    context = {
        "school_class": school_class,
        "surface": surface,
        "surface_title": catalog.SURFACE_TITLES[surface],
        "progress": _progress(draft),
        "tabs": _tabs(school_class, surface, selection, draft),
        "selection": selection,
        "outcome": outcome,
        **PANELS[surface](school_class, draft, selection),
    }
    name = URL_NAMES[surface]
    template = f"workflow/_{name}.html" if request.htmx else f"workflow/{name}.html"
    return render(request, template, context, status=status)


def _refused(
    request: HttpRequest,
    school_class: SchoolClass,
    surface: Surface,
    error: WorkflowError,
    *,
    selection: Selection | None = None,
    choices: Iterable[dict[str, Any]] = (),
) -> HttpResponse:
    outcome = no(refusal_words(error, choices))
    return _page(request, school_class, surface, status=error.status, outcome=outcome, selection=selection)


def _go(request: HttpRequest, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _surface_url(school_class: SchoolClass, surface: Surface, selection: Selection) -> str:
    url = reverse(f"workflow:{URL_NAMES[surface]}", args=[school_class.pk])
    query = selection.query() if surface in SELECTING_SURFACES else {}
    return f"{url}?{urlencode(query)}" if query else url


def _surface_named(value: str) -> Surface:
    try:
        return Surface(value)
    except ValueError:
        return Surface.RECOMMENDATIONS


def _progress(draft: WorkflowDraft | None) -> dict[str, Any]:
    """The 17 steps in their five stages, the draft's current step marked."""
    current = catalog.STEP_BY_ID[_current_step(draft)]
    stages = [
        {
            "title": STAGE_TITLES[stage],
            "current": stage == current.stage,
            "steps": [
                {"id": step.id, "title": step.title, "current": step.id == current.id}
                for step in catalog.STEPS
                if step.stage == stage
            ],
        }
        for stage in Stage
    ]
    return {
        "stages": stages,
        "step": current,
        "number": catalog.STEP_IDS.index(current.id) + 1,
        "total": len(catalog.STEPS),
        "stage_title": STAGE_TITLES[current.stage],
        "surface_title": catalog.SURFACE_TITLES[current.surface],
        "draft": draft,
    }


def _tabs(
    school_class: SchoolClass, surface: Surface, selection: Selection, draft: WorkflowDraft | None
) -> list[dict[str, Any]]:
    at = catalog.STEP_BY_ID[_current_step(draft)].surface
    return [
        {
            "title": catalog.SURFACE_TITLES[each],
            "url": _surface_url(school_class, each, selection),
            "current": each == surface,
            "draft_here": each == at,
        }
        for each in Surface
    ]


# The draft: where the teacher is, and moving on ------------------------------------------------


def _current_step(draft: WorkflowDraft | None) -> str:
    return draft.step if draft else catalog.FIRST_STEP


def _path(current: str, target: str) -> list[str]:
    """The steps from `current` to `target` through steps that need no teacher action (loading,
    checking, previewing): what one "Continue" stands for. Unreachable that way: just `target`,
    which draft_save refuses naming the current step."""
    if target not in catalog.STEP_BY_ID or catalog.can_move(current, target):
        return [target]
    came_from: dict[str, str] = {}
    queue = deque([current])
    while queue:
        step = queue.popleft()
        for following in catalog.STEP_BY_ID[step].next:
            passable = following not in ACTION_STEPS and following != catalog.FIRST_STEP
            if following in came_from or following == current or not (passable or following == target):
                continue
            came_from[following] = step
            if following == target:
                path = [target]
                while came_from[path[-1]] != current:
                    path.append(came_from[path[-1]])
                return path[::-1]
            queue.append(following)
    return [target]


def _move(teacher: User, school_class: SchoolClass, target: str, changes: Mapping[str, Any]) -> WorkflowDraft:
    """Save the draft at `target` with `changes` to its state (starting over clears the state); all
    the steps on the way are saved, or none."""
    with transaction.atomic():
        draft = services.draft_get(teacher=teacher, school_class=school_class)
        state = {} if target == catalog.FIRST_STEP else {**(draft.state if draft else {}), **changes}
        for step in _path(_current_step(draft), target):
            draft = services.draft_save(teacher=teacher, school_class=school_class, step=step, state=state)
    return draft


def _move_if_reachable(teacher: User, school_class: SchoolClass, target: str) -> None:
    # The action itself is done and logged at its own step; a draft elsewhere stays where it is.
    with suppress(WorkflowError):
        _move(teacher, school_class, target, {})


def _selection(params: Mapping[str, Any], draft: WorkflowDraft | None) -> Selection:
    posted = _posted_selection(params)
    if posted is not None:
        return posted
    state = draft.state if draft else {}
    return Selection(as_int(state.get("clusterId")), as_int(state.get("studentId")))


def _posted_selection(params: Mapping[str, Any]) -> Selection | None:
    cluster = parse_id(params.get("cluster"), field="cluster")
    student = parse_id(params.get("student"), field="student")
    if cluster:
        return Selection(cluster_id=cluster)
    return Selection(student_id=student) if student else None


def _tier_choices(post: Mapping[str, Any], members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The members whose tier differs from the recommendation, as the draft keeps them. A reason
    given is checked now; a missing reason or confirmation is the activation's to refuse."""
    choices = []
    for member in members:
        pk = member["student"].pk
        tier = post.get(f"tier_{pk}", member["recommended"])
        if not member["bundle"] or member["active"] or tier == member["recommended"]:
            continue
        code = post.get(f"code_{pk}", "")
        if code:
            services.check_override(code, OverrideScope.ACTIVATION)
        confirmed = post.get(f"confirm_{pk}") == "yes"
        choices.append({"studentId": pk, "scaffoldTier": tier, "overrideCode": code, "confirmed": confirmed})
    return choices
