"""`/api/workflow/*` with bearer tokens (shared/seeds/002): the step catalog, the recommendations
panel, drafts, both activation outcomes, the three guardrails, override codes and their scopes,
acute-alert review, exit, and ClassTeacher scoping of every endpoint."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.forms.models import model_to_dict
from django.utils import timezone

from audit.models import ActivityEvent
from classroom.api_auth import api_token_create
from classroom.models import ApiToken, DailyPerformance, Student, TeacherAssignment, User
from tests import factories
from tests.workflow_fixtures import (  # noqa: F401 - fixtures
    WorkflowClass,
    WorkflowTeacher,
    enrol,
    falling,
    flat,
    mirror,
    wf_class_fixture,
    wf_client_fixture,
    wf_teacher_fixture,
)
from workflow import catalog, services
from workflow.models import (
    AcuteRegressionAlert,
    AssignmentHistory,
    BundleAssignment,
    Cluster,
    ContextFlagLog,
    Recommendation,
    ScaffoldRow,
    StepDefinition,
    TeacherActionLog,
    TeacherReviewRequest,
    WorkflowDraft,
)

Call = Callable[..., Any]  # the wf_client fixture

SEED_CONTEXT_FLAGS = [
    "CTX_SESSION_INTERRUPTED",
    "CTX_TECHNICAL_ISSUE",
    "CTX_AUDIO_PROBLEM",
    "CTX_GROUP_NOT_COMPLETED",
    "CTX_STUDENT_ABSENT",
    "CTX_NEEDED_REPETITION",
    "CTX_PAPER_CHECK_ADMIN",
]


def _stage_of(number: int) -> str:
    """The seed's STEP_STAGE map."""
    if number <= 3:
        return "review"
    if number <= 6:
        return "grouping"
    if number <= 12:
        return "activation"
    return "monitoring" if number <= 14 else "decision"


def _activate(wf_client: Call, wf: WorkflowTeacher, **body: Any) -> Any:
    return wf_client("post", "/activate", {"classId": wf.school_class.pk, **body})


def _activate_cluster(wf_client: Call, wf: WorkflowClass, student: Student, **body: Any) -> Any:
    return _activate(wf_client, wf, clusterId=wf.cluster(student).pk, **body)


def _save(wf_client: Call, wf: WorkflowTeacher, step: str, state: dict | None = None) -> Any:
    return wf_client(
        "post", "/save-draft", {"classId": wf.school_class.pk, "step": step, "state": state or {}}
    )


def _alert(student: Student) -> AcuteRegressionAlert:
    return AcuteRegressionAlert.objects.get(student=student, state=AcuteRegressionAlert.State.OPEN)


def _review(
    wf_client: Call, wf: WorkflowTeacher, alert: AcuteRegressionAlert, action: str, flag: str | None = None
) -> Any:
    body = {"classId": wf.school_class.pk, "alertId": alert.pk, "action": action}
    if flag is not None:
        body["contextFlag"] = flag
    return wf_client("post", "/review", body)


def _regress(student: Student, mastery: float = 0.45) -> None:
    """The last three days fall well below the week before, and the engines see it."""
    today = timezone.localdate()
    DailyPerformance.objects.filter(student=student, date__gt=today - timedelta(days=3)).update(
        mastery=mastery
    )


def _assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The status, and the API's error shape: `{"error": CODE, "detail": "...", ...}`."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    return body


# GET /steps -----------------------------------------------------------------------------------------


def test_steps_are_the_seventeen_in_order_with_the_seeds_stages(wf_client, wf_teacher):
    response = wf_client("get", "/steps")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == catalog.CATALOG_VERSION
    assert [s["id"] for s in body["steps"]] == [f"TAW_{n:02d}" for n in range(1, 18)]
    assert [s["stage"] for s in body["steps"]] == [_stage_of(n) for n in range(1, 18)]
    assert all(s["title"] and s["surface"] and isinstance(s["next"], list) for s in body["steps"])
    assert body["steps"][10]["next"] == ["TAW_13"]  # TAW_11, bulk activation, goes on to monitoring


def test_steps_serve_only_the_pinned_catalog_version(wf_client, wf_teacher):
    StepDefinition.objects.create(
        catalog_version="TAW-2099.01-1",
        step_id="TAW_01",
        ordinal=1,
        stage="review",
        surface="recommendations_panel",
        title="A later catalog",
        description="Not served until the code pins it.",
        next_steps=["TAW_02"],
    )
    response = wf_client("get", "/steps")
    assert response.status_code == 200
    body = response.json()
    assert len(body["steps"]) == 17
    assert "A later catalog" not in [s["title"] for s in body["steps"]]


def test_steps_serve_the_nine_override_codes_with_their_scopes_and_the_seven_context_flags(
    wf_client, wf_teacher
):
    response = wf_client("get", "/steps")
    assert response.status_code == 200
    body = response.json()
    scopes = {o["code"]: o["scope"] for o in body["overrideCodes"]}
    assert len(scopes) == 9
    assert sorted(scopes.values()) == ["activation"] * 4 + ["exit"] * 3 + ["grouping"] * 2
    assert scopes["OVR_EXIT_GOAL_MET"] == "exit"
    assert scopes["OVR_GROUP_EXCLUDE"] == "grouping"
    assert all(o["label"] for o in body["overrideCodes"])
    assert body["contextFlags"] == SEED_CONTEXT_FLAGS


# GET /recommendations/<classId> -------------------------------------------------------------------------


def _recommendations(wf_client: Call, wf: WorkflowTeacher) -> tuple[dict, dict[int, dict]]:
    response = wf_client("get", f"/recommendations/{wf.school_class.pk}")
    assert response.status_code == 200, response.content
    body = response.json()
    return body, {r["studentId"]: r for r in body["recommendations"]}


def test_one_recommendation_per_active_student(wf_client, wf_class):
    body, by_student = _recommendations(wf_client, wf_class)
    assert body["classId"] == wf_class.school_class.pk
    assert sorted(by_student) == sorted(s.pk for s in wf_class.active_students)
    assert wf_class.withdrawn.pk not in by_student


