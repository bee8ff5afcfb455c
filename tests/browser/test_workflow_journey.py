"""One student through the Teacher Activation Workflow in a real Chromium, from their recommendation
to the exit of their bundle plan, across the six surfaces: the acute regression that blocks them is
dismissed with a context in place, their cluster is previewed, their tier changed with a reason and a
confirmation (the reason's fields appear only for another tier), the activation confirmed, and the
plan exited with an exit code. At every surface the URL and the highlighted step follow the draft.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from classroom.demo import demo_school_seed
from classroom.models import SchoolClass, Student
from tests.browser.pages import log_in
from workflow.models import AcuteRegressionAlert, BundleAssignment, ContextFlagLog, WorkflowDraft

pytestmark = pytest.mark.browser

TEACHER, PASSWORD = "ms.rivera", "demo-teacher"


@pytest.fixture
def demo(transactional_db) -> SchoolClass:
    """The demo school (8 students a class): in Algebra I · Period 2, student -0002 has an open acute
    regression and an intervention bundle, -0005 shares the bundle but its data stopped (QA_003)."""
    demo_school_seed(class_size=8)
    return SchoolClass.objects.get(platform_id="alg1-p2")


def _at_step(page: Page, surface: str, step: str) -> None:
    """The URL names the surface, the tab is current, and the progress highlights the draft's step."""
    expect(page).to_have_url(re.compile(rf"/workflow/{surface}/"))
    expect(page.locator(".wf-tabs a[aria-current=page]")).to_contain_text(_TABS[surface])
    expect(page.locator(".wf-steps [aria-current=step]")).to_contain_text(step)


_TABS = {
    "recommendations": "Recommendations Panel",
    "smart-grouping": "Smart Grouping Panel",
    "scaffold-preview": "Scaffold Distribution Preview",
    "activation-review": "Activation Review",
    "activation-confirmation": "Activation Confirmation",
    "plan-review": "Plan Review & Exit",
}


def _settled(page: Page, outcome: Locator, text: str) -> None:
    """The panel swapped in place (no reload) with `text`, and htmx done with the new content."""
    expect(outcome).to_contain_text(text)
    page.wait_for_function("() => !document.querySelector('.htmx-added, .htmx-settling, .htmx-request')")
    assert page.evaluate("window.__marker") == 1, "the page reloaded instead of swapping the panel"


