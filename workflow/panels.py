"""What each of the workflow's six surfaces shows: its panel, built in a fixed number of queries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Prefetch

from classroom.inputs import MAX_ID
from classroom.models import Enrollment, SchoolClass, Student
from workflow import catalog, engines, selectors, services
from workflow.catalog import OverrideScope, Surface
from workflow.models import (
    AcuteRegressionAlert,
    Bundle,
    BundleAssignment,
    Cluster,
    ClusterMember,
    Recommendation,
    WorkflowDraft,
)
from workflow.words import (
    MODE_WORDS,
    MONITORING_WORDS,
    OBJECT_TYPE_WORDS,
    ROUTING_WORDS,
    acute_words,
    blocker_words,
    cluster_keys,
    code_label,
    data_incomplete_words,
    deviation_warning,
    evidence_words,
    guardrail_words,
    target_title,
    words,
)


@dataclass(frozen=True)
class Selection:
    """The cluster (bulk activation) or the one student (individual) the activation surfaces are about."""

    cluster_id: int | None = None
    student_id: int | None = None

    def state(self) -> dict[str, int | None]:
        return {"clusterId": self.cluster_id, "studentId": self.student_id}

    def query(self) -> dict[str, int]:
        if self.cluster_id:
            return {"cluster": self.cluster_id}
        return {"student": self.student_id} if self.student_id else {}


# Reads the panels share -------------------------------------------------------------------------


def recommendations_panel(
    school_class: SchoolClass, draft: WorkflowDraft | None, selection: Selection
) -> dict[str, Any]:
    """TAW_01..03: every student's recommendation in its bucket, each guardrail in words."""
    recommendations = services.recommendations_for(school_class)
    ids = [r.student_id for r in recommendations]
    alerts, active = open_alerts(ids), active_assignments(ids)
    buckets: dict[str, list[dict[str, Any]]] = {
        "acute": [],
        "ready": [],
        "non_bundle": [],
        "needs_more_data": [],
        "data_incomplete": [],
    }
    for rec in recommendations:
        row = recommendation_row(rec, alerts.get(rec.student_id), active.get(rec.student_id))
        buckets[row["bucket"]].append(row)
    return {
        "buckets": buckets,
        "computed_at": max((r.computed_at for r in recommendations), default=None),
        "context_flags": list(catalog.CONTEXT_FLAG_LABELS.items()),
    }


def recommendation_row(
    rec: Recommendation, alert: AcuteRegressionAlert | None, assignment: BundleAssignment | None
) -> dict[str, Any]:
    guardrails = guardrail_words(rec, alert)
    if alert:
        bucket = "acute"
    elif rec.do_not_decide_yet:
        bucket = "needs_more_data"
    elif rec.qa_exclusion:
        bucket = "data_incomplete"
    else:
        bucket = "ready" if rec.is_bundle else "non_bundle"
    routing = catalog.ROUTING_OUTCOMES.get(catalog.ObjectType(rec.object_type))
    return {
        "bucket": bucket,
        "student": rec.student,
        "object_type": rec.object_type,
        "object_words": OBJECT_TYPE_WORDS[catalog.ObjectType(rec.object_type)],
        "bundle": rec.bundle,
        "tier": rec.recommended_tier,
        "mode": MODE_WORDS.get(rec.delivery_mode, rec.delivery_mode),
        "anchor": words(rec.anchor_skill),
        "rationale": rec.rationale,
        "evidence": evidence_words(rec.evidence),
        "guardrails": guardrails,
        "routing": routing,
        "routing_words": ROUTING_WORDS.get(routing or "", ""),
        "alert": alert,
        "assignment": assignment,
    }