def test_bundle_and_non_bundle_recommendations(wf_client, wf_class):
    _, by_student = _recommendations(wf_client, wf_class)
    stalled = by_student[wf_class.stalled_a.pk]
    assert (stalled["objectType"], stalled["bundleId"], stalled["recommendedTier"]) == (
        "INTERVENTION",
        "BND-MATH-LINEQ",
        "Level_2",
    )
    assert (stalled["deliveryMode"], stalled["anchorSkill"], stalled["guardrail"]) == (
        "small_group",
        "linear_equations",
        None,
    )
    unsure = by_student[wf_class.unsure.pk]
    assert (unsure["objectType"], unsure["bundleId"], unsure["recommendedTier"]) == (
        "COMPOSITE",
        "BND-MATH-CONF",
        "Level_2",
    )
    for student, kind in ((wf_class.practising, "PRACTICE_SET"), (wf_class.excelling, "ENRICHMENT")):
        found = by_student[student.pk]
        assert (found["objectType"], found["bundleId"], found["recommendedTier"]) == (kind, None, None)
        assert found["guardrail"] is None


def test_do_not_decide_yet_is_insufficient_evidence_needs_more_data_and_in_no_cluster(wf_client, wf_class):
    body, by_student = _recommendations(wf_client, wf_class)
    undecided = wf_class.undecided.pk
    assert by_student[undecided]["doNotDecideYet"] is True
    assert by_student[undecided]["guardrail"] == "INSUFFICIENT_EVIDENCE"
    assert body["needsMoreData"] == [undecided]
    for cluster in body["clusters"]:
        assert undecided not in cluster["members"]
        assert undecided not in [d["studentId"] for d in cluster["deferred"]]


def test_a_qa_003_student_is_data_incomplete_and_deferred_in_its_cluster(wf_client, wf_class):
    body, by_student = _recommendations(wf_client, wf_class)
    quiet = by_student[wf_class.quiet.pk]
    assert (quiet["qaExclusion"], quiet["guardrail"], quiet["doNotDecideYet"]) == (
        "QA_003",
        "DATA_INCOMPLETE",
        False,
    )
    [cluster] = [c for c in body["clusters"] if wf_class.stalled_a.pk in c["members"]]
    assert cluster["deferred"] == [{"studentId": wf_class.quiet.pk, "qa": "QA_003"}]
    assert wf_class.quiet.pk not in cluster["members"]


def test_an_open_acute_alert_is_acute_regression_unresolved(wf_client, wf_class):
    body, by_student = _recommendations(wf_client, wf_class)
    assert by_student[wf_class.falling.pk]["guardrail"] == "ACUTE_REGRESSION_UNRESOLVED"
    [alert] = body["acuteAlerts"]
    assert alert["id"] == _alert(wf_class.falling).pk
    assert alert["studentId"] == wf_class.falling.pk
    assert "mastery fell" in alert["summary"]


def test_clusters_group_by_the_five_keys(wf_client, wf_class):
    body, _ = _recommendations(wf_client, wf_class)
    by_members = {frozenset(c["members"]): c for c in body["clusters"]}
    s = wf_class
    assert set(by_members) == {
        frozenset({s.stalled_a.pk, s.stalled_b.pk}),
        frozenset({s.stalled_low.pk, s.falling.pk}),
        frozenset({s.unsure.pk}),
    }
    level_2 = by_members[frozenset({s.stalled_a.pk, s.stalled_b.pk})]
    level_3 = by_members[frozenset({s.stalled_low.pk, s.falling.pk})]
    assert level_2["identity"] == f"{s.school_class.pk}|BND-MATH-LINEQ|linear_equations|Level_2|small_group"
    assert (level_2["bundleId"], level_2["anchorSkill"], level_2["deliveryMode"]) == (
        level_3["bundleId"],
        level_3["anchorSkill"],
        level_3["deliveryMode"],
    )
    assert (level_2["scaffoldTier"], level_3["scaffoldTier"]) == ("Level_2", "Level_3")
    composite = by_members[frozenset({s.unsure.pk})]
    assert (composite["bundleId"], composite["scaffoldTier"]) == ("BND-MATH-CONF", "Level_2")


def test_stale_recommendations_are_recomputed_when_the_panel_is_read(wf_client, wf_class):
    Recommendation.objects.update(computed_at=timezone.now() - timedelta(hours=7))
    mirror(wf_class.undecided, flat(0.6, offsets=range(4, 16)))
    _, by_student = _recommendations(wf_client, wf_class)
    assert by_student[wf_class.undecided.pk]["doNotDecideYet"] is False
    assert by_student[wf_class.undecided.pk]["recommendedTier"] == "Level_2"


# Drafts ---------------------------------------------------------------------------------------------


def _resume(wf_client: Call, wf: WorkflowTeacher, teacher_id: int | None = None) -> Any:
    teacher_id = teacher_id or wf.teacher.pk
    return wf_client("get", f"/draft/{teacher_id}/{wf.school_class.pk}")


def test_without_a_draft_the_workflow_starts_at_taw_01(wf_client, wf_teacher):
    response = _resume(wf_client, wf_teacher)
    assert response.status_code == 200
    body = response.json()
    assert (body["step"], body["stage"], body["state"], body["resumed"]) == ("TAW_01", "review", {}, False)


def test_a_saved_draft_is_resumed_with_its_step_and_state(wf_client, wf_teacher):
    assert _save(wf_client, wf_teacher, "TAW_02", {"seen": [1, 2]}).status_code == 200
    response = _resume(wf_client, wf_teacher)
    assert response.status_code == 200
    body = response.json()
    assert (body["step"], body["stage"], body["surface"]) == ("TAW_02", "review", "recommendations_panel")
    assert (body["state"], body["resumed"], body["teacherId"]) == (
        {"seen": [1, 2]},
        True,
        wf_teacher.teacher.pk,
    )
    assert body["expiresAt"]


