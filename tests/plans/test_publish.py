"""Drafts, publishing with confirmation, the approval queue, conflicts, expiry, and who may do what."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.utils import timezone

from audit.models import ActivityEvent
from classroom.models import Alert
from plans.models import Approval, PlanDraft, PlanVersion, StudyPlan
from plans.schema import PlanInvalid
from plans.services import (
    PublishConflict,
    approval_decide,
    drafts_expire,
    plan_publish,
    save_study_plan_draft,
)
from tests import factories
from tests.plan_fixtures import changed, first_plan


def _draft(school, plan, rationale="More practice before the unit test", by=None):
    return save_study_plan_draft(
        student=school.student, by=by or school.teacher, plan=plan, rationale=rationale, source="form"
    )


def test_a_draft_keeps_its_diff_rationale_author_and_expiry(school, planned):
    draft = _draft(school, changed(planned, weekly_minutes=165))
    assert draft.diff == {"pacing": {"weekly_minutes": {"from": 150, "to": 165}}}
    assert (draft.author, draft.base_number, draft.state) == (school.teacher, 1, "open")
    assert timedelta(days=6, hours=23) < draft.expires_at - timezone.now() <= timedelta(days=7)
    event = ActivityEvent.objects.get(verb="plan.draft_saved", target_id=str(draft.pk))
    assert event.why == "More practice before the unit test"
    assert event.details["changes"] == ["Weekly minutes: 150 → 165 (+15)"]
    assert event.student_id == school.student.pk


def test_a_draft_needs_a_rationale_and_a_change(school, planned):
    with pytest.raises(PlanInvalid, match="rationale: say why the plan should change"):
        _draft(school, changed(planned, weekly_minutes=165), rationale=" ")
    with pytest.raises(PlanInvalid, match="plan: the proposal changes nothing in the published plan"):
        _draft(school, planned)
    assert PlanDraft.objects.count() == 1  # only the first plan's


def test_validation_and_policy_errors_name_the_field(school, planned):
    plan = changed(planned, weekly_minutes=900)
    plan["milestones"].append({"title": "Too early", "due": "2020-01-01"})
    plan["curricula"].append("no-such-course")
    with pytest.raises(PlanInvalid) as invalid:
        _draft(school, plan)
    assert invalid.value.errors == ["milestones[2].due: date is before the plan starts"]
    plan["milestones"][-1]["due"] = (timezone.localdate() - timedelta(days=1)).isoformat()
    with pytest.raises(PlanInvalid) as invalid:
        _draft(school, plan)
    assert invalid.value.errors == [
        "pacing.weekly_minutes: 900 is above the organisation's maximum of 600",
        "curricula[1]: 'no-such-course' is not in the organisation's catalogue",
        "milestones[2].due: date is in the past",
    ]


def test_publishing_needs_confirmation_and_records_approver_and_time(school, planned):
    draft = _draft(school, changed(planned, weekly_minutes=165))
    with pytest.raises(PlanInvalid, match="confirm"):
        plan_publish(draft=draft, by=school.teacher, confirmed=False)
    plan_publish(draft=draft, by=school.teacher, confirmed=True)
    study_plan = StudyPlan.objects.get(student=school.student)
    version = study_plan.current_version
    assert (study_plan.version_number, version.number, version.published_by) == (2, 2, school.teacher)
    assert version.document["pacing"]["weekly_minutes"] == 165
    assert version.changes == ["Weekly minutes: 150 → 165 (+15)"]
    event = ActivityEvent.objects.filter(verb="plan.published").latest("seq")
    assert event.details["version"] == 2 and event.details["published_by"] == school.teacher.username
    assert event.details["published_at"] == version.published_at.isoformat()
    with pytest.raises(Exception, match="cannot be changed"):
        version.save()


def test_high_impact_changes_wait_for_a_second_approver(school, planned):
    second = factories.TeacherAssignmentFactory(school_class=school.school_class).teacher
    swap = changed(planned)
    swap["curricula"] = ["alg1-plus"]
    draft = _draft(school, swap, rationale="Finished the core unit early")
    assert draft.high_impact == ["a new curriculum: alg1-plus"]
    plan_publish(draft=draft, by=school.teacher, confirmed=True)
    draft.refresh_from_db()
    assert draft.state == "pending_approval"
    assert StudyPlan.objects.get(student=school.student).version_number == 1
    approval = Approval.objects.get(draft=draft)
    with pytest.raises(PermissionDenied, match="a second person must decide"):
        approval_decide(approval=approval, by=school.teacher, approve=True)
    with pytest.raises(PermissionDenied):
        approval_decide(approval=approval, by=school.colleague, approve=True)  # not this student's teacher
    approval_decide(approval=approval, by=second, approve=True, note="agreed in the team meeting")
    version = StudyPlan.objects.get(student=school.student).current_version
    assert (version.number, version.published_by, version.approved_by) == (2, school.teacher, second)
    assert version.document["curricula"] == ["alg1-plus"]
    verbs = list(
        ActivityEvent.objects.filter(student_id=school.student.pk, verb__startswith="plan.")
        .order_by("seq")
        .values_list("verb", flat=True)
    )
    assert verbs[-3:] == ["plan.approval_requested", "plan.approved", "plan.published"]


def test_a_big_pacing_change_is_high_impact_and_can_be_rejected(school, planned):
    second = factories.TeacherAssignmentFactory(school_class=school.school_class).teacher
    draft = _draft(school, changed(planned, weekly_minutes=240))
    assert draft.high_impact == [
        "weekly minutes change by 60%, more than the 25% the organisation allows without a second approver"
    ]
    plan_publish(draft=draft, by=school.teacher, confirmed=True)
    approval_decide(approval=draft.approval, by=second, approve=False, note="too much at once")
    draft.refresh_from_db()
    assert draft.state == "rejected"
    assert StudyPlan.objects.get(student=school.student).version_number == 1
    assert ActivityEvent.objects.get(verb="plan.rejected").why == "too much at once"


def test_a_draft_made_from_an_older_version_is_a_clear_conflict(school, planned):
    first = _draft(school, changed(planned, weekly_minutes=165))
    second = _draft(school, changed(planned, sessions_per_week=4))
    plan_publish(draft=first, by=school.teacher, confirmed=True)
    with pytest.raises(PublishConflict) as conflict:
        plan_publish(draft=second, by=school.teacher, confirmed=True)
    assert str(conflict.value).startswith("version 2 was published by")
    assert "after this draft was made from version 1; make a new draft from the current plan" in str(
        conflict.value
    )
    with pytest.raises(PublishConflict, match="this draft was already published by"):
        plan_publish(draft=first, by=school.teacher, confirmed=True)
    failed = ActivityEvent.objects.filter(verb="plan.publish_failed").order_by("seq")
    assert [e.status for e in failed] == ["failed", "failed"]
    assert PlanVersion.objects.filter(plan__student=school.student).count() == 2


def test_outsiders_and_read_only_roles_cannot_write(school, planned):
    from classroom.models import User

    compliance = factories.UserFactory(organisation=school.organisation, role=User.Role.COMPLIANCE)
    for user in (school.colleague, school.outsider, compliance):
        with pytest.raises(PermissionDenied):
            _draft(school, changed(planned, weekly_minutes=165), by=user)
    draft = _draft(school, changed(planned, weekly_minutes=165))
    with pytest.raises(PermissionDenied):
        plan_publish(draft=draft, by=school.outsider, confirmed=True)


def test_expired_drafts_close_and_expiring_ones_raise_a_dashboard_alert(school, planned):
    soon = _draft(school, changed(planned, weekly_minutes=165))
    old = _draft(school, changed(planned, weekly_minutes=170))
    PlanDraft.objects.filter(pk=soon.pk).update(expires_at=timezone.now() + timedelta(hours=20))
    PlanDraft.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert drafts_expire() == 1
    assert drafts_expire() == 0
    old.refresh_from_db()
    assert old.state == "expired"
    alert = Alert.objects.get(kind=Alert.Kind.EXPIRING_DRAFT, student=school.student)
    assert alert.state == "open" and alert.summary.startswith("1 study-plan draft expires by")
    with pytest.raises(PublishConflict, match="expired"):
        plan_publish(draft=old, by=school.teacher, confirmed=True)
    # Published in time: nothing is expiring any more, so the alert resolves itself.
    plan_publish(draft=soon, by=school.teacher, confirmed=True)
    drafts_expire()
    alert.refresh_from_db()
    assert alert.state == "resolved"


@pytest.mark.django_db(transaction=True)
def test_two_people_publishing_at_once_get_one_success_and_one_conflict():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent publishers need PostgreSQL's row locks (SQLite serialises every write)")
    org = factories.OrganisationFactory()
    assignment = factories.TeacherAssignmentFactory(school_class__organisation=org)
    colleague = factories.TeacherAssignmentFactory(school_class=assignment.school_class).teacher
    student = factories.EnrollmentFactory(school_class=assignment.school_class).student
    factories_catalogue(org)

    class School:
        pass

    School.student, School.teacher = student, assignment.teacher
    first = _draft(School, first_plan(), rationale="first plan")
    plan_publish(draft=first, by=assignment.teacher, confirmed=True)
    base = first.document
    drafts = [_draft(School, changed(base, weekly_minutes=160 + n)) for n in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def publish(draft, user):
        try:
            barrier.wait(timeout=10)
            plan_publish(draft=draft, by=user, confirmed=True)
            outcomes.append("published")
        except PublishConflict as conflict:
            outcomes.append(f"conflict: {conflict}")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=publish, args=(drafts[0], assignment.teacher)),
        threading.Thread(target=publish, args=(drafts[1], colleague)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(o.split(":")[0] for o in outcomes) == ["conflict", "published"]
    assert "was published by" in next(o for o in outcomes if o.startswith("conflict"))
    assert PlanVersion.objects.filter(plan__student=student).count() == 2


def factories_catalogue(org) -> None:
    from plans.models import Curriculum
    from tests.plan_fixtures import CATALOGUE

    for code, title in CATALOGUE.items():
        Curriculum.objects.create(organisation=org, code=code, title=title)


def test_a_new_objective_never_takes_the_id_of_one_removed_in_the_same_change(school, planned):
    plan = changed(planned)
    plan["objectives"] = [plan["objectives"][0], {"text": "Factor quadratics"}]
    draft = _draft(school, plan, rationale="graphing is done; on to quadratics")
    assert [o["id"] for o in draft.document["objectives"]] == ["o1", "o3"]
    assert draft.diff == {
        "objectives_added": ["Factor quadratics"],
        "objectives_removed": ["Graph linear functions"],
    }