def smart_grouping_panel(
    school_class: SchoolClass, draft: WorkflowDraft | None, selection: Selection
) -> dict[str, Any]:
    """TAW_04/06: the clusters with their five keys, members, deferred members and those taken out."""
    clusters = class_clusters(school_class)
    ids = [m.student_id for c in clusters for m in c.members.all()]
    alerts = open_alerts(ids)
    evidence = dict(
        Recommendation.objects.filter(school_class=school_class, student_id__in=ids)
        .exclude(qa_exclusion="")
        .values_list("student_id", "evidence")
    )
    taken_out = {e.get("studentId"): e.get("overrideCode", "") for e in excluded_members(draft)}
    cards = []
    for cluster in clusters:
        members, out, deferred = [], [], []
        for student in (m.student for m in cluster.members.all()):
            if student.pk in evidence:
                deferred.append({"student": student, "why": data_incomplete_words(evidence[student.pk])})
            elif student.pk in taken_out:
                code = taken_out[student.pk]
                out.append({"student": student, "code": code, "label": code_label(code)})
            else:
                alert = alerts.get(student.pk)
                members.append({"student": student, "warning": acute_words(alert) if alert else ""})
        cards.append(
            {
                "cluster": cluster,
                "keys": cluster_keys(school_class, cluster),
                "members": members,
                "taken_out": out,
                "deferred": deferred,
                "selected": cluster.pk == selection.cluster_id,
            }
        )
    return {"clusters": cards, "grouping_codes": codes(OverrideScope.GROUPING)}


def scaffold_preview_panel(
    school_class: SchoolClass, draft: WorkflowDraft | None, selection: Selection
) -> dict[str, Any]:
    """TAW_05: for the chosen cluster, its members by scaffold tier and the weekly minutes per thread."""
    choices = [{"cluster": c, "keys": cluster_keys(school_class, c)} for c in class_clusters(school_class)]
    target = find_target(school_class, selection, draft) if selection.cluster_id else None
    if target is None or target.cluster is None:
        return {"choices": choices, "target": None}
    members, deferred, excluded = member_rows(target)
    counted = [m for m in members if not m["active"]]
    per_tier = Counter(m["tier"] for m in counted)
    breakdown = [
        {
            "tier": tier,
            "count": per_tier[tier],
            "percent": round(100 * per_tier[tier] / len(counted)) if counted else 0,
            "recommended": tier == target.cluster.scaffold_tier,
        }
        for tier in catalog.TIERS
    ]
    threads = bundle_threads(target.cluster.bundle)
    minutes = {
        tier: sum(engines.SCAFFOLD_MINUTES[tier][role] for _, role in threads) for tier in catalog.TIERS
    }
    rows = [
        {
            "thread": words(thread),
            "role": role,
            "cells": [
                {
                    "minutes": engines.SCAFFOLD_MINUTES[tier][role],
                    "current": tier == target.cluster.scaffold_tier,
                }
                for tier in catalog.TIERS
            ],
        }
        for thread, role in threads
    ]
    return {
        "choices": choices,
        "target": target,
        "keys": cluster_keys(school_class, target.cluster),
        "members": members,
        "counted": len(counted),
        "deferred": deferred,
        "excluded": excluded,
        "breakdown": breakdown,
        "tiers": catalog.TIERS,
        "threads": rows,
        "totals": [
            {"minutes": minutes[t], "current": t == target.cluster.scaffold_tier} for t in catalog.TIERS
        ],
        "group_minutes": sum(minutes[m["tier"]] for m in counted),
    }


def activation_review_panel(
    school_class: SchoolClass, draft: WorkflowDraft | None, selection: Selection
) -> dict[str, Any]:
    """TAW_07..09: per member the recommended tier and the teacher's choice; deferred and taken-out
    members apart, with why."""
    target = find_target(school_class, selection, draft)
    if target is None:
        return {"target": None}
    members, deferred, excluded = member_rows(target)
    return {
        "target": target,
        "title": target_title(school_class, target),
        "members": members,
        "deferred": deferred,
        "excluded": excluded,
        "activation_codes": codes(OverrideScope.ACTIVATION),
    }