def test_save_draft_upserts_one_row_and_the_last_write_wins(wf_client, wf_teacher):
    _save(wf_client, wf_teacher, "TAW_02", {"version": 1})
    response = _save(wf_client, wf_teacher, "TAW_03", {"version": 2})
    assert response.status_code == 200
    assert (response.json()["step"], response.json()["state"]) == ("TAW_03", {"version": 2})
    draft = WorkflowDraft.objects.get()
    assert (draft.teacher, draft.school_class, draft.step, draft.state) == (
        wf_teacher.teacher,
        wf_teacher.school_class,
        "TAW_03",
        {"version": 2},
    )
    assert list(
        TeacherActionLog.objects.filter(action_type="step").values_list("workflow_step", flat=True)
    ) == ["TAW_02", "TAW_03"]


def test_a_draft_past_its_ttl_is_gone(wf_client, wf_teacher):
    eight_days_ago = timezone.now() - timedelta(days=catalog.DRAFT_TTL_DAYS + 1)
    services.draft_save(
        teacher=wf_teacher.teacher,
        school_class=wf_teacher.school_class,
        step="TAW_02",
        state={"a": 1},
        now=eight_days_ago,
    )
    response = _resume(wf_client, wf_teacher)
    assert response.status_code == 200
    assert (response.json()["step"], response.json()["resumed"], response.json()["state"]) == (
        "TAW_01",
        False,
        {},
    )


def test_a_draft_within_its_ttl_is_resumed(wf_client, wf_teacher):
    six_days_ago = timezone.now() - timedelta(days=catalog.DRAFT_TTL_DAYS - 1)
    services.draft_save(
        teacher=wf_teacher.teacher,
        school_class=wf_teacher.school_class,
        step="TAW_02",
        state={},
        now=six_days_ago,
    )
    response = _resume(wf_client, wf_teacher)
    assert response.status_code == 200
    assert (response.json()["step"], response.json()["resumed"]) == ("TAW_02", True)


def test_an_expired_draft_moves_on_from_taw_01(wf_client, wf_teacher):
    for step in ("TAW_02", "TAW_03", "TAW_07", "TAW_10"):
        assert _save(wf_client, wf_teacher, step).status_code == 200
    WorkflowDraft.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    body = _assert_error(_save(wf_client, wf_teacher, "TAW_11"), 409, "ILLEGAL_TRANSITION")
    assert body["currentStep"] == "TAW_01"
    assert _save(wf_client, wf_teacher, "TAW_02").status_code == 200


def test_an_illegal_transition_is_409_naming_the_current_step(wf_client, wf_teacher):
    body = _assert_error(_save(wf_client, wf_teacher, "TAW_11"), 409, "ILLEGAL_TRANSITION")
    assert body["currentStep"] == "TAW_01"
    assert not WorkflowDraft.objects.exists()
    _save(wf_client, wf_teacher, "TAW_02")
    body = _assert_error(_save(wf_client, wf_teacher, "TAW_05"), 409, "ILLEGAL_TRANSITION")
    assert body["currentStep"] == "TAW_02"
    assert WorkflowDraft.objects.get().step == "TAW_02"


def test_a_step_may_be_saved_again_or_start_over(wf_client, wf_teacher):
    for step in ("TAW_02", "TAW_03", "TAW_03", "TAW_01"):
        assert _save(wf_client, wf_teacher, step).status_code == 200
    assert WorkflowDraft.objects.get().step == "TAW_01"


def test_an_unknown_step_is_400(wf_client, wf_teacher):
    for step in ("TAW_18", "TAW_1", "taw_02", ""):
        _assert_error(_save(wf_client, wf_teacher, step), 400, "UNKNOWN_STEP")
    assert not WorkflowDraft.objects.exists()


def test_another_teachers_draft_path_is_404(wf_client, wf_teacher):
    school = wf_teacher.school
    services.draft_save(
        teacher=school.colleague, school_class=school.colleague_class, step="TAW_02", state={}
    )
    response = _resume(wf_client, wf_teacher, teacher_id=school.colleague.pk)
    _assert_error(response, 404, "not_found")
    response = wf_client("get", f"/draft/{school.colleague.pk}/{school.colleague_class.pk}")
    _assert_error(response, 404, "not_found")


def test_a_draft_exclusion_takes_a_grouping_code_only(wf_client, wf_class):
    for code, error in (("not in this group", "INVALID_OVERRIDE_CODE"), ("OVR_TIER_RAISE", "SCOPE_MISMATCH")):
        state = {"excluded": [{"studentId": wf_class.stalled_b.pk, "overrideCode": code}]}
        _assert_error(_save(wf_client, wf_class, "TAW_02", state), 400, error)
    assert not WorkflowDraft.objects.exists()


# Activation: a cluster in bulk (kind "activated") -------------------------------------------------


def test_bulk_activation_of_a_cluster_writes_assignments_scaffold_history_log_and_audit(wf_client, wf_class):
    s = wf_class
    _save(wf_client, s, "TAW_02")
    response = _activate_cluster(wf_client, s, s.stalled_a)
    assert response.status_code == 200, response.content
    body = response.json()
    assignments = {a.student_id: a for a in BundleAssignment.objects.all()}
    assert set(assignments) == {s.stalled_a.pk, s.stalled_b.pk}
    assert body == {
        "kind": "activated",
        "bundleId": "BND-MATH-LINEQ",
        "activated": [
            {"studentId": student.pk, "assignmentId": assignments[student.pk].pk, "scaffoldTier": "Level_2"}
            for student in sorted((s.stalled_a, s.stalled_b), key=lambda x: x.pk)
        ],
        "deferred": [{"studentId": s.quiet.pk, "reason": "DATA_INCOMPLETE", "qa": "QA_003"}],
        "excluded": [],
        "alreadyActive": [],
        "routing": None,
    }
    assignment = assignments[s.stalled_a.pk]
    assert (
        assignment.status,
        assignment.plan_status,
        assignment.scaffold_tier,
        assignment.recommended_tier,
    ) == (
        "active",
        "in_progress",
        "Level_2",
        "Level_2",
    )
    assert (assignment.cluster, assignment.activated_by, assignment.bundle.code) == (
        s.cluster(s.stalled_a),
        s.teacher,
        "BND-MATH-LINEQ",
    )
    assert sorted(assignment.scaffold.values_list("role", "thread", "level", "weekly_minutes")) == [
        ("anchor", "linear_equations", "Level_2", 45),
        ("bridge", "worked-example cards", "Level_2", 15),
        ("supporting", "integer_operations", "Level_2", 20),
        ("supporting", "inverse_operations", "Level_2", 20),
    ]
    [history] = assignment.history.all()
    assert (history.event, history.triggering_workflow_step, history.actor) == (
        "activated",
        "TAW_11",
        s.teacher,
    )
    logged = TeacherActionLog.objects.exclude(action_type="step")
    assert sorted(logged.values_list("student_id", "action_type", "workflow_step", "code")) == sorted(
        [
            (s.stalled_a.pk, "activate", "TAW_11", ""),
            (s.stalled_b.pk, "activate", "TAW_11", ""),
            (s.quiet.pk, "deferred", "TAW_11", "QA_003"),
        ]
    )
    event = ActivityEvent.objects.get(verb="workflow.activated")
    assert (event.actor, event.details["workflow_step"], event.source) == (s.teacher, "TAW_11", "api")
    assert WorkflowDraft.objects.get().step == "TAW_13"


