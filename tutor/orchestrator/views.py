"""The "Learner's day" panel of the teacher's student page: what the learner app set and did."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from classroom.access import get_student_for_user
from classroom.views import staff_required
from tutor.orchestrator.selectors import teacher_panel


@require_GET
@vary_on_headers("HX-Request")
@staff_required
def day_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The panel alone for htmx (the student page loads it in place), the whole page otherwise."""
    student = get_student_for_user(request.user, pk)
    context = {"student": student, "panel": teacher_panel(student)}
    template = "tutor/orchestrator/_day.html" if request.htmx else "tutor/orchestrator/day_page.html"
    return render(request, template, context)
