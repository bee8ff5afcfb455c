"""The Teacher Activation Workflow's six surfaces as pages: who sees them, what each shows (every
guardrail in a teacher's words), moving between them through the draft, and every POST's outcome
or refusal in place, on a class whose mirrors give each case through the real engines."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from classroom.models import DailyPerformance, SchoolClass, Student
from tests import factories
from tests.conftest import login
from workflow import services
from workflow.demo import BUNDLES
from workflow.models import (
    AcuteRegressionAlert,
    Bundle,
    BundleAssignment,
    Cluster,
    ContextFlagLog,
    TeacherActionLog,
    TeacherReviewRequest,
    WorkflowDraft,
)

HTMX = {"HTTP_HX_REQUEST": "true"}
SURFACES = [
    ("recommendations", "Recommendations Panel"),
    ("smart-grouping", "Smart Grouping Panel"),
    ("scaffold-preview", "Scaffold Distribution Preview"),
    ("activation-review", "Activation Review"),
    ("activation-confirmation", "Activation Confirmation"),
    ("plan-review", "Plan Review &amp; Exit"),
]
# One learner-day: (days before today, mastery, confidence).
Series = list[tuple[int, float, int]]


def stalled(mastery: float) -> Series:
    """Twenty days without gain: an intervention bundle (Level_2 from 0.5 to 0.7, Level_3 below)."""
    return [(day, mastery, 4) for day in range(20)]


def rising(now: float, confidence: int = 4) -> Series:
    """Twenty days climbing to `now`: a practice set, enrichment from 0.85, composite when unsure."""
    return [(day, round(now - 0.01 * day, 3), confidence) for day in range(20)]


def falling() -> Series:
    """0.45 for weeks, then three days at 0.3: a stall at Level_3 and an acute regression."""
    return [(day, 0.3 if day < 3 else 0.45, 4) for day in range(20)]


def thin() -> Series:
    """Four measured days: do_not_decide_yet."""
    return stalled(0.6)[:4]


def quiet() -> Series:
    """Enough evidence but nothing for six days: QA_003."""
    return [(day, 0.6, 4) for day in range(6, 26)]


def enrol(school_class: SchoolClass, series: Series, **names: str) -> Student:
    student = factories.EnrollmentFactory(school_class=school_class, student__first_name="A", **names).student
    mirror(student, series)
    return student


def mirror(student: Student, series: Series) -> None:
    today, now = timezone.localdate(), timezone.now()
    DailyPerformance.objects.bulk_create(
        DailyPerformance(
            student=student,
            date=today - timedelta(days=day),
            mastery=mastery,
            confidence=confidence,
            checked_in=True,
            synced_at=now,
        )
        for day, mastery, confidence in series
    )


def bundles(organisation) -> None:
    for code, title, kind, subject, anchor, supporting, bridge in BUNDLES:
        Bundle.objects.create(
            organisation=organisation,
            code=code,
            title=title,
            object_type=kind,
            subject=subject,
            anchor_skill=anchor,
            supporting_threads=supporting,
            asset_bridge=bridge,
        )


@dataclass
class Case:
    """The teacher's Mathematics class with one student per case of the workflow."""

    school: object
    school_class: SchoolClass
    stalled: Student  # INTERVENTION Level_2: the "L2" cluster with `steady` and `quiet`
    steady: Student
    quiet: Student  # QA_003: deferred from the L2 cluster
    falling: Student  # INTERVENTION Level_3 with an open acute alert: the "L3" cluster with `low`
    low: Student
    practising: Student  # PRACTICE_SET: routed
    undecided: Student  # do_not_decide_yet (four measured days)

    def cluster(self, student: Student) -> Cluster:
        return Cluster.objects.get(school_class=self.school_class, members__student=student)

    def url(self, surface: str = "", **query: int) -> str:
        base = f"/classes/{self.school_class.pk}/workflow/{surface + '/' if surface else ''}"
        return base + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