def test_one_student_from_recommendation_to_exit(page: Page, demo: SchoolClass) -> None:
    student = Student.objects.get(platform_id="alg1-p2-0002")
    deferred = Student.objects.get(platform_id="alg1-p2-0005")
    name = student.full_name
    log_in(page, TEACHER, PASSWORD)

    # The class page leads to the workflow, which starts at the Recommendations Panel.
    page.goto(f"/classes/{demo.pk}/")
    page.get_by_role("link", name="Activation workflow").click()
    _at_step(page, "recommendations", "TAW_01")
    panel = page.locator("#workflow-surface")
    acute = panel.locator("section.bucket-acute")
    expect(acute.get_by_role("article", name=name)).to_contain_text("Open acute regression: mastery fell")
    expect(panel.locator("section.bucket-ready")).not_to_contain_text(name)
    expect(panel.locator("section.bucket-thin")).to_contain_text("Not enough evidence yet:")
    expect(panel.locator("section.bucket-incomplete")).to_contain_text(deferred.full_name)

    # 1. Resolve the acute regression in place: dismissed with what happened.
    page.evaluate("window.__marker = 1")
    alert = acute.get_by_role("group", name=f"Acute regression of {name}")
    alert.get_by_label("What happened").select_option(label="The student was absent")
    alert.get_by_role("button", name="Dismiss with this context").click()
    _settled(
        page, panel.get_by_role("status"), f"Dismissed {name}'s acute regression: the student was absent."
    )
    expect(panel.locator("section.bucket-acute")).to_contain_text("None.")
    expect(panel.locator("section.bucket-ready").get_by_role("article", name=name)).to_contain_text(
        "Linear equations rebuild"
    )

    # 2. Smart Grouping Panel: the student's cluster, its five keys, the deferred member.
    panel.get_by_role("button", name="Continue to the Smart Grouping Panel").click()
    _at_step(page, "smart-grouping", "TAW_04")
    cluster = page.get_by_role("article", name="Linear equations rebuild at Level_1")
    expect(cluster.locator("dl")).to_contain_text("linear equations")
    expect(cluster.get_by_role("row", name=name)).to_be_visible()
    expect(cluster).to_contain_text(f"{deferred.full_name}: Data incomplete (QA_003)")

    # 3. Scaffold Distribution Preview of that cluster.
    cluster.get_by_role("button", name="Preview the scaffold distribution").click()
    _at_step(page, "scaffold-preview", "TAW_05")
    distribution = page.get_by_role("table", name="Scaffold tier distribution")
    expect(distribution.get_by_role("row", name=re.compile("^Level_1"))).to_contain_text("100%")
    expect(page.locator("table.threads tfoot")).to_contain_text("70 min")

    # 4. Activation Review: another tier needs a reason and a confirmation, shown only then.
    page.get_by_role("button", name="Continue to the Activation Review").click()
    _at_step(page, "activation-review", "TAW_07")
    row = page.get_by_role("row", name=name)
    reason = row.get_by_label(f"Why another tier for {name}")
    expect(row).to_contain_text("Recommended tier kept")
    expect(reason).to_be_hidden()
    row.get_by_label(f"Scaffold tier for {name}").select_option("Level_2")
    expect(reason).to_be_visible()
    reason.select_option(label="Classroom observation not in the data")
    row.get_by_label("Confirm this deviation").check()
    expect(page.get_by_text(deferred.full_name)).to_be_visible()
    page.get_by_role("button", name="Continue to the Activation Confirmation").click()

    # 5. Activation Confirmation: what will be written, then the outcome in place.
    _at_step(page, "activation-confirmation", "TAW_10")
    summary = page.get_by_label("What will be written")
    expect(summary).to_contain_text(
        "1 bundle assignment on Linear equations rebuild BND-MATH-LINEQ: 1 at Level_2."
    )
    expect(summary.get_by_role("row", name=name)).to_contain_text(
        "Classroom observation not in the data · confirmed"
    )
    expect(summary).to_contain_text(f"{deferred.full_name}: Data incomplete (QA_003)")
    page.evaluate("window.__marker = 1")
    page.get_by_role("button", name="Confirm", exact=True).click()
    _settled(page, page.get_by_role("status"), "Activated 1 bundle assignment on Linear equations rebuild")
    expect(page.get_by_role("status")).to_contain_text(f"{name} at Level_2.")
    expect(page.get_by_role("status")).to_contain_text(
        f"Deferred, data incomplete (QA_003): {deferred.full_name}."
    )
    expect(page.locator(".wf-steps [aria-current=step]")).to_contain_text("TAW_13")

    # 6. Plan Review & Exit: the plan's status, then exit with an exit code.
    page.get_by_role("link", name="Continue to Plan Review & Exit").click()
    _at_step(page, "plan-review", "TAW_13")
    plan = page.get_by_role("row", name=name)
    expect(plan).to_contain_text("Level_2")
    expect(plan).to_contain_text("Too early to tell")
    page.evaluate("window.__marker = 1")
    plan.get_by_label(f"Why exit {name}'s plan").select_option(label="Goal met")
    plan.get_by_role("button", name="Exit").click()
    _settled(page, page.get_by_role("status"), f"Closed {name}'s plan on Linear equations rebuild: Goal met.")
    expect(page.get_by_role("row", name=name)).to_have_count(0)
    expect(page.locator(".wf-steps [aria-current=step]")).to_contain_text("TAW_17")

    assignment = BundleAssignment.objects.get(student=student)
    assert (assignment.status, assignment.exit_code, assignment.scaffold_tier) == (
        BundleAssignment.Status.EXITED,
        "OVR_EXIT_GOAL_MET",
        "Level_2",
    )
    assert assignment.history.get(event="activated").override_code == "OVR_OBSERVED_NEED"
    assert not BundleAssignment.objects.filter(student=deferred).exists()
    assert ContextFlagLog.objects.get(student=student).flag == "CTX_STUDENT_ABSENT"
    assert AcuteRegressionAlert.objects.get(student=student).state == AcuteRegressionAlert.State.DISMISSED
    assert WorkflowDraft.objects.get(school_class=demo).step == "TAW_17"