def activation_confirmation_panel(
    school_class: SchoolClass, draft: WorkflowDraft | None, selection: Selection
) -> dict[str, Any]:
    """TAW_10: what the activation will write, and what will stop it."""
    target = find_target(school_class, selection, draft)
    if target is None:
        return {"target": None}
    members, deferred, excluded = member_rows(target)
    to_write = [m for m in members if not m["active"]]
    per_tier = Counter(m["tier"] for m in to_write)
    return {
        "target": target,
        "title": target_title(school_class, target),
        "routing": members[0] if members and not members[0]["bundle"] else None,
        "bundle": target.cluster.bundle if target.cluster else target.recs[0].bundle,
        "to_write": to_write,
        "tiers": ", ".join(f"{count} at {tier}" for tier, count in sorted(per_tier.items())),
        "already": [m for m in members if m["active"]],
        "deferred": deferred,
        "excluded": excluded,
        "blockers": [line for m in members for line in m["blockers"]],
        "warnings": [m["deviation_warning"] for m in to_write if m["deviation_warning"]],
    }


def plan_review_panel(
    school_class: SchoolClass, draft: WorkflowDraft | None, selection: Selection
) -> dict[str, Any]:
    """TAW_13..17: the active bundle assignments with their monitoring status, and the open alerts."""
    plans = [
        {
            **row,
            "status_title": MONITORING_WORDS[row["status"]][0],
            "status_detail": MONITORING_WORDS[row["status"]][1],
        }
        for row in selectors.monitoring(school_class)
    ]
    alerts = AcuteRegressionAlert.objects.filter(
        state=AcuteRegressionAlert.State.OPEN,
        student__enrollments__school_class=school_class,
        student__enrollments__status=Enrollment.Status.ACTIVE,
    ).select_related("student")
    return {
        "plans": plans,
        "alerts": list(alerts.order_by("student__last_name", "student__first_name")),
        "exit_codes": codes(OverrideScope.EXIT),
        "context_flags": list(catalog.CONTEXT_FLAG_LABELS.items()),
    }


PANELS: dict[Surface, Callable[[SchoolClass, WorkflowDraft | None, Selection], dict[str, Any]]] = {
    Surface.RECOMMENDATIONS: recommendations_panel,
    Surface.SMART_GROUPING: smart_grouping_panel,
    Surface.SCAFFOLD_PREVIEW: scaffold_preview_panel,
    Surface.ACTIVATION_REVIEW: activation_review_panel,
    Surface.ACTIVATION_CONFIRMATION: activation_confirmation_panel,
    Surface.PLAN_REVIEW: plan_review_panel,
}


@dataclass
class Target:
    """What an activation is about: a cluster's members, or one student, with what bears on them."""

    cluster: Cluster | None
    recs: list[Recommendation]
    alerts: dict[int, AcuteRegressionAlert]
    active: dict[int, BundleAssignment]
    taken_out: dict[int, str]
    choices: dict[int, dict[str, Any]]


def find_target(
    school_class: SchoolClass, selection: Selection, draft: WorkflowDraft | None
) -> Target | None:
    recs = Recommendation.objects.filter(school_class=school_class).select_related("student", "bundle")
    cluster = None
    if selection.cluster_id:
        cluster = (
            Cluster.objects.filter(pk=selection.cluster_id, school_class=school_class)
            .select_related("bundle")
            .first()
        )
        if cluster is None:
            return None
        recs = recs.filter(student__in=ClusterMember.objects.filter(cluster=cluster).values("student_id"))
    elif selection.student_id:
        recs = recs.filter(student_id=selection.student_id)
    else:
        return None
    found = list(recs)
    if not found:
        return None
    ids = [r.student_id for r in found]
    taken_out = (
        {e.get("studentId"): e.get("overrideCode", "") for e in excluded_members(draft)} if cluster else {}
    )
    choices = {c["studentId"]: c for c in draft_choices(draft, selection)}
    return Target(cluster, found, open_alerts(ids), active_assignments(ids), taken_out, choices)