@pytest.fixture
def case(school) -> Case:
    bundles(school.organisation)
    school_class = school.school_class
    # Names without apostrophes, so that the pages' escaped HTML reads like the assertions.
    Student.objects.filter(pk=school.student.pk).update(first_name="A", last_name="Undecided")
    school.student.refresh_from_db()
    mirror(school.student, thin())
    made = Case(
        school=school,
        school_class=school_class,
        stalled=enrol(school_class, stalled(0.6), student__last_name="Stall"),
        steady=enrol(school_class, stalled(0.62), student__last_name="Steady"),
        quiet=enrol(school_class, quiet(), student__last_name="Quiet"),
        falling=enrol(school_class, falling(), student__last_name="Fall"),
        low=enrol(school_class, stalled(0.4), student__last_name="Low"),
        practising=enrol(school_class, rising(0.7), student__last_name="Practice"),
        undecided=school.student,
    )
    services.recommendations_refresh(school_class=school_class)
    return made


@pytest.fixture
def teacher(client: Client, case: Case) -> Client:
    return login(client, case.school.teacher)


def _draft(case: Case) -> WorkflowDraft:
    return WorkflowDraft.objects.get(teacher=case.school.teacher, school_class=case.school_class)


def _at(case: Case, step: str, **state) -> None:
    """The teacher's draft at `step`, walked there the legal way."""
    path = {
        "TAW_04": ["TAW_02", "TAW_03", "TAW_04"],
        "TAW_07": ["TAW_02", "TAW_03", "TAW_07"],
        "TAW_13": ["TAW_02", "TAW_03", "TAW_13"],
    }[step]
    for each in path:
        services.draft_save(
            teacher=case.school.teacher, school_class=case.school_class, step=each, state=state
        )


def _activate(case: Case, student: Student) -> BundleAssignment:
    services.activate(teacher=case.school.teacher, school_class=case.school_class, student_ids=[student.pk])
    return BundleAssignment.objects.get(student=student, status=BundleAssignment.Status.ACTIVE)


# Who sees what ------------------------------------------------------------------------------------


def test_every_surface_renders_for_the_class_teacher(teacher, case):
    l2 = case.cluster(case.stalled)
    for surface, title in SURFACES:
        response = teacher.get(case.url(surface, cluster=l2.pk))
        page = response.content.decode()
        assert response.status_code == 200, surface
        assert f'<h2 id="surface-title">{title}</h2>' in page
        assert 'aria-current="step"><code>TAW_01</code> Load recommendations' in page
        assert "<html" in page
        fragment = teacher.get(case.url(surface, cluster=l2.pk), **HTMX).content.decode()
        assert fragment.startswith('<section id="workflow-surface"') and "<html" not in fragment


def test_the_class_page_links_to_the_workflow_which_starts_at_the_recommendations(teacher, case):
    assert f'href="/classes/{case.school_class.pk}/workflow/">Activation workflow' in (
        teacher.get(f"/classes/{case.school_class.pk}/").content.decode()
    )
    response = teacher.get(case.url())
    assert response.status_code == 302 and response.url == case.url("recommendations")


def test_colleagues_and_outsiders_get_404_everywhere(client, case):
    alert = AcuteRegressionAlert.objects.get(student=case.falling)
    assignment = _activate(case, case.stalled)
    posts = [
        ("step", {"step": "TAW_04"}),
        ("recommendations/refresh", {}),
        (f"alerts/{alert.pk}/review", {"action": "escalate"}),
        ("smart-grouping/membership", {"student": case.steady.pk, "override_code": "OVR_GROUP_EXCLUDE"}),
        ("activation-review/save", {"cluster": case.cluster(case.steady).pk}),
        ("activation-confirmation/activate", {"student": case.practising.pk}),
        (f"plan-review/{assignment.pk}/continue", {}),
        (f"plan-review/{assignment.pk}/exit", {"override_code": "OVR_EXIT_GOAL_MET"}),
    ]
    for user in (case.school.colleague, case.school.outsider):
        login(client, user)
        assert client.get(case.url()).status_code == 404
        for surface, _ in SURFACES:
            assert client.get(case.url(surface)).status_code == 404, surface
        for path, data in posts:
            assert client.post(case.url(path), data).status_code == 404, path
    assert AcuteRegressionAlert.objects.get(pk=alert.pk).state == AcuteRegressionAlert.State.OPEN
    assert not TeacherActionLog.objects.filter(action_type="individual_routing").exists()
    client.logout()
    assert client.get(case.url("recommendations")).status_code == 302  # to the login form


