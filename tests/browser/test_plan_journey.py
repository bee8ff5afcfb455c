"""A teacher changes a student's study plan from the student page in a real Chromium: a change typed
in plain words is read by the rule-based parser (no AI model is configured in tests), previewed as
deltas in words, saved as a draft with a rationale, confirmed and published, each step swapping the
plan panel in place; a change that breaks the organisation's rules is refused in the preview; and
the structured form previews the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from audit.models import ActivityEvent
from plans.models import PlanDraft, PlanVersion, StudyPlan
from tests.browser.pages import log_in

pytestmark = pytest.mark.browser

PASSWORD = "plan-journey-password"
RULES_BADGE = "Read by the rule-based parser, not the AI model"
RATIONALE = "She finishes homework early; one more short session before the Unit 2 test."


@dataclass
class StudentPage:
    page: Page
    url: str

    @property
    def panel(self) -> Locator:
        return self.page.locator("#plan-panel")

    @property
    def preview(self) -> Locator:
        return self.page.locator("#plan-preview")

    def assert_in_place(self) -> None:
        """A full load drops the window marker: every step must swap the panel, not navigate."""
        assert self.page.url == self.url, f"the page navigated to {self.page.url}"
        assert self.page.evaluate("window.__marker") == 1, "the page reloaded instead of swapping"


@pytest.fixture
def student_page(transactional_db, school, planned, page: Page) -> StudentPage:
    """The teacher, logged in through the form, on the page of a student with version 1 of a plan."""
    school.teacher.set_password(PASSWORD)
    school.teacher.save(update_fields=["password"])
    log_in(page, school.teacher.username, PASSWORD)

    page.goto(f"/students/{school.student.pk}/")
    expect(page.locator("h1")).to_have_text(school.student.full_name)
    # The panel arrives by htmx after the page loads.
    expect(page.locator("#plan-panel h2")).to_contain_text("version 1")
    page.evaluate("window.__marker = 1")
    return StudentPage(page=page, url=page.url)


def _preview_text(student_page: StudentPage, text: str) -> None:
    label = "Describe the change in your own words"
    form = student_page.panel.locator("form").filter(has=student_page.page.get_by_label(label))
    form.get_by_label(label).fill(text)
    form.get_by_role("button", name="Preview").click()
    expect(student_page.preview).to_contain_text(RULES_BADGE)
    student_page.assert_in_place()


def test_teacher_previews_saves_and_publishes_a_plain_text_change(student_page: StudentPage, school) -> None:
    panel, preview = student_page.panel, student_page.preview
    today = timezone.localdate()
    moved = today + timedelta(days=21)
    was_due, new_due = (today + timedelta(days=14)).isoformat(), moved.isoformat()
    text = f"add 15 minutes a week and move the Unit 2 test to {new_due}"
    deltas = ["Weekly minutes: 150 → 165 (+15)", f"Milestone moved: Unit 2 test, {was_due} → {new_due}"]
    expect(panel).to_contain_text("150 minutes a week in 3 sessions")

    # 1. Preview: what the parser read, and the deltas in words; nothing is saved yet.
    _preview_text(student_page, text)
    expect(preview.locator("ul.understood li")).to_have_text(
        ["weekly minutes 150 → 165", f"milestone moved: Unit 2 test {was_due} → {new_due}"]
    )
    expect(preview).not_to_contain_text("Not understood")
    expect(preview.get_by_role("heading")).to_have_text("Preview against version 1")
    expect(preview.locator("ul.changes li")).to_have_text(deltas)
    expect(preview).not_to_contain_text("High impact")
    assert not PlanDraft.objects.filter(base_number=1).exists()

    # 2. Save the draft with a rationale: the panel shows it in place.
    preview.get_by_label(re.compile(r"^Why this change")).fill(RATIONALE)
    preview.get_by_role("button", name="Save draft").click()
    expect(panel.get_by_role("status")).to_contain_text("Draft saved")
    student_page.assert_in_place()
    draft = PlanDraft.objects.get(base_number=1)
    assert (draft.state, draft.source, draft.source_text) == (
        PlanDraft.State.OPEN,
        PlanDraft.Source.TEXT_RULES,
        text,
    )
    card = panel.get_by_role("article", name=f"Draft {draft.pk}")
    expect(card).to_contain_text("Plain text, read by the rule-based parser")
    expect(card).to_contain_text(f"Why: {RATIONALE}")
    expect(card.locator("ul.changes li")).to_have_text(deltas)
    expect(preview).to_be_empty()
    expect(panel).to_contain_text("150 minutes a week")  # still version 1 until published

    # 3. Publish: a confirmation in place lists the deltas, then the panel shows version 2.
    card.get_by_role("link", name="Publish…").click()
    confirm = card.get_by_role("dialog", name="Confirm publishing")
    expect(confirm.locator("ul.changes li")).to_have_text(deltas)
    expect(confirm).to_contain_text(f"Why: {RATIONALE}")
    student_page.assert_in_place()
    confirm.get_by_role("button", name="Confirm and publish").click()
    expect(panel.get_by_role("status")).to_have_text("Published version 2.")
    student_page.assert_in_place()
    expect(panel.locator("h2")).to_contain_text("version 2")
    expect(panel).to_contain_text("165 minutes a week in 3 sessions")
    expect(panel.get_by_role("article")).to_have_count(0)
    expect(panel.locator("table tr").filter(has_text="Unit 2 test")).to_contain_text(
        f"{moved:%a} {moved.day} {moved:%b}"
    )

    study_plan = StudyPlan.objects.get(student=school.student)
    version = PlanVersion.objects.get(plan=study_plan, number=2)
    assert study_plan.version_number == 2 and study_plan.current_version == version
    assert version.document["pacing"]["weekly_minutes"] == 165
    assert (version.rationale, version.changes, version.published_by) == (RATIONALE, deltas, school.teacher)
    saved = ActivityEvent.objects.get(verb="plan.draft_saved", target_id=str(draft.pk))
    published = ActivityEvent.objects.get(verb="plan.published", details__version=2)
    for event in (saved, published):
        assert (event.actor_id, event.why, event.source, event.student_id) == (
            school.teacher.pk,
            RATIONALE,
            ActivityEvent.Source.PAGE,
            school.student.pk,
        )
    assert saved.details["changes"] == published.details["changes"] == deltas


def test_a_change_beyond_the_organisations_maximum_cannot_be_saved(student_page: StudentPage) -> None:
    _preview_text(student_page, "set weekly minutes to 900")
    errors = student_page.preview.get_by_role("alert")
    expect(errors).to_contain_text("This change cannot be saved")
    expect(errors.locator("li")).to_have_text(
        ["pacing.weekly_minutes: 900 is above the organisation's maximum of 600"]
    )
    expect(student_page.preview.get_by_role("button", name="Save draft")).to_have_count(0)
    assert not PlanDraft.objects.filter(base_number=1).exists()


def test_the_structured_form_previews_the_same_deltas(student_page: StudentPage) -> None:
    panel, preview = student_page.panel, student_page.preview
    panel.get_by_text("Or edit the fields").click()
    form = panel.locator("form.plan-form")
    form.get_by_label("Minutes a week").fill("160")
    form.get_by_role("button", name="Preview").click()
    expect(preview.locator("ul.changes li")).to_have_text(["Weekly minutes: 150 → 160 (+10)"])
    expect(preview).not_to_contain_text(RULES_BADGE)
    expect(preview.get_by_role("button", name="Save draft")).to_be_visible()
    student_page.assert_in_place()