def test_a_member_taken_out_in_the_draft_is_excluded(wf_client, wf_class):
    s = wf_class
    state = {"excluded": [{"studentId": s.stalled_b.pk, "overrideCode": "OVR_GROUP_EXCLUDE"}]}
    assert _save(wf_client, s, "TAW_02", state).status_code == 200
    response = _activate_cluster(wf_client, s, s.stalled_a)
    assert response.status_code == 200
    body = response.json()
    assert body["excluded"] == [{"studentId": s.stalled_b.pk, "overrideCode": "OVR_GROUP_EXCLUDE"}]
    assert [a["studentId"] for a in body["activated"]] == [s.stalled_a.pk]
    assert not BundleAssignment.objects.filter(student=s.stalled_b).exists()
    assert TeacherActionLog.objects.get(student=s.stalled_b).code == "OVR_GROUP_EXCLUDE"


def test_a_member_with_an_open_alert_taken_out_does_not_block_the_others(wf_client, wf_class):
    s = wf_class
    state = {"excluded": [{"studentId": s.falling.pk, "overrideCode": "OVR_GROUP_SCHEDULE"}]}
    _save(wf_client, s, "TAW_02", state)
    response = _activate_cluster(wf_client, s, s.stalled_low)
    assert response.status_code == 200, response.content
    assert [a["studentId"] for a in response.json()["activated"]] == [s.stalled_low.pk]
    assert response.json()["excluded"] == [{"studentId": s.falling.pk, "overrideCode": "OVR_GROUP_SCHEDULE"}]


def test_an_already_active_members_open_alert_does_not_block_new_members(wf_client, wf_class):
    s = wf_class
    assert _activate_cluster(wf_client, s, s.stalled_a).status_code == 200
    _regress(s.stalled_b, 0.55)  # still Level_2, so still in the cluster
    newcomer = enrol(s.school_class, flat(0.65))
    s.refresh()
    assert _alert(s.stalled_b)
    assert set(s.cluster(s.stalled_a).members.values_list("student_id", flat=True)) >= {
        s.stalled_b.pk,
        newcomer.pk,
    }
    response = _activate_cluster(wf_client, s, s.stalled_a)
    assert response.status_code == 200, response.content
    assert [a["studentId"] for a in response.json()["activated"]] == [newcomer.pk]


def test_a_deferred_members_open_alert_does_not_block_the_others(wf_client, wf_class):
    s = wf_class
    # Six days on: the falling student (open alert) has gone quiet, their cluster-mate has not.
    later = timezone.now() + timedelta(days=6)
    mirror(s.stalled_low, flat(0.4, offsets=range(6)), today=timezone.localdate(later))
    services.recommendations_refresh(school_class=s.school_class, now=later)
    assert Recommendation.objects.get(student=s.falling).qa_exclusion == "QA_003"
    assert s.cluster(s.falling) == s.cluster(s.stalled_low)
    assert _alert(s.falling)
    response = _activate_cluster(wf_client, s, s.stalled_low)
    assert response.status_code == 200, response.content
    assert [a["studentId"] for a in response.json()["activated"]] == [s.stalled_low.pk]
    assert [d["studentId"] for d in response.json()["deferred"]] == [s.falling.pk]


def test_activating_again_reports_the_members_already_active(wf_client, wf_class):
    s = wf_class
    _activate_cluster(wf_client, s, s.stalled_a)
    response = _activate_cluster(wf_client, s, s.stalled_a)
    assert response.status_code == 200
    body = response.json()
    assert (body["activated"], body["alreadyActive"]) == ([], sorted([s.stalled_a.pk, s.stalled_b.pk]))
    assert BundleAssignment.objects.count() == 2


def test_a_composite_cluster_activates_its_bundle(wf_client, wf_class):
    response = _activate_cluster(wf_client, wf_class, wf_class.unsure)
    assert response.status_code == 200
    assert (response.json()["kind"], response.json()["bundleId"]) == ("activated", "BND-MATH-CONF")
    assert BundleAssignment.objects.get().bundle.object_type == "COMPOSITE"


# Activation: one student (TAW_12) -------------------------------------------------------------------


def test_individual_activation_of_a_bundle_recommendation_is_taw_12(wf_client, wf_class):
    response = _activate(wf_client, wf_class, studentIds=[wf_class.stalled_low.pk])
    assert response.status_code == 200
    body = response.json()
    assert (body["kind"], body["bundleId"], body["routing"]) == ("activated", "BND-MATH-LINEQ", None)
    assignment = BundleAssignment.objects.get()
    assert body["activated"] == [
        {"studentId": wf_class.stalled_low.pk, "assignmentId": assignment.pk, "scaffoldTier": "Level_3"}
    ]
    assert assignment.cluster is None
    assert assignment.history.get().triggering_workflow_step == "TAW_12"
    assert ActivityEvent.objects.get(verb="workflow.activated").details["workflow_step"] == "TAW_12"


def test_individual_activation_of_a_qa_003_student_defers_them(wf_client, wf_class):
    response = _activate(wf_client, wf_class, studentIds=[wf_class.quiet.pk])
    assert response.status_code == 200
    assert (response.json()["activated"], response.json()["deferred"][0]["reason"]) == ([], "DATA_INCOMPLETE")
    assert not BundleAssignment.objects.exists()