def test_actions_are_posts_with_a_csrf_token(case):
    client = login(Client(enforce_csrf_checks=True), case.school.teacher)
    assert client.get(case.url("activation-confirmation/activate")).status_code == 405
    assert client.get(case.url("step")).status_code == 405
    assert (
        client.post(case.url("activation-confirmation/activate"), {"student": case.practising.pk}).status_code
        == 403
    )
    assert not TeacherActionLog.objects.filter(action_type="individual_routing").exists()


@pytest.mark.parametrize("size", [5, 40])
def test_queries_per_page_do_not_grow_with_the_class(client, school, django_assert_max_num_queries, size):
    bundles(school.organisation)
    shapes = [stalled(0.6), rising(0.7), quiet(), falling(), rising(0.69, confidence=2), stalled(0.4)]
    for index in range(size - 1):
        enrol(school.school_class, shapes[index % len(shapes)])
    services.recommendations_refresh(school_class=school.school_class)
    l2 = Cluster.objects.get(
        school_class=school.school_class, scaffold_tier="Level_2", bundle__code="BND-MATH-LINEQ"
    )
    services.activate(teacher=school.teacher, school_class=school.school_class, cluster_id=l2.pk)
    login(client, school.teacher)
    base = f"/classes/{school.school_class.pk}/workflow"
    for surface, _ in SURFACES:
        with django_assert_max_num_queries(11):
            response = client.get(f"{base}/{surface}/?cluster={l2.pk}")
        assert response.status_code == 200, surface
    page = client.get(f"{base}/plan-review/").content.decode()
    assert page.count("Too early to tell") == (size - 1 + 5) // 6  # every stalled Level_2 member is active


# Recommendations Panel ------------------------------------------------------------------------------


def test_the_recommendations_panel_explains_every_guardrail(teacher, case):
    page = teacher.get(case.url("recommendations")).content.decode()
    assert (
        "Not enough evidence yet: only 4 days with a mastery measurement in the last 28 (10 needed). "
        "We&#x27;ll look again as data arrives." in page
    )
    alert = AcuteRegressionAlert.objects.get(student=case.falling)
    assert f"Open acute regression: {alert.summary}. Resolve it before activating anything for A" in page
    assert "The plan status does not change either way." in page
    assert "Data incomplete (QA_003): no data for 6 days" in page
    assert "Deferred: nothing is activated for this student until data arrives again" in page
    assert "assign a practice set <small><code>ROUTE_PRACTICE_SET</code>" in page
    assert "Linear equations rebuild <code>BND-MATH-LINEQ</code>" in page
    assert "<strong>Why:</strong> mastery +0% in 14 days (under +2%), now 60%." in page
    assert "20 of the last 28 days with a mastery measurement" in page
    # Each student in the bucket their guardrail puts them in.
    sections = {
        "bucket-acute": case.falling,
        "bucket-ready": case.stalled,
        "bucket-non-bundle": case.practising,
        "bucket-thin": case.undecided,
        "bucket-incomplete": case.quiet,
    }
    for bucket, student in sections.items():
        section = page.split(f'aria-labelledby="{bucket}"')[1].split("</section>")[0]
        assert student.full_name in section, bucket


def test_refreshing_recommends_again_in_place(teacher, case):
    response = teacher.post(case.url("recommendations/refresh"), **HTMX)
    assert response.status_code == 200
    assert "Recommendations refreshed from the latest data: 7 students." in response.content.decode()


