"""Reads of the workflow for its API and its six surfaces, in a fixed number of queries."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.utils import timezone

from classroom.models import DailyPerformance, SchoolClass
from workflow import catalog, engines, services
from workflow.models import AcuteRegressionAlert, BundleAssignment, Cluster, Recommendation, WorkflowDraft


def guardrail_of(rec: Recommendation, open_alert: bool) -> str | None:
    if rec.do_not_decide_yet:
        return catalog.Guardrail.INSUFFICIENT_EVIDENCE
    if open_alert:
        return catalog.Guardrail.ACUTE_REGRESSION
    if rec.qa_exclusion:
        return catalog.Guardrail.DATA_INCOMPLETE
    return None


def recommendations_json(school_class: SchoolClass) -> dict[str, Any]:
    recs = services.recommendations_for(school_class)
    student_ids = [r.student_id for r in recs]
    alerts = {
        a.student_id: a
        for a in AcuteRegressionAlert.objects.filter(
            student_id__in=student_ids, state=AcuteRegressionAlert.State.OPEN
        )
    }
    active = {
        a.student_id: a
        for a in BundleAssignment.objects.filter(
            student_id__in=student_ids, status=BundleAssignment.Status.ACTIVE
        ).select_related("bundle")
    }
    clusters = (
        Cluster.objects.filter(school_class=school_class).select_related("bundle").prefetch_related("members")
    )
    return {
        "classId": school_class.pk,
        "computedAt": max((r.computed_at for r in recs), default=None),
        "recommendations": [
            {
                "studentId": r.student_id,
                "student": r.student.full_name,
                "objectType": r.object_type,
                "bundleId": r.bundle.code if r.bundle else None,
                "recommendedTier": r.recommended_tier or None,
                "deliveryMode": r.delivery_mode or None,
                "anchorSkill": r.anchor_skill or None,
                "doNotDecideYet": r.do_not_decide_yet,
                "qaExclusion": r.qa_exclusion or None,
                "guardrail": guardrail_of(r, r.student_id in alerts),
                "rationale": r.rationale,
                "evidence": r.evidence,
                "activeAssignmentId": active[r.student_id].pk if r.student_id in active else None,
            }
            for r in recs
        ],
        "needsMoreData": [r.student_id for r in recs if r.do_not_decide_yet],
        "clusters": [
            {
                "id": c.pk,
                "identity": c.identity,
                "bundleId": c.bundle.code,
                "anchorSkill": c.anchor_skill,
                "scaffoldTier": c.scaffold_tier,
                "deliveryMode": c.delivery_mode,
                "members": [m.student_id for m in c.members.all() if not m.excluded_code],
                "deferred": [
                    {"studentId": m.student_id, "qa": m.excluded_code}
                    for m in c.members.all()
                    if m.excluded_code
                ],
            }
            for c in clusters
        ],
        "acuteAlerts": [
            {"id": a.pk, "studentId": a.student_id, "summary": a.summary, "openedAt": a.opened_at}
            for a in alerts.values()
        ],
    }


def draft_json(draft: WorkflowDraft | None, school_class: SchoolClass) -> dict[str, Any]:
    step = draft.step if draft else catalog.FIRST_STEP
    return {
        "classId": school_class.pk,
        "teacherId": draft.teacher_id if draft else None,
        "step": step,
        "stage": catalog.STEP_STAGE[step],
        "surface": catalog.STEP_BY_ID[step].surface,
        "state": draft.state if draft else {},
        "updatedAt": draft.updated_at if draft else None,
        "expiresAt": draft.expires_at if draft else None,
        "resumed": draft is not None,
    }


def monitoring(school_class: SchoolClass) -> list[dict[str, Any]]:
    """Plan Review & Exit: the active assignments with their monitoring status (3 queries)."""
    assignments = list(
        BundleAssignment.objects.filter(school_class=school_class, status=BundleAssignment.Status.ACTIVE)
        .select_related("student", "bundle")
        .order_by("student__last_name")
    )
    if not assignments:
        return []
    since = min(timezone.localdate(a.activated_at) for a in assignments)
    days: dict[int, list[engines.Day]] = defaultdict(list)
    for student_id, day, mastery, confidence in (
        DailyPerformance.objects.filter(student_id__in=[a.student_id for a in assignments], date__gte=since)
        .order_by("date")
        .values_list("student_id", "date", "mastery", "confidence")
    ):
        days[student_id].append(engines.Day(day, mastery, confidence))
    return [
        {
            "assignment": a,
            "status": engines.monitoring_status(days[a.student_id], since=timezone.localdate(a.activated_at)),
        }
        for a in assignments
    ]