def test_individual_activation_of_a_non_bundle_recommendation_is_routed(wf_client, wf_class):
    for student, object_type, outcome in (
        (wf_class.practising, "PRACTICE_SET", "ROUTE_PRACTICE_SET"),
        (wf_class.excelling, "ENRICHMENT", "ROUTE_ENRICHMENT"),
    ):
        response = _activate(wf_client, wf_class, studentIds=[student.pk])
        assert response.status_code == 200, response.content
        routing = {"studentId": student.pk, "objectType": object_type, "routingOutcome": outcome}
        assert response.json() == {
            "kind": "routed",
            "bundleId": None,
            "activated": [],
            "deferred": [],
            "excluded": [],
            "alreadyActive": [],
            "routing": routing,
        }
        logged = TeacherActionLog.objects.get(student=student)
        assert (logged.action_type, logged.workflow_step, logged.code, logged.details) == (
            "individual_routing",
            "TAW_12",
            outcome,
            routing,
        )
    assert not BundleAssignment.objects.exists()
    assert not ScaffoldRow.objects.exists()
    assert [e.details["workflow_step"] for e in ActivityEvent.objects.filter(verb="workflow.routed")] == [
        "TAW_12",
        "TAW_12",
    ]


def test_a_stall_without_a_bundle_for_the_subject_is_routed_monitor_only(wf_client, wf_class):
    history = factories.TeacherAssignmentFactory(
        teacher=wf_class.teacher,
        school_class__organisation=wf_class.school.organisation,
        school_class__subject="History",
    ).school_class
    student = enrol(history, flat(0.4))
    services.recommendations_refresh(school_class=history)
    rec = Recommendation.objects.get(student=student)
    assert (rec.object_type, rec.bundle, rec.do_not_decide_yet) == ("MONITOR_ONLY", None, False)
    assert "no INTERVENTION bundle for History" in rec.rationale
    response = wf_client("post", "/activate", {"classId": history.pk, "studentIds": [student.pk]})
    assert response.status_code == 200, response.content
    assert (response.json()["kind"], response.json()["routing"]) == (
        "routed",
        {"studentId": student.pk, "objectType": "MONITOR_ONLY", "routingOutcome": "ROUTE_MONITOR_ONLY"},
    )
    assert not Cluster.objects.filter(school_class=history).exists()
    assert not BundleAssignment.objects.exists()


def test_routing_a_student_with_an_active_bundle_still_checks_the_evidence(wf_client, wf_class):
    s = wf_class
    assert _activate(wf_client, s, studentIds=[s.stalled_a.pk]).status_code == 200
    # The platform lost most of the student's history: thin evidence now.
    DailyPerformance.objects.filter(
        student=s.stalled_a, date__lt=timezone.localdate() - timedelta(days=3)
    ).delete()
    s.refresh()
    assert Recommendation.objects.get(student=s.stalled_a).do_not_decide_yet
    response = _activate(wf_client, s, studentIds=[s.stalled_a.pk])
    body = _assert_error(response, 409, "INSUFFICIENT_EVIDENCE")
    assert body["bucket"] == "needs_more_data"
    assert not TeacherActionLog.objects.filter(action_type="individual_routing").exists()


def test_an_activation_targets_a_cluster_or_exactly_one_student(wf_client, wf_class):
    s = wf_class
    cluster = s.cluster(s.stalled_a).pk
    for target in (
        {"clusterId": None, "studentIds": []},
        {"studentIds": [s.stalled_a.pk, s.stalled_b.pk]},
        {"clusterId": cluster, "studentIds": [s.stalled_a.pk]},
    ):
        _assert_error(_activate(wf_client, s, **target), 400, "BAD_TARGET")
    assert not BundleAssignment.objects.exists()


@pytest.fixture
def colleague_assignment(wf_class: WorkflowClass) -> BundleAssignment:
    """A bundle assignment the colleague made in their own class, through the same services."""
    school = wf_class.school
    student = enrol(school.colleague_class, flat(0.6))
    services.recommendations_refresh(school_class=school.colleague_class)
    services.activate(teacher=school.colleague, school_class=school.colleague_class, student_ids=[student.pk])
    return BundleAssignment.objects.get(student=student)


def test_a_cluster_of_another_class_is_404(wf_client, wf_class, colleague_assignment):
    other = Cluster.objects.get(school_class=wf_class.school.colleague_class)
    _assert_error(_activate(wf_client, wf_class, clusterId=other.pk), 404, "NOT_FOUND")
    body = {"classId": wf_class.school.colleague_class.pk, "clusterId": other.pk}
    _assert_error(wf_client("post", "/activate", body), 404, "not_found")
    assert BundleAssignment.objects.count() == 1


# Guardrails -------------------------------------------------------------------------------------------


def test_do_not_decide_yet_blocks_activation_into_needs_more_data(wf_client, wf_class):
    response = _activate(wf_client, wf_class, studentIds=[wf_class.undecided.pk])
    body = _assert_error(response, 409, "INSUFFICIENT_EVIDENCE")
    assert (body["bucket"], body["studentIds"]) == ("needs_more_data", [wf_class.undecided.pk])
    assert not TeacherActionLog.objects.exists()
    assert not BundleAssignment.objects.exists()


def test_an_open_acute_alert_blocks_the_whole_cluster(wf_client, wf_class):
    response = _activate_cluster(wf_client, wf_class, wf_class.falling)
    body = _assert_error(response, 409, "ACUTE_REGRESSION_UNRESOLVED")
    assert (body["studentIds"], body["alertIds"]) == ([wf_class.falling.pk], [_alert(wf_class.falling).pk])
    assert not BundleAssignment.objects.exists()
    response = _activate(wf_client, wf_class, studentIds=[wf_class.falling.pk])
    _assert_error(response, 409, "ACUTE_REGRESSION_UNRESOLVED")


