"""The plan panel of the student page: the published plan, the editor (form or plain text), the
preview of a change, drafts, publishing with confirmation, and the approval queue."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from classroom.access import get_student_for_user, students_for
from classroom.inputs import PLAN_TEXT, too_long
from classroom.models import Student, User
from classroom.views import staff_required
from plans import schema, selectors, services
from plans.forms import plan_from_form
from plans.interpret import interpret
from plans.models import Approval, PlanDraft

NO_PLAN_YET = "This student has no published plan yet: write the first one in the form."


def drafts_for(user: User) -> QuerySet[PlanDraft]:
    return PlanDraft.objects.filter(plan__student__in=students_for(user)).select_related("plan__student")


def get_draft_for_user(user: User, pk: int) -> PlanDraft:
    return get_object_or_404(drafts_for(user), pk=pk)


def get_approval_for_user(user: User, pk: int) -> Approval:
    return get_object_or_404(
        Approval.objects.filter(draft__in=drafts_for(user)).select_related("draft__plan__student"), pk=pk
    )


def _panel(request: HttpRequest, student: Student, status: int = 200, **extra: Any) -> HttpResponse:
    """The panel alone for htmx, the whole page otherwise; `extra` carries the outcome to show."""
    context = {"panel": selectors.plan_panel(student, request.user), "student": student, **extra}
    template = "plans/_panel.html" if request.htmx else "plans/plan_page.html"
    return render(request, template, context, status=status)


def _refused(request: HttpRequest, student: Student, message: str) -> HttpResponse:
    """A conflict: nothing changed, and the panel says why in place."""
    return _panel(request, student, status=409, outcome={"ok": False, "lines": [message]})


@require_GET
@vary_on_headers("HX-Request")
@staff_required
def plan_panel(request: HttpRequest, pk: int) -> HttpResponse:
    return _panel(request, get_student_for_user(request.user, pk))


@require_POST
@staff_required
def plan_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The proposal read from the form or the plain text, validated and diffed: nothing is saved."""
    student = get_student_for_user(request.user, pk)
    if not services.can_edit(request.user, student):
        raise PermissionDenied("only the student's teachers and organisation admins change study plans")
    text = request.POST.get("text", "").strip()
    interpretation = None
    if request.POST.get("mode") == "text":
        base, _ = services.published_document(student)
        if not text:
            return _preview(request, student, error="Write the change you want in the box first.")
        if len(text) > PLAN_TEXT:
            return _preview(request, student, status=400, error=f"text: {too_long(len(text), PLAN_TEXT)}.")
        if base is None:
            return _preview(request, student, error=NO_PLAN_YET)
        interpretation = interpret(student=student, by=request.user, text=text, base=base)
        proposal = services.plan_propose(student=student, plan=interpretation.plan)
        proposal.read(interpretation)
        source = PlanDraft.Source.TEXT if interpretation.read_by == "model" else PlanDraft.Source.TEXT_RULES
    else:
        proposal = services.plan_propose(student=student, plan=plan_from_form(request.POST))
        source = PlanDraft.Source.FORM
    return _preview(request, student, proposal=proposal, source=source, text=text)


def _preview(request: HttpRequest, student: Student, status: int = 200, **context: Any) -> HttpResponse:
    proposal = context.get("proposal")
    if proposal is not None and proposal.document is not None:
        context["plan_json"] = json.dumps(proposal.document.as_json())
    return render(request, "plans/_preview.html", {"student": student, **context}, status=status)


@require_POST
@staff_required
def draft_save(request: HttpRequest, pk: int) -> HttpResponse:
    student = get_student_for_user(request.user, pk)
    try:
        plan = json.loads(request.POST.get("plan", ""))
    except ValueError:
        plan = None
    try:
        draft = services.save_study_plan_draft(
            student=student,
            by=request.user,
            plan=plan,
            rationale=request.POST.get("rationale", ""),
            source=request.POST.get("source", PlanDraft.Source.FORM),
            source_text=request.POST.get("text", ""),
        )
    except schema.PlanInvalid as invalid:
        return _panel(request, student, status=400, outcome={"ok": False, "lines": invalid.errors})
    except ValueError as error:
        return _panel(request, student, status=400, outcome={"ok": False, "lines": [str(error)]})
    changes = len(services.schema_summary(draft))
    expires = timezone.localtime(draft.expires_at)
    plural = "s" if changes != 1 else ""
    line = f"Draft saved with {changes} change{plural}, open until {expires:%a %d %b %H:%M}."
    return _panel(request, student, outcome={"ok": True, "lines": [line]})


@require_GET
@vary_on_headers("HX-Request")
@staff_required
def publish_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    """The confirmation step: the deltas in words, and what publishing will do."""
    draft = get_draft_for_user(request.user, pk)
    policy = services.policy_for(draft.plan.student.organisation)
    reasons = services.high_impact_reasons(
        schema.PlanDiff(**draft.diff), policy, first=draft.base_number == 0
    )
    context = {"draft": draft, "student": draft.plan.student, "summary": services.schema_summary(draft)}
    template = "plans/_confirm.html" if request.htmx else "plans/confirm_page.html"
    return render(request, template, {**context, "reasons": reasons})


@require_POST
@staff_required
def draft_publish(request: HttpRequest, pk: int) -> HttpResponse:
    draft = get_draft_for_user(request.user, pk)
    student = draft.plan.student
    try:
        confirmed = request.POST.get("confirm") == "yes"
        draft = services.plan_publish(draft=draft, by=request.user, confirmed=confirmed)
    except (services.PublishConflict, schema.PlanInvalid) as refused:
        return _refused(request, student, f"Not published: {refused}")
    if draft.state == PlanDraft.State.PENDING_APPROVAL:
        lines = [f"Waiting for a second approver: {'; '.join(draft.high_impact)}."]
    else:
        lines = [f"Published version {draft.published_version.number}."]
    return _panel(request, student, outcome={"ok": True, "lines": lines})


@require_POST
@staff_required
def draft_discard(request: HttpRequest, pk: int) -> HttpResponse:
    draft = get_draft_for_user(request.user, pk)
    try:
        services.draft_discard(draft=draft, by=request.user)
    except services.PublishConflict as refused:
        return _refused(request, draft.plan.student, str(refused))
    return _panel(request, draft.plan.student, outcome={"ok": True, "lines": ["Draft discarded."]})


@require_POST
@staff_required
def approval_decide(request: HttpRequest, pk: int) -> HttpResponse:
    approval = get_approval_for_user(request.user, pk)
    student = approval.draft.plan.student
    approve = request.POST.get("decision") == "approve"
    try:
        note = request.POST.get("note", "")
        services.approval_decide(approval=approval, by=request.user, approve=approve, note=note)
    except services.PublishConflict as refused:
        return _refused(request, student, f"Not published: {refused}")
    line = "Approved and published." if approve else "Rejected: the draft is closed."
    return _panel(request, student, outcome={"ok": True, "lines": [line]})