def test_dismissing_needs_a_context_flag_and_never_changes_the_plan(teacher, case):
    alert = AcuteRegressionAlert.objects.get(student=case.falling)
    url = case.url(f"alerts/{alert.pk}/review")
    refused = teacher.post(url, {"action": "dismiss", "surface": "recommendations_panel"}, **HTMX)
    assert refused.status_code == 400
    assert (
        "To dismiss the alert, say what happened: pick a context from the list." in refused.content.decode()
    )
    done = teacher.post(url, {"action": "dismiss", "context_flag": "CTX_STUDENT_ABSENT"}, **HTMX)
    assert done.status_code == 200
    assert f"Dismissed {case.falling.full_name}&#x27;s acute regression: the student was absent." in (
        done.content.decode()
    )
    assert AcuteRegressionAlert.objects.get(pk=alert.pk).state == AcuteRegressionAlert.State.DISMISSED
    assert ContextFlagLog.objects.get(alert=alert).flag == "CTX_STUDENT_ABSENT"
    again = teacher.post(url, {"action": "escalate"}, **HTMX)
    assert again.status_code == 409 and "already resolved" in again.content.decode()


def test_escalating_from_plan_review_nominates_a_tier_review(teacher, case):
    alert = AcuteRegressionAlert.objects.get(student=case.falling)
    _at(case, "TAW_13")
    response = teacher.post(
        case.url(f"alerts/{alert.pk}/review"), {"action": "escalate", "surface": "plan_review_exit"}
    )
    assert response.status_code == 200
    assert "a tier review is requested" in response.content.decode()
    assert TeacherReviewRequest.objects.get(alert=alert).student == case.falling
    assert AcuteRegressionAlert.objects.get(pk=alert.pk).state == AcuteRegressionAlert.State.ESCALATED
    assert _draft(case).step == "TAW_15"  # through TAW_14, the acute alerts


# Moving between surfaces -----------------------------------------------------------------------------


def test_continuing_saves_the_draft_step_and_opening_the_workflow_resumes_there(teacher, case):
    response = teacher.post(case.url("step"), {"step": "TAW_04", "surface": "recommendations_panel"})
    assert response.status_code == 302 and response.url == case.url("smart-grouping")
    assert _draft(case).step == "TAW_04"
    steps = TeacherActionLog.objects.filter(action_type="step").values_list("workflow_step", flat=True)
    assert list(steps) == ["TAW_02", "TAW_03", "TAW_04"]
    page = teacher.get(case.url("smart-grouping")).content.decode()
    assert 'aria-current="step"><code>TAW_04</code> Compute clusters' in page
    l2 = case.cluster(case.stalled)
    moved = teacher.post(case.url("step"), {"step": "TAW_05", "cluster": l2.pk}, **HTMX)
    assert moved["HX-Redirect"] == case.url("scaffold-preview", cluster=l2.pk)
    assert _draft(case).state["clusterId"] == l2.pk
    assert teacher.get(case.url()).url == case.url("scaffold-preview", cluster=l2.pk)


def test_an_unreachable_step_is_explained_in_place(teacher, case):
    _at(case, "TAW_13")
    response = teacher.post(case.url("step"), {"step": "TAW_05", "surface": "smart_grouping_panel"}, **HTMX)
    assert response.status_code == 409
    text = response.content.decode()
    assert "Not from here: your workflow is at TAW_13 Plan status (Plan Review &amp; Exit)" in text
    assert "the next steps are TAW_14 Acute alerts" in text
    assert '<h2 id="surface-title">Smart Grouping Panel</h2>' in text
    assert _draft(case).step == "TAW_13"
    started_over = teacher.post(case.url("step"), {"step": "TAW_01"})
    assert started_over.url == case.url("recommendations")
    assert _draft(case).step == "TAW_01" and _draft(case).state == {}


# Smart Grouping Panel and Scaffold Distribution Preview ----------------------------------------------