def test_dismissing_with_a_context_flag_logs_it_apart_and_unblocks_activation(wf_client, wf_class):
    s = wf_class
    alert = _alert(s.falling)
    response = _review(wf_client, s, alert, "dismiss", "CTX_STUDENT_ABSENT")
    assert response.status_code == 200, response.content
    assert response.json() == {"alertId": alert.pk, "state": "dismissed", "studentId": s.falling.pk}
    [flag] = ContextFlagLog.objects.all()
    assert (flag.flag, flag.alert, flag.student, flag.workflow_step, flag.recorded_by) == (
        "CTX_STUDENT_ABSENT",
        alert,
        s.falling,
        "TAW_15",
        s.teacher,
    )
    alert.refresh_from_db()
    assert alert.state == "dismissed"
    assert "CTX_STUDENT_ABSENT" not in repr(model_to_dict(alert))
    assert not TeacherReviewRequest.objects.exists()
    assert (
        ActivityEvent.objects.get(verb="workflow.acute_alert_dismissed").details["workflow_step"] == "TAW_15"
    )
    response = _activate_cluster(wf_client, s, s.falling)
    assert response.status_code == 200, response.content
    assert sorted(a["studentId"] for a in response.json()["activated"]) == sorted(
        [s.stalled_low.pk, s.falling.pk]
    )


def test_resolving_an_alert_never_changes_the_plan_status(wf_client, wf_class):
    s = wf_class
    _activate(wf_client, s, studentIds=[s.stalled_a.pk])
    assignment = BundleAssignment.objects.get(student=s.stalled_a)
    services.plan_continue(teacher=s.teacher, school_class=s.school_class, assignment_id=assignment.pk)
    _regress(s.stalled_a)
    s.refresh()
    alert = _alert(s.stalled_a)
    before = model_to_dict(BundleAssignment.objects.get(pk=assignment.pk))
    history = assignment.history.count()
    assert _review(wf_client, s, alert, "dismiss", "CTX_TECHNICAL_ISSUE").status_code == 200
    after = BundleAssignment.objects.get(pk=assignment.pk)
    assert model_to_dict(after) == before
    assert (after.plan_status, after.status) == ("continuing", "active")
    assert assignment.history.count() == history


def test_dismissing_without_a_catalogue_context_flag_is_400(wf_client, wf_class):
    alert = _alert(wf_class.falling)
    for flag in (None, "", "the student was ill", "ctx_student_absent"):
        _assert_error(_review(wf_client, wf_class, alert, "dismiss", flag), 400, "INVALID_CONTEXT_FLAG")
    alert.refresh_from_db()
    assert alert.state == "open"
    assert not ContextFlagLog.objects.exists()


def test_escalating_opens_a_nomination_and_writes_no_tier(wf_client, wf_class):
    s = wf_class
    _activate(wf_client, s, studentIds=[s.stalled_a.pk])
    _regress(s.stalled_a)
    s.refresh()
    alert = _alert(s.stalled_a)

    def tiers() -> tuple:
        return (
            list(BundleAssignment.objects.values_list("scaffold_tier", "recommended_tier")),
            list(Recommendation.objects.order_by("pk").values_list("recommended_tier", flat=True)),
            list(ScaffoldRow.objects.values_list("level", flat=True)),
            AssignmentHistory.objects.count(),
        )

    before = tiers()
    response = _review(wf_client, s, alert, "escalate")
    assert response.status_code == 200, response.content
    assert response.json() == {"alertId": alert.pk, "state": "escalated", "studentId": s.stalled_a.pk}
    [nomination] = TeacherReviewRequest.objects.all()
    assert (nomination.status, nomination.student, nomination.alert, nomination.requested_by) == (
        "nominated",
        s.stalled_a,
        alert,
        s.teacher,
    )
    assert tiers() == before
    assert not ContextFlagLog.objects.exists()
    assert TeacherActionLog.objects.get(action_type="acute_escalate").workflow_step == "TAW_15"


def test_escalating_with_a_free_text_context_flag_is_refused(wf_client, wf_class):
    alert = _alert(wf_class.falling)
    response = _review(wf_client, wf_class, alert, "escalate", "he seemed upset today")
    _assert_error(response, 400, "INVALID_CONTEXT_FLAG")
    alert.refresh_from_db()
    assert alert.state == "open"
    assert not TeacherReviewRequest.objects.exists()
    assert not TeacherActionLog.objects.filter(action_type="acute_escalate").exists()


def test_escalating_may_carry_a_catalogue_context_flag(wf_client, wf_class):
    alert = _alert(wf_class.falling)
    assert _review(wf_client, wf_class, alert, "escalate", "CTX_NEEDED_REPETITION").status_code == 200
    assert TeacherActionLog.objects.get(action_type="acute_escalate").code == "CTX_NEEDED_REPETITION"
    assert TeacherReviewRequest.objects.get().status == "nominated"


def test_a_resolved_alert_cannot_be_resolved_again(wf_client, wf_class):
    alert = _alert(wf_class.falling)
    _review(wf_client, wf_class, alert, "escalate")
    _assert_error(
        _review(wf_client, wf_class, alert, "dismiss", "CTX_AUDIO_PROBLEM"), 409, "ALREADY_RESOLVED"
    )
    assert TeacherReviewRequest.objects.count() == 1


def test_an_alert_of_another_class_is_404(wf_client, wf_class):
    school = wf_class.school
    elsewhere = enrol(school.colleague_class, falling(0.45, 0.3))
    services.recommendations_refresh(school_class=school.colleague_class)
    alert = _alert(elsewhere)
    _assert_error(_review(wf_client, wf_class, alert, "escalate"), 404, "NOT_FOUND")
    alert.refresh_from_db()
    assert alert.state == "open"
    assert not TeacherReviewRequest.objects.exists()


def test_an_unknown_review_action_is_400(wf_client, wf_class):
    _assert_error(_review(wf_client, wf_class, _alert(wf_class.falling), "ignore"), 400, "bad_request")


def test_a_dismissed_alert_stays_resolved_when_the_panel_is_refreshed(wf_client, wf_class):
    s = wf_class
    _review(wf_client, s, _alert(s.falling), "dismiss", "CTX_STUDENT_ABSENT")
    Recommendation.objects.update(computed_at=timezone.now() - timedelta(hours=7))
    body, _ = _recommendations(wf_client, s)
    assert body["acuteAlerts"] == []
    assert _activate_cluster(wf_client, s, s.falling).status_code == 200