def member_rows(
    target: Target,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The target's students as members to activate, deferred (QA_003) and taken out (TAW_06)."""
    members, deferred, excluded = [], [], []
    for rec in target.recs:
        student = rec.student
        if student.pk in target.taken_out:
            code = target.taken_out[student.pk]
            excluded.append({"student": student, "code": code, "label": code_label(code)})
            continue
        if rec.qa_exclusion and rec.is_bundle:
            deferred.append({"student": student, "why": data_incomplete_words(rec.evidence)})
            continue
        choice = target.choices.get(student.pk, {})
        tier = choice.get("scaffoldTier") or rec.recommended_tier
        code = choice.get("overrideCode", "")
        members.append(
            {
                "student": student,
                "rec": rec,
                "bundle": rec.bundle,
                "object_words": OBJECT_TYPE_WORDS[catalog.ObjectType(rec.object_type)],
                "routing": catalog.ROUTING_OUTCOMES.get(catalog.ObjectType(rec.object_type)),
                "routing_words": ROUTING_WORDS.get(
                    catalog.ROUTING_OUTCOMES.get(catalog.ObjectType(rec.object_type), ""), ""
                ),
                "recommended": rec.recommended_tier,
                "tier": tier,
                "code": code,
                "code_label": code_label(code),
                "confirmed": bool(choice.get("confirmed")),
                "options": [
                    {"tier": t, "recommended": t == rec.recommended_tier, "selected": t == tier}
                    for t in catalog.TIERS
                ],
                "active": target.active.get(student.pk),
                "blockers": blocker_words(rec, target.alerts.get(student.pk)),
                "deviation_warning": deviation_warning(student, rec, tier, code, choice),
            }
        )
    return members, deferred, excluded


def class_clusters(school_class: SchoolClass) -> list[Cluster]:
    members = ClusterMember.objects.select_related("student").order_by(
        "student__last_name", "student__first_name"
    )
    return list(
        Cluster.objects.filter(school_class=school_class)
        .select_related("bundle")
        .prefetch_related(Prefetch("members", queryset=members))
        .order_by("bundle__title", "scaffold_tier")
    )


def cluster_member(school_class: SchoolClass, student_id: int | None) -> Student | None:
    member = (
        ClusterMember.objects.filter(cluster__school_class=school_class, student_id=student_id)
        .select_related("student")
        .first()
    )
    return member.student if member else None


def open_alerts(student_ids: list[int]) -> dict[int, AcuteRegressionAlert]:
    alerts = AcuteRegressionAlert.objects.filter(
        student_id__in=student_ids, state=AcuteRegressionAlert.State.OPEN
    ).select_related("student")
    return {a.student_id: a for a in alerts}


def active_assignments(student_ids: list[int]) -> dict[int, BundleAssignment]:
    assignments = BundleAssignment.objects.filter(
        student_id__in=student_ids, status=BundleAssignment.Status.ACTIVE
    ).select_related("bundle")
    return {a.student_id: a for a in assignments}


def bundle_threads(bundle: Bundle) -> list[tuple[str, str]]:
    """The bundle's threads with their roles, as the cluster writer lays out its scaffold rows."""
    threads = [(bundle.anchor_skill, "anchor"), *((t, "supporting") for t in bundle.supporting_threads)]
    return [*threads, (bundle.asset_bridge, "bridge")] if bundle.asset_bridge else threads


def codes(scope: OverrideScope) -> list[tuple[str, str]]:
    return [(o.code, o.label) for o in catalog.OVERRIDE_CODES if o.scope == scope]


def excluded_members(draft: WorkflowDraft | None) -> list[dict[str, Any]]:
    excluded = (draft.state if draft else {}).get("excluded", [])
    return [item for item in excluded if isinstance(item, dict)] if isinstance(excluded, list) else []


def draft_choices(draft: WorkflowDraft | None, selection: Selection) -> list[dict[str, Any]]:
    """The tiers chosen on the Activation Review, if they were chosen for this same group or student."""
    state = draft.state if draft else {}
    if (
        draft is None
        or Selection(as_int(state.get("clusterId")), as_int(state.get("studentId"))) != selection
    ):
        return []
    return [c for c in draft.state.get("members", []) if isinstance(c, dict) and "studentId" in c]


def as_int(value: Any) -> int | None:
    """An id kept in a draft's state, or None for anything no row could have."""
    try:
        number = int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and 1 <= number <= MAX_ID else None