def test_the_grouping_panel_shows_the_five_keys_members_and_deferrals(teacher, case):
    page = teacher.get(case.url("smart-grouping")).content.decode()
    assert "<dt>Bundle</dt><dd>Linear equations rebuild (BND-MATH-LINEQ, intervention bundle)</dd>" in page
    assert "<dt>Anchor skill</dt><dd>linear equations</dd>" in page
    assert "<dt>Delivery mode</dt><dd>small group</dd>" in page
    assert f"<strong>{case.quiet.full_name}</strong>: Data incomplete (QA_003)" in page
    options = page.split('name="override_code"')[1].split("</select>")[0]
    assert (
        "Better served outside this group" in options and "Cannot join the group&#x27;s sessions" in options
    )
    assert "Goal met" not in options and "More scaffolding" not in options


def test_taking_a_member_out_keeps_them_in_the_draft_with_a_grouping_code(teacher, case):
    _at(case, "TAW_04")
    url = case.url("smart-grouping/membership")
    wrong = teacher.post(url, {"student": case.steady.pk, "override_code": "OVR_EXIT_GOAL_MET"}, **HTMX)
    assert wrong.status_code == 400
    assert "That reason belongs to another kind of decision" in wrong.content.decode()
    missing = teacher.post(url, {"student": case.steady.pk, "override_code": ""}, **HTMX)
    assert missing.status_code == 400 and "Pick a reason from the list" in missing.content.decode()
    done = teacher.post(url, {"student": case.steady.pk, "override_code": "OVR_GROUP_SCHEDULE"}, **HTMX)
    assert done.status_code == 200
    assert f"{case.steady.full_name} is out of the group (Cannot join the group&#x27;s sessions)" in (
        done.content.decode()
    )
    draft = _draft(case)
    assert draft.step == "TAW_06"
    assert draft.state["excluded"] == [{"studentId": case.steady.pk, "overrideCode": "OVR_GROUP_SCHEDULE"}]
    back = teacher.post(url, {"student": case.steady.pk, "action": "put_back"}, **HTMX)
    assert "is back in the group" in back.content.decode()
    assert _draft(case).state["excluded"] == []
    outsider = teacher.post(
        url, {"student": case.practising.pk, "override_code": "OVR_GROUP_EXCLUDE"}, **HTMX
    )
    assert outsider.status_code == 400


def test_the_scaffold_preview_shows_the_tiers_and_weekly_minutes(teacher, case):
    l2 = case.cluster(case.stalled)
    services.draft_save(
        teacher=case.school.teacher,
        school_class=case.school_class,
        step="TAW_01",
        state={"excluded": [{"studentId": case.steady.pk, "overrideCode": "OVR_GROUP_EXCLUDE"}]},
    )
    page = teacher.get(case.url("scaffold-preview", cluster=l2.pk)).content.decode()
    assert "1 member to activate, 1 deferred, 1 taken out" in page
    level_2 = page.split('<th scope="row">Level_2')[1].split("</tr>")[0]
    assert '<td class="num">1</td>' in level_2 and 'width="100"' in level_2
    assert (
        '<td>linear equations</td><td>anchor</td><td class="num">30 min</td><td class="num current">45 min'
        in page
    )
    assert "<td>worked-example cards</td><td>bridge</td>" in page
    assert "For the whole group: <strong>100 minutes a week</strong> across 1 student." in page
    assert f"<strong>{case.steady.full_name}</strong>: Better served outside this group" in page
    chooser = teacher.get(case.url("scaffold-preview")).content.decode()
    assert "Choose a group to preview" in chooser and f"?cluster={l2.pk}" in chooser


# Activation Review and Confirmation -------------------------------------------------------------