def test_a_measurement_newer_than_the_resolution_can_reopen_the_alert(wf_client, wf_class):
    s = wf_class
    _review(wf_client, s, _alert(s.falling), "dismiss", "CTX_STUDENT_ABSENT")
    tomorrow = timezone.now() + timedelta(days=1)
    mirror(s.falling, [(0, 0.3, 4)], today=timezone.localdate(tomorrow))
    services.recommendations_refresh(school_class=s.school_class, now=tomorrow)
    assert AcuteRegressionAlert.objects.filter(student=s.falling, state="open").count() == 1
    assert AcuteRegressionAlert.objects.filter(student=s.falling).count() == 2


# Override codes ------------------------------------------------------------------------------------


def _member(student: Student, tier: str = "", code: str = "") -> dict[str, Any]:
    return {"studentId": student.pk, "scaffoldTier": tier, "overrideCode": code}


def test_another_tier_without_an_override_code_is_400(wf_client, wf_class):
    s = wf_class
    response = _activate_cluster(wf_client, s, s.stalled_a, members=[_member(s.stalled_a, "Level_3")])
    _assert_error(response, 400, "OVERRIDE_CODE_REQUIRED")
    assert not BundleAssignment.objects.exists()


def test_a_free_text_override_code_is_400(wf_client, wf_class):
    s = wf_class
    for tier in ("Level_3", "Level_2"):
        member = _member(s.stalled_a, tier, "she needs more help")
        response = _activate_cluster(wf_client, s, s.stalled_a, members=[member], confirmed=True)
        _assert_error(response, 400, "INVALID_OVERRIDE_CODE")
    assert not BundleAssignment.objects.exists()


def test_a_code_of_another_scope_on_activate_is_scope_mismatch(wf_client, wf_class):
    s = wf_class
    for code in ("OVR_EXIT_GOAL_MET", "OVR_GROUP_EXCLUDE"):
        for tier in ("Level_3", "Level_2"):
            member = _member(s.stalled_a, tier, code)
            response = _activate_cluster(wf_client, s, s.stalled_a, members=[member], confirmed=True)
            _assert_error(response, 400, "SCOPE_MISMATCH")
    assert not BundleAssignment.objects.exists()


def test_another_tier_with_a_code_needs_confirmation(wf_client, wf_class):
    s = wf_class
    member = _member(s.stalled_a, "Level_3", "OVR_TIER_RAISE")
    response = _activate_cluster(wf_client, s, s.stalled_a, members=[member])
    body = _assert_error(response, 409, "CONFIRMATION_REQUIRED")
    assert body["studentId"] == s.stalled_a.pk
    assert not BundleAssignment.objects.exists()


def test_a_confirmed_override_activates_the_chosen_tier_and_keeps_the_recommended_one(wf_client, wf_class):
    s = wf_class
    member = _member(s.stalled_a, "Level_3", "OVR_TIER_RAISE")
    response = _activate_cluster(wf_client, s, s.stalled_a, members=[member], confirmed=True)
    assert response.status_code == 200, response.content
    tiers = {a["studentId"]: a["scaffoldTier"] for a in response.json()["activated"]}
    assert tiers == {s.stalled_a.pk: "Level_3", s.stalled_b.pk: "Level_2"}
    assignment = BundleAssignment.objects.get(student=s.stalled_a)
    assert (assignment.scaffold_tier, assignment.recommended_tier) == ("Level_3", "Level_2")
    assert set(assignment.scaffold.values_list("level", flat=True)) == {"Level_3"}
    assert assignment.scaffold.get(role="anchor").weekly_minutes == 60
    history = assignment.history.get()
    assert (history.override_code, history.details) == (
        "OVR_TIER_RAISE",
        {"scaffold_tier": "Level_3", "recommended_tier": "Level_2"},
    )
    assert TeacherActionLog.objects.get(student=s.stalled_a, action_type="activate").code == "OVR_TIER_RAISE"


def test_an_unknown_tier_or_a_student_outside_the_cluster_is_400(wf_client, wf_class):
    s = wf_class
    member = _member(s.stalled_a, "Level_9", "OVR_TIER_RAISE")
    response = _activate_cluster(wf_client, s, s.stalled_a, members=[member], confirmed=True)
    _assert_error(response, 400, "INVALID_TIER")
    member = _member(s.stalled_low, "Level_3", "OVR_TIER_RAISE")
    _assert_error(_activate_cluster(wf_client, s, s.stalled_a, members=[member]), 400, "NOT_A_MEMBER")
    assert not BundleAssignment.objects.exists()


# Exit ----------------------------------------------------------------------------------------------------


def _exit(wf_client: Call, wf: WorkflowTeacher, assignment_id: int, code: str) -> Any:
    return wf_client(
        "post", "/exit", {"classId": wf.school_class.pk, "assignmentId": assignment_id, "overrideCode": code}
    )


@pytest.fixture
def active_assignment(wf_client: Call, wf_class: WorkflowClass) -> BundleAssignment:
    assert _activate(wf_client, wf_class, studentIds=[wf_class.stalled_a.pk]).status_code == 200
    return BundleAssignment.objects.get(student=wf_class.stalled_a)


def test_exit_closes_the_assignment_with_history_at_taw_17(wf_client, wf_class, active_assignment):
    response = _exit(wf_client, wf_class, active_assignment.pk, "OVR_EXIT_GOAL_MET")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "assignmentId": active_assignment.pk,
        "status": "exited",
        "exitCode": "OVR_EXIT_GOAL_MET",
    }
    active_assignment.refresh_from_db()
    assert (active_assignment.status, active_assignment.plan_status, active_assignment.exit_code) == (
        "exited",
        "exited",
        "OVR_EXIT_GOAL_MET",
    )
    assert active_assignment.exited_at is not None
    last = active_assignment.history.last()
    assert (last.event, last.triggering_workflow_step, last.override_code) == (
        "exited",
        "TAW_17",
        "OVR_EXIT_GOAL_MET",
    )
    assert TeacherActionLog.objects.get(action_type="exit").workflow_step == "TAW_17"
    assert ActivityEvent.objects.get(verb="workflow.exited").details == {
        "workflow_step": "TAW_17",
        "override_code": "OVR_EXIT_GOAL_MET",
    }


