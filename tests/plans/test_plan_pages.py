"""The plan panel on the student page: preview, save, confirm, publish, conflicts and who sees what."""

from __future__ import annotations

import json

from classroom.models import User
from plans.models import PlanDraft, StudyPlan
from plans.services import save_study_plan_draft
from tests import factories
from tests.conftest import login
from tests.plan_fixtures import changed

HTMX = {"HTTP_HX_REQUEST": "true"}


def _form(plan: dict, **overrides) -> dict:
    """The structured form as the browser posts it for `plan`."""
    data = {
        "mode": "form",
        "starts_on": plan["starts_on"],
        "ends_on": plan["ends_on"] or "",
        "objective_id": [o["id"] for o in plan["objectives"]] + [""],
        "objective": [o["text"] for o in plan["objectives"]] + [""],
        "weekly_minutes": str(plan["pacing"]["weekly_minutes"]),
        "sessions_per_week": str(plan["pacing"]["sessions_per_week"]),
        "curricula": plan["curricula"],
        "milestone_title": [m["title"] for m in plan["milestones"]] + [""],
        "milestone_due": [m["due"] for m in plan["milestones"]] + [""],
    }
    data.update(overrides)
    return data


def test_the_student_page_loads_the_plan_panel(client, school, planned):
    login(client, school.teacher)
    page = client.get(f"/students/{school.student.pk}/").content.decode()
    assert f'hx-get="/students/{school.student.pk}/plan/"' in page
    panel = client.get(f"/students/{school.student.pk}/plan/", **HTMX).content.decode()
    assert "version 1" in panel and "Solve two-step linear equations" in panel
    assert "150 minutes a week in 3 sessions" in panel
    assert "Describe the change in your own words" in panel
    assert "<html" not in panel  # the fragment alone for htmx; the whole page without it
    assert "<html" in client.get(f"/students/{school.student.pk}/plan/").content.decode()


def test_outsiders_get_404_and_compliance_reads_without_an_editor(client, school, planned):
    login(client, school.colleague)
    assert client.get(f"/students/{school.student.pk}/plan/").status_code == 404
    assert client.post(f"/students/{school.student.pk}/plan/preview/", _form(planned)).status_code == 404
    draft = save_study_plan_draft(
        student=school.student,
        by=school.teacher,
        plan=changed(planned, weekly_minutes=160),
        rationale="x y z",
        source="form",
    )
    assert client.post(f"/plans/drafts/{draft.pk}/publish/", {"confirm": "yes"}).status_code == 404
    assert client.get(f"/plans/drafts/{draft.pk}/confirm/").status_code == 404
    compliance = factories.UserFactory(organisation=school.organisation, role=User.Role.COMPLIANCE)
    login(client, compliance)
    panel = client.get(f"/students/{school.student.pk}/plan/").content.decode()
    assert "Solve two-step linear equations" in panel
    assert "Change the plan" not in panel and "Publish…" not in panel
    assert client.post(f"/students/{school.student.pk}/plan/preview/", _form(planned)).status_code == 403


def test_the_form_previews_the_change_and_names_what_is_wrong(client, school, planned):
    login(client, school.teacher)
    url = f"/students/{school.student.pk}/plan/preview/"
    preview = client.post(url, _form(planned, weekly_minutes="200"), **HTMX).content.decode()
    assert "Weekly minutes: 150 → 200 (+50)" in preview
    assert "High impact, so a second approver publishes it" in preview
    assert "Save draft" in preview
    wrong = client.post(url, _form(planned, weekly_minutes="900", sessions_per_week="0"), **HTMX)
    text = wrong.content.decode()
    assert "pacing.sessions_per_week: must be at least 1" in text
    assert "Save draft" not in text
    unchanged = client.post(url, _form(planned), **HTMX).content.decode()
    assert "plan: the proposal changes nothing in the published plan" in unchanged
    assert not PlanDraft.objects.filter(state="open").exists()


def test_save_confirm_and_publish_in_place(client, school, planned):
    login(client, school.teacher)
    proposed = changed(planned, weekly_minutes=165)
    saved = client.post(
        f"/students/{school.student.pk}/plan/drafts/",
        {"plan": json.dumps(proposed), "source": "form", "rationale": "more practice before the test"},
        **HTMX,
    )
    assert "Draft saved with 1 change, open until" in saved.content.decode()
    draft = PlanDraft.objects.get(state="open", plan__student=school.student, base_number=1)
    confirm = client.get(f"/plans/drafts/{draft.pk}/confirm/", **HTMX).content.decode()
    assert "Publish these changes" in confirm and "Weekly minutes: 150 → 165 (+15)" in confirm
    assert "<html" not in confirm
    assert "<html" in client.get(f"/plans/drafts/{draft.pk}/confirm/").content.decode()  # works without JS
    unconfirmed = client.post(f"/plans/drafts/{draft.pk}/publish/", {}, **HTMX)
    assert unconfirmed.status_code == 409
    assert (
        "Not published: confirm: review the changes and confirm them to publish"
        in unconfirmed.content.decode()
    )
    published = client.post(f"/plans/drafts/{draft.pk}/publish/", {"confirm": "yes"}, **HTMX)
    assert published.status_code == 200
    assert "Published version 2." in published.content.decode()
    again = client.post(f"/plans/drafts/{draft.pk}/publish/", {"confirm": "yes"}, **HTMX)
    assert again.status_code == 409
    assert "this draft was already published by" in again.content.decode()
    assert StudyPlan.objects.get(student=school.student).version_number == 2


def test_a_rationale_is_required_to_save(client, school, planned):
    login(client, school.teacher)
    response = client.post(
        f"/students/{school.student.pk}/plan/drafts/",
        {"plan": json.dumps(changed(planned, weekly_minutes=165)), "source": "form", "rationale": ""},
        **HTMX,
    )
    assert response.status_code == 400
    assert "rationale: say why the plan should change" in response.content.decode()


def test_the_panel_does_a_fixed_number_of_queries(client, school, planned, django_assert_max_num_queries):
    login(client, school.teacher)
    url = f"/students/{school.student.pk}/plan/"
    with django_assert_max_num_queries(14) as few:
        client.get(url, **HTMX)
    for minutes in range(160, 175):
        save_study_plan_draft(
            student=school.student,
            by=school.teacher,
            plan=changed(planned, weekly_minutes=minutes),
            rationale="one of many",
            source="form",
        )
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(url, **HTMX)
