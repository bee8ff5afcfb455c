"""The tutor chat on the student page, beside its context bundle, and the tutor's proposals in it."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from classroom.access import get_student_for_user
from classroom.views import staff_required
from plans.services import can_edit
from tutor.chat.selectors import context_bundle, conversation, get_proposal_for_user
from tutor.chat.services import ChatError, ProposalDecided, chat_send, proposal_confirm, proposal_dismiss
from tutor.models import ToolProposal


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
@staff_required
def chat_panel(request: HttpRequest, pk: int) -> HttpResponse:
    student = get_student_for_user(request.user, pk)
    context: dict[str, Any] = {"student": student, "can_chat": can_edit(request.user, student)}
    status, drafted = 200, False
    if request.method == "POST":
        try:
            answer = chat_send(student=student, by=request.user, text=request.POST.get("message", ""))
            drafted = answer.draft_id is not None
        except ChatError as error:
            context["error"], context["message"], status = str(error), request.POST.get("message", ""), 400
    context["chat"] = conversation(student, request.user)
    context["bundle"] = context_bundle(student)
    template = "tutor/_chat.html" if request.htmx else "tutor/chat_page.html"
    response = render(request, template, context, status=status)
    if drafted:
        response["HX-Trigger"] = "plan-changed"  # the plan panel reloads to show the new draft
    return response


@require_POST
@staff_required
def proposal_decide(request: HttpRequest, pk: int, *, confirm: bool) -> HttpResponse:
    """Confirm (it runs, as you) or dismiss one of the tutor's proposals: the card again for htmx,
    else a redirect back to it in the chat; 409 with the reason when it was decided already or no
    longer applies, 403 for someone who reaches the student but may not act for them."""
    proposal = get_proposal_for_user(request.user, pk)
    decide = proposal_confirm if confirm else proposal_dismiss
    notice = ""
    try:
        proposal = decide(proposal=proposal, by=request.user)
    except ProposalDecided as decided:
        notice = str(decided)
    refused = bool(notice) or proposal.status == ToolProposal.Status.FAILED
    if request.htmx:
        context = {"proposal": proposal, "can_chat": True, "notice": notice}
        return render(request, "tutor/_proposal.html", context, status=409 if refused else 200)
    if refused:
        messages.error(request, notice or f"Nothing changed: {proposal.error}.")
    else:
        messages.success(request, f"{proposal.get_status_display()}: {proposal.description}")
    return redirect(f"{reverse('chat:panel', args=[proposal.student_id])}#proposal-{proposal.pk}")