def test_exiting_again_is_409(wf_client, wf_class, active_assignment):
    _exit(wf_client, wf_class, active_assignment.pk, "OVR_EXIT_GOAL_MET")
    _assert_error(
        _exit(wf_client, wf_class, active_assignment.pk, "OVR_EXIT_NO_RESPONSE"), 409, "ALREADY_EXITED"
    )
    assert active_assignment.history.filter(event="exited").count() == 1


def test_exit_takes_an_exit_code_only(wf_client, wf_class, active_assignment):
    for code, error in (
        ("OVR_TIER_LOWER", "SCOPE_MISMATCH"),
        ("OVR_GROUP_EXCLUDE", "SCOPE_MISMATCH"),
        ("goal met", "INVALID_OVERRIDE_CODE"),
    ):
        _assert_error(_exit(wf_client, wf_class, active_assignment.pk, code), 400, error)
    active_assignment.refresh_from_db()
    assert active_assignment.status == "active"
    assert not active_assignment.history.filter(event="exited").exists()


def test_exit_of_an_assignment_in_another_class_is_404(wf_client, wf_class, colleague_assignment):
    _assert_error(_exit(wf_client, wf_class, colleague_assignment.pk, "OVR_EXIT_GOAL_MET"), 404, "NOT_FOUND")
    body = {
        "classId": wf_class.school.colleague_class.pk,
        "assignmentId": colleague_assignment.pk,
        "overrideCode": "OVR_EXIT_GOAL_MET",
    }
    _assert_error(wf_client("post", "/exit", body), 404, "not_found")
    colleague_assignment.refresh_from_db()
    assert colleague_assignment.status == "active"


# Scoping: ClassTeacher, for every endpoint ---------------------------------------------------------


@pytest.fixture
def requests_on_the_class(
    wf_class: WorkflowClass, active_assignment: BundleAssignment
) -> dict[str, tuple[str, str, dict | None]]:
    """Every endpoint that names the class, with real ids, so a refusal can only be the scope."""
    s = wf_class
    class_id = s.school_class.pk
    alert = _alert(s.falling)
    return {
        "recommendations": ("get", f"/recommendations/{class_id}", None),
        "draft": ("get", f"/draft/{{caller}}/{class_id}", None),
        "save-draft": ("post", "/save-draft", {"classId": class_id, "step": "TAW_02", "state": {}}),
        "activate": ("post", "/activate", {"classId": class_id, "clusterId": s.cluster(s.stalled_b).pk}),
        "activate-one": ("post", "/activate", {"classId": class_id, "studentIds": [s.practising.pk]}),
        "review": (
            "post",
            "/review",
            {
                "classId": class_id,
                "alertId": alert.pk,
                "action": "dismiss",
                "contextFlag": "CTX_STUDENT_ABSENT",
            },
        ),
        "exit": (
            "post",
            "/exit",
            {"classId": class_id, "assignmentId": active_assignment.pk, "overrideCode": "OVR_EXIT_GOAL_MET"},
        ),
    }


def _org_admin(school: Any) -> User:
    return factories.UserFactory(organisation=school.organisation, role=User.Role.ORG_ADMIN)


def _writes() -> tuple:
    return (
        BundleAssignment.objects.filter(status="active").count(),
        WorkflowDraft.objects.count(),
        TeacherActionLog.objects.count(),
        ContextFlagLog.objects.count(),
        AcuteRegressionAlert.objects.filter(state="open").count(),
    )


def test_every_endpoint_is_404_for_anyone_who_does_not_teach_the_class(
    client, wf_class, requests_on_the_class
):
    school = wf_class.school
    before = _writes()
    for caller in (school.colleague, school.outsider, _org_admin(school)):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {api_token_create(user=caller)}"}
        for endpoint, (method, path, body) in requests_on_the_class.items():
            url = "/api/workflow" + path.replace("{caller}", str(caller.pk))
            if method == "get":
                response = client.get(url, **headers)
            else:
                response = client.post(url, body, content_type="application/json", **headers)
            assert response.status_code == 404, (endpoint, caller.role, response.content)
            assert response.json()["error"] == "not_found"
    assert _writes() == before


def test_every_endpoint_is_401_without_a_token(client, wf_class, requests_on_the_class):
    before = _writes()
    for method, path, body in requests_on_the_class.values():
        url = "/api/workflow" + path.replace("{caller}", str(wf_class.teacher.pk))
        if method == "get":
            response = client.get(url)
        else:
            response = client.post(url, body, content_type="application/json")
        _assert_error(response, 401, "unauthorized")
    assert _writes() == before


def test_steps_is_401_without_a_token(client, db):
    _assert_error(client.get("/api/workflow/steps"), 401, "unauthorized")


def test_a_revoked_token_is_401(wf_client, wf_class):
    ApiToken.objects.update(revoked_at=timezone.now())
    _assert_error(wf_client("get", f"/recommendations/{wf_class.school_class.pk}"), 401, "unauthorized")


def test_a_co_teacher_of_the_class_is_in_scope(wf_client, wf_class):
    co_teacher = factories.TeacherAssignmentFactory(
        school_class=wf_class.school_class, role=TeacherAssignment.Role.CO_TEACHER
    ).teacher
    token = api_token_create(user=co_teacher)
    response = wf_client("get", f"/recommendations/{wf_class.school_class.pk}", token=token)
    assert response.status_code == 200
    assert len(response.json()["recommendations"]) == len(wf_class.active_students)


def test_steps_need_a_teacher(wf_client, wf_teacher):
    for role in (User.Role.LEARNER, User.Role.COMPLIANCE, User.Role.ORG_ADMIN):
        user = factories.UserFactory(organisation=wf_teacher.school.organisation, role=role)
        response = wf_client("get", "/steps", token=api_token_create(user=user))
        _assert_error(response, 403, "forbidden")
