"""The tutor chat on the student page, beside its context bundle."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from classroom.access import get_student_for_user
from classroom.views import staff_required
from plans.services import can_edit
from tutor.chat.selectors import context_bundle, conversation
from tutor.chat.services import ChatError, chat_send


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