def test_a_tier_deviation_without_confirmation_is_refused_with_409(teacher, case):
    l2 = case.cluster(case.stalled)
    _at(case, "TAW_07", clusterId=l2.pk, studentId=None)
    review = teacher.get(case.url("activation-review", cluster=l2.pk)).content.decode()
    codes = review.split(f'name="code_{case.stalled.pk}"')[1].split("</select>")[0]
    assert "Classroom observation not in the data" in codes and "Goal met" not in codes
    assert "Confirm this deviation" in review
    deviation = {
        "cluster": l2.pk,
        f"tier_{case.stalled.pk}": "Level_3",
        f"code_{case.stalled.pk}": "OVR_OBSERVED_NEED",
    }
    saved = teacher.post(case.url("activation-review/save"), deviation)
    assert saved.url == case.url("activation-confirmation", cluster=l2.pk)
    assert _draft(case).step == "TAW_10"
    summary = teacher.get(saved.url).content.decode()
    assert "Level_3 instead of the recommended Level_2, not confirmed yet" in summary

    refused = teacher.post(case.url("activation-confirmation/activate"), {"cluster": l2.pk}, **HTMX)
    assert refused.status_code == 409
    assert (
        f"Not activated: you chose another scaffold tier than recommended for {case.stalled.full_name}. "
        "Go back to the Activation Review and tick “confirm this deviation” to apply it."
        in refused.content.decode()
    )
    assert not BundleAssignment.objects.exists()

    teacher.post(case.url("step"), {"step": "TAW_07", "cluster": l2.pk})
    teacher.post(case.url("activation-review/save"), deviation | {f"confirm_{case.stalled.pk}": "yes"})
    done = teacher.post(case.url("activation-confirmation/activate"), {"cluster": l2.pk}, **HTMX)
    assert done.status_code == 200
    assert BundleAssignment.objects.get(student=case.stalled).scaffold_tier == "Level_3"


def test_a_bulk_activation_from_the_confirmation_creates_the_assignments(teacher, case):
    l2 = case.cluster(case.stalled)
    teacher.post(case.url("step"), {"step": "TAW_07", "cluster": l2.pk})
    teacher.post(case.url("activation-review/save"), {"cluster": l2.pk})
    assert _draft(case).step == "TAW_10"
    summary = teacher.get(case.url("activation-confirmation", cluster=l2.pk)).content.decode()
    assert (
        "2 bundle assignments on Linear equations rebuild <code>BND-MATH-LINEQ</code>: 2 at Level_2."
        in summary
    )
    assert f"<strong>{case.quiet.full_name}</strong>: Data incomplete (QA_003)" in summary
    response = teacher.post(case.url("activation-confirmation/activate"), {"cluster": l2.pk}, **HTMX)
    text = response.content.decode()
    assert response.status_code == 200
    names = sorted([f"{case.stalled.full_name} at Level_2", f"{case.steady.full_name} at Level_2"])
    assert "Activated 2 bundle assignments on Linear equations rebuild (BND-MATH-LINEQ): " in text
    assert all(name in text for name in names)
    assert f"Deferred, data incomplete (QA_003): {case.quiet.full_name}." in text
    assert "Continue to Plan Review &amp; Exit" in text
    active = BundleAssignment.objects.filter(status=BundleAssignment.Status.ACTIVE)
    assert set(active.values_list("student", flat=True)) == {case.stalled.pk, case.steady.pk}
    assert _draft(case).step == "TAW_13"
    assert 'aria-current="step"><code>TAW_13</code> Plan status' in text


def test_an_open_acute_regression_stops_the_bulk_activation(teacher, case):
    l3 = case.cluster(case.falling)
    confirmation = teacher.get(case.url("activation-confirmation", cluster=l3.pk)).content.decode()
    assert "Open acute regression: mastery fell" in confirmation
    response = teacher.post(case.url("activation-confirmation/activate"), {"cluster": l3.pk}, **HTMX)
    assert response.status_code == 409
    assert (
        f"Not activated: {case.falling.full_name} still has an open acute regression."
        in response.content.decode()
    )
    assert not BundleAssignment.objects.exists()


def test_a_non_bundle_student_is_routed_and_shows_its_routing_outcome(teacher, case):
    teacher.post(case.url("step"), {"step": "TAW_07", "student": case.practising.pk})
    review = teacher.get(case.url("activation-review", student=case.practising.pk)).content.decode()
    assert "Practice set: no bundle, no tier." in review
    teacher.post(case.url("activation-review/save"), {"student": case.practising.pk})
    summary = teacher.get(case.url("activation-confirmation", student=case.practising.pk)).content.decode()
    assert f"Routes {case.practising.full_name}: Practice set → assign a practice set" in summary
    response = teacher.post(
        case.url("activation-confirmation/activate"), {"student": case.practising.pk}, **HTMX
    )
    text = response.content.decode()
    assert response.status_code == 200
    assert (
        f"Routed {case.practising.full_name}: Practice set → assign a practice set (ROUTE_PRACTICE_SET)."
        in text
    )
    assert "No bundle assignment was written" in text
    assert not BundleAssignment.objects.exists()
    routed = TeacherActionLog.objects.get(action_type="individual_routing")
    assert (routed.student, routed.code, routed.workflow_step) == (
        case.practising,
        "ROUTE_PRACTICE_SET",
        "TAW_12",
    )


def test_too_little_evidence_refuses_an_individual_activation(teacher, case):
    response = teacher.post(
        case.url("activation-confirmation/activate"), {"student": case.undecided.pk}, **HTMX
    )
    assert response.status_code == 409
    assert f"Not activated: there is not enough evidence yet for {case.undecided.full_name}." in (
        response.content.decode()
    )
    nothing = teacher.post(case.url("activation-confirmation/activate"), **HTMX)
    assert (
        nothing.status_code == 400
        and "Choose a group on the Smart Grouping Panel" in nothing.content.decode()
    )


# Plan Review & Exit -------------------------------------------------------------------------------


def test_plan_review_lists_active_plans_and_open_alerts(teacher, case):
    _activate(case, case.stalled)
    page = teacher.get(case.url("plan-review")).content.decode()
    row = page.split(f'<tr aria-label="{case.stalled.full_name}"')[1].split("</tr>")[0]
    assert "Linear equations rebuild" in row and "Too early to tell" in row and "In progress" in row
    exit_codes = row.split('name="override_code"')[1].split("</select>")[0]
    assert "Goal met" in exit_codes and "Better served outside this group" not in exit_codes
    alert = AcuteRegressionAlert.objects.get(student=case.falling)
    assert f"<strong>{case.falling.full_name}</strong>: {alert.summary}" in page


def test_continuing_a_plan(teacher, case):
    assignment = _activate(case, case.stalled)
    _at(case, "TAW_13")
    response = teacher.post(case.url(f"plan-review/{assignment.pk}/continue"), **HTMX)
    assert response.status_code == 200
    assert (
        f"{case.stalled.full_name}&#x27;s plan on Linear equations rebuild continues."
        in response.content.decode()
    )
    assert (
        BundleAssignment.objects.get(pk=assignment.pk).plan_status == BundleAssignment.PlanStatus.CONTINUING
    )
    assert _draft(case).step == "TAW_16"


def test_exit_takes_an_exit_code(teacher, case):
    assignment = _activate(case, case.stalled)
    url = case.url(f"plan-review/{assignment.pk}/exit")
    missing = teacher.post(url, {"override_code": ""}, **HTMX)
    assert missing.status_code == 400 and "Pick a reason from the list" in missing.content.decode()
    wrong = teacher.post(url, {"override_code": "OVR_GROUP_EXCLUDE"}, **HTMX)
    assert wrong.status_code == 400 and "belongs to another kind of decision" in wrong.content.decode()
    done = teacher.post(url, {"override_code": "OVR_EXIT_GOAL_MET"}, **HTMX)
    assert done.status_code == 200
    assert (
        f"Closed {case.stalled.full_name}&#x27;s plan on Linear equations rebuild: Goal met."
        in done.content.decode()
    )
    exited = BundleAssignment.objects.get(pk=assignment.pk)
    assert (exited.status, exited.exit_code) == (BundleAssignment.Status.EXITED, "OVR_EXIT_GOAL_MET")
    again = teacher.post(url, {"override_code": "OVR_EXIT_GOAL_MET"}, **HTMX)
    assert again.status_code == 409 and "This plan was already closed" in again.content.decode()
