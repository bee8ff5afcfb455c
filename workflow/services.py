"""Every write of the Teacher Activation Workflow: one function per step that writes, each under the
seed's locks, each recording its teacher action, its assignment history where there is one, and an
audit event carrying its workflow step.

Locks: the bulk and individual activation paths take one advisory lock per (org, class); the
single-writer paths (review, exit, plan status) one per (org, bundle assignment), or per (org,
student) for an alert with no assignment; distinct keys never wait for each other.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Max
from django.http import Http404
from django.utils import timezone

from audit.services import record
from classroom.inputs import DRAFT_STATE_BYTES, InputInvalid
from classroom.locks import advisory_xact_lock, advisory_xact_locks
from classroom.models import DailyPerformance, Enrollment, SchoolClass, Student, User
from workflow import catalog, engines
from workflow.models import (
    AcuteRegressionAlert,
    AssignmentHistory,
    Bundle,
    BundleAssignment,
    Cluster,
    ClusterMember,
    ContextFlagLog,
    Recommendation,
    ScaffoldRow,
    TeacherActionLog,
    TeacherReviewRequest,
    WorkflowDraft,
)

SYSTEM_ENGINES = "system:workflow"
RECOMMENDATIONS_FRESH_FOR = timedelta(hours=6)


class WorkflowError(Exception):
    """A refusal the API answers as `{"error": code, "detail": ..., **extra}` with `status`."""

    def __init__(self, code: str, detail: str, *, status: int = 400, **extra: Any) -> None:
        super().__init__(detail)
        self.code, self.detail, self.status, self.extra = code, detail, status, extra


def require_teacher(user: User) -> None:
    """The workflow is for teachers: every route requires one."""
    if user.role != User.Role.TEACHER and not user.is_superuser:
        raise PermissionDenied("the activation workflow is for class teachers")


def class_for_teacher(user: User, class_id: int) -> SchoolClass:
    """ClassTeacher scope: the class, if `user` teaches it; anyone else gets a 404."""
    school_class = (
        SchoolClass.objects.filter(pk=class_id, is_active=True, teacher_assignments__teacher=user)
        .select_related("organisation")
        .first()
    )
    if school_class is None:
        raise Http404("no such class among the classes you teach")
    return school_class


# Engines: recommendations, clusters, acute regressions ------------------------------------------


def _days_by_student(student_ids: list[int], today: Any) -> dict[int, list[engines.Day]]:
    days: dict[int, list[engines.Day]] = defaultdict(list)
    rows = DailyPerformance.objects.filter(
        student_id__in=student_ids, date__gt=today - timedelta(days=engines.WINDOW_DAYS), date__lte=today
    ).order_by("student_id", "date")
    for student_id, day, mastery, confidence in rows.values_list(
        "student_id", "date", "mastery", "confidence"
    ):
        days[student_id].append(engines.Day(day, mastery, confidence))
    return days


@transaction.atomic
def recommendations_refresh(
    *, school_class: SchoolClass, now: datetime | None = None, by: User | None = None
) -> int:
    """Recompute the class's recommendations, clusters and acute-regression alerts from the mirrors
    (`by`: the teacher who asked, else the schedule). Idempotent; an open acute alert stays open
    until a teacher resolves it."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    advisory_xact_lock(f"workflow:class:{school_class.organisation_id}:{school_class.pk}")
    students = list(
        Student.objects.filter(
            enrollments__school_class=school_class, enrollments__status=Enrollment.Status.ACTIVE
        ).order_by("pk")
    )
    days = _days_by_student([s.pk for s in students], today)
    bundles = {
        b.object_type: b
        for b in Bundle.objects.filter(
            organisation_id=school_class.organisation_id, subject=school_class.subject
        )
    }
    Recommendation.objects.filter(school_class=school_class).exclude(student__in=students).delete()
    recommendations = []
    for student in students:
        found = engines.profile(days[student.pk], today=today)
        bundle = bundles.get(found.bundle_kind) if found.bundle_kind else None
        object_type = (
            found.object_type if bundle or not found.bundle_kind else catalog.ObjectType.MONITOR_ONLY
        )
        recommendations.append(
            Recommendation(
                school_class=school_class,
                student=student,
                organisation_id=school_class.organisation_id,
                object_type=object_type,
                bundle=bundle,
                recommended_tier=found.tier if bundle else "",
                delivery_mode=found.delivery_mode if bundle else "",
                anchor_skill=bundle.anchor_skill if bundle else "",
                do_not_decide_yet=found.do_not_decide_yet,
                qa_exclusion=found.qa_exclusion,
                rationale=found.rationale
                if bundle or not found.bundle_kind
                else f"{found.rationale}; no {found.bundle_kind} bundle for {school_class.subject}",
                evidence=found.evidence,
                computed_at=now,
            )
        )
    # One upsert for the class, not a SELECT and an UPDATE per student.
    Recommendation.objects.bulk_create(
        recommendations,
        update_conflicts=True,
        unique_fields=["school_class", "student"],
        update_fields=[
            "object_type",
            "bundle",
            "recommended_tier",
            "delivery_mode",
            "anchor_skill",
            "do_not_decide_yet",
            "qa_exclusion",
            "rationale",
            "evidence",
            "computed_at",
        ],
    )
    _clusters(school_class, recommendations, now)
    opened = _acute_alerts(school_class, students, days, today, now)
    record(
        verb="workflow.recommendations_refreshed",
        actor=by,
        actor_name="" if by else SYSTEM_ENGINES,
        target=school_class,
        why=f"{len(recommendations)} recommendations, {opened} acute alerts opened",
        details={"workflow_step": "TAW_01", "students": len(recommendations)},
    )
    return len(recommendations)


def _clusters(school_class: SchoolClass, recommendations: list[Recommendation], now: datetime) -> None:
    """Bundle recommendations with enough evidence, grouped by the five keys. QA_003 students stay
    listed with their exclusion, so the preview can say who is deferred and why."""
    groups: dict[str, list[Recommendation]] = defaultdict(list)
    for rec in recommendations:
        if rec.bundle_id and not rec.do_not_decide_yet:
            identity = engines.cluster_identity(
                school_class.pk, rec.bundle.code, rec.anchor_skill, rec.recommended_tier, rec.delivery_mode
            )
            groups[identity].append(rec)
    Cluster.objects.filter(school_class=school_class).exclude(identity__in=groups).delete()
    for identity, members in groups.items():
        first = members[0]
        cluster, _ = Cluster.objects.update_or_create(
            school_class=school_class,
            identity=identity,
            defaults={
                "organisation_id": school_class.organisation_id,
                "bundle": first.bundle,
                "anchor_skill": first.anchor_skill,
                "scaffold_tier": first.recommended_tier,
                "delivery_mode": first.delivery_mode,
                "computed_at": now,
            },
        )
        ClusterMember.objects.filter(cluster=cluster).delete()
        ClusterMember.objects.bulk_create(
            ClusterMember(cluster=cluster, student_id=rec.student_id, excluded_code=rec.qa_exclusion)
            for rec in members
        )


def _acute_alerts(
    school_class: SchoolClass, students: list[Student], days: dict, today: Any, now: datetime
) -> int:
    open_ids = set(
        AcuteRegressionAlert.objects.filter(
            student__in=students, state=AcuteRegressionAlert.State.OPEN
        ).values_list("student_id", flat=True)
    )
    # A teacher's resolution stands until there is a measurement newer than it.
    resolved = dict(
        AcuteRegressionAlert.objects.filter(student__in=students)
        .exclude(state=AcuteRegressionAlert.State.OPEN)
        .values_list("student_id")
        .annotate(last=Max("resolved_at"))
    )
    opened = 0
    for student in students:
        metrics = engines.acute_regression(days[student.pk], today=today)
        if metrics is None or student.pk in open_ids:
            continue
        last_resolved = resolved.get(student.pk)
        if last_resolved and timezone.localdate(last_resolved) >= days[student.pk][-1].date:
            continue
        alert = AcuteRegressionAlert.objects.create(
            organisation_id=school_class.organisation_id,
            student=student,
            opened_at=now,
            metrics=metrics,
            summary=f"mastery fell {abs(metrics['drop']):.0%} in a week "
            f"({metrics['mastery_week_before']:.0%} → {metrics['mastery_last3']:.0%})",
        )
        record(
            verb="workflow.acute_alert_opened",
            actor_name=SYSTEM_ENGINES,
            target=alert,
            class_id=school_class.pk,
            why=alert.summary,
            details={"workflow_step": "TAW_14", "metrics": metrics},
        )
        opened += 1
    return opened


def recommendations_for(school_class: SchoolClass, *, now: datetime | None = None) -> list[Recommendation]:
    """The Recommendations Panel feed, refreshed first when missing or older than six hours."""
    now = now or timezone.now()
    latest = Recommendation.objects.filter(school_class=school_class).order_by("-computed_at").first()
    if latest is None or latest.computed_at < now - RECOMMENDATIONS_FRESH_FOR:
        recommendations_refresh(school_class=school_class, now=now)
    return list(
        Recommendation.objects.filter(school_class=school_class)
        .select_related("student", "bundle")
        .order_by("student__last_name", "student__first_name")
    )


# The draft ----------------------------------------------------------------------------------------


def draft_get(
    *, teacher: User, school_class: SchoolClass, now: datetime | None = None
) -> WorkflowDraft | None:
    """The teacher's draft for the class, unless its seven days since the last write are over."""
    now = now or timezone.now()
    return WorkflowDraft.objects.filter(
        organisation_id=school_class.organisation_id,
        teacher=teacher,
        school_class=school_class,
        expires_at__gt=now,
    ).first()


@transaction.atomic
def draft_save(
    *, teacher: User, school_class: SchoolClass, step: str, state: dict[str, Any], now: datetime | None = None
) -> WorkflowDraft:
    """Upsert the draft (last write wins) at `step`, which must be reachable from the draft's
    current step: an illegal transition is a 409 naming the current step."""
    now = now or timezone.now()
    if step not in catalog.STEP_BY_ID:
        raise WorkflowError("UNKNOWN_STEP", f"step must be one of TAW_01..TAW_17; got {step[:20]!r}")
    size = len(json.dumps(state).encode())
    if size > DRAFT_STATE_BYTES:
        raise InputInvalid("state", f"is {size:,} bytes of JSON; the limit is {DRAFT_STATE_BYTES:,}")
    draft = (
        WorkflowDraft.objects.select_for_update()
        .filter(organisation_id=school_class.organisation_id, teacher=teacher, school_class=school_class)
        .first()
    )
    current = draft.step if draft and draft.expires_at > now else catalog.FIRST_STEP
    if not catalog.can_move(current, step):
        raise WorkflowError(
            "ILLEGAL_TRANSITION",
            f"cannot go from {current} to {step}; next: {', '.join(catalog.STEP_BY_ID[current].next)}",
            status=409,
            currentStep=current,
        )
    for excluded in _exclusions(state):
        check_override(excluded.get("overrideCode", ""), catalog.OverrideScope.GROUPING)
    expires = now + timedelta(days=catalog.DRAFT_TTL_DAYS)
    draft, _ = WorkflowDraft.objects.update_or_create(
        organisation_id=school_class.organisation_id,
        teacher=teacher,
        school_class=school_class,
        defaults={"step": step, "state": state, "updated_at": now, "expires_at": expires},
    )
    if step != current:
        _action(teacher, school_class, None, "step", step, details={"from": current, "to": step})
    record(
        verb="workflow.step" if step != current else "workflow.draft_saved",
        actor=teacher,
        target=school_class,
        why=f"{current} → {step}" if step != current else f"draft saved at {step}",
        details={"workflow_step": step, "from": current},
    )
    return draft


def _exclusions(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Members the teacher took out of a cluster (TAW_06), as the draft holds them:
    `{"excluded": [{"studentId": 7, "overrideCode": "OVR_GROUP_EXCLUDE"}]}`."""
    excluded = state.get("excluded", [])
    if not isinstance(excluded, list) or not all(isinstance(item, dict) for item in excluded):
        raise WorkflowError("BAD_STATE", 'state.excluded must be a list of {"studentId", "overrideCode"}')
    return excluded


def _move_draft(teacher: User, school_class: SchoolClass, step: str, now: datetime) -> None:
    """After a commit, the teacher's draft (if any) continues from `step`."""
    WorkflowDraft.objects.filter(
        organisation_id=school_class.organisation_id, teacher=teacher, school_class=school_class
    ).update(step=step, updated_at=now, expires_at=now + timedelta(days=catalog.DRAFT_TTL_DAYS))


def _action(
    teacher: User,
    school_class: SchoolClass,
    student_id: int | None,
    action_type: str,
    step: str,
    *,
    code: str = "",
    details: dict[str, Any] | None = None,
) -> TeacherActionLog:
    return TeacherActionLog.objects.create(
        organisation_id=school_class.organisation_id,
        teacher=teacher,
        school_class=school_class,
        student_id=student_id,
        action_type=action_type,
        workflow_step=step,
        code=code,
        details=details or {},
        at=timezone.now(),
    )


# Activation ----------------------------------------------------------------------------------------


@dataclass
class MemberChoice:
    student_id: int
    scaffold_tier: str = ""
    override_code: str = ""


@dataclass
class Activation:
    kind: str  # "activated" or "routed"
    bundle_code: str | None = None
    activated: list[dict[str, Any]] = field(default_factory=list)
    deferred: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    already_active: list[int] = field(default_factory=list)
    routing: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "bundleId": self.bundle_code,
            "activated": self.activated,
            "deferred": self.deferred,
            "excluded": self.excluded,
            "alreadyActive": self.already_active,
            "routing": self.routing,
        }


def check_override(code: str, scope: catalog.OverrideScope) -> None:
    """Codes come from the closed catalogue only, and each only where its scope applies."""
    override = catalog.OVERRIDE_BY_CODE.get(code)
    if override is None:
        raise WorkflowError(
            "INVALID_OVERRIDE_CODE",
            f"overrideCode must be one of the catalogue's codes ({', '.join(catalog.OVERRIDE_BY_CODE)}), "
            "never free text",
        )
    if override.scope != scope:
        raise WorkflowError(
            "SCOPE_MISMATCH", f"{code} is a {override.scope} code; this path takes {scope} codes only"
        )


@transaction.atomic
def activate(
    *,
    teacher: User,
    school_class: SchoolClass,
    cluster_id: int | None = None,
    student_ids: list[int] | None = None,
    members: list[MemberChoice] | None = None,
    confirmed: bool = False,
) -> Activation:
    """Commit an activation: a cluster in bulk (TAW_11) or one student (TAW_12). A bundle
    recommendation becomes a bundle assignment with its scaffold rows (kind "activated"); a
    non-bundle one a routing record in the teacher action log (kind "routed"). Guardrails first:
    thin evidence or an unresolved acute regression refuse the whole request (409); QA_003
    students are deferred and the rest proceed. Ten requests at once make one assignment set:
    they queue on the class's lock and later ones find the members already active."""
    now = timezone.now()
    advisory_xact_lock(f"workflow:class:{school_class.organisation_id}:{school_class.pk}")
    step, recommendations, cluster = _targets(school_class, cluster_id, student_ids)
    # A student enrolled in two classes: their activations wait for each other here, so the
    # "already active" check below sees the other's commit (keys sorted: no deadlock).
    advisory_xact_locks(f"workflow:student:{rec.student_id}" for rec in recommendations)
    choices = {m.student_id: m for m in members or []}
    unknown = set(choices) - {r.student_id for r in recommendations}
    if unknown:
        raise WorkflowError("NOT_A_MEMBER", f"students {sorted(unknown)} are not part of this activation")
    draft = draft_get(teacher=teacher, school_class=school_class, now=now)
    taken_out = {
        item.get("studentId"): item.get("overrideCode", "")
        for item in (_exclusions(draft.state) if draft and cluster else [])
    }
    active = set(
        BundleAssignment.objects.filter(
            student_id__in=[r.student_id for r in recommendations], status=BundleAssignment.Status.ACTIVE
        ).values_list("student_id", flat=True)
    )
    if step == "TAW_12" and not recommendations[0].is_bundle:
        # A routing is a new decision whatever the student already has: the guardrails apply.
        _guardrails(recommendations)
        return _route(teacher, school_class, recommendations[0], now)
    # The guardrails judge the members written now: not those taken out, deferred (QA_003) or
    # already active, which this activation leaves as they are.
    _guardrails(
        [
            r
            for r in recommendations
            if r.student_id not in taken_out and not r.qa_exclusion and r.student_id not in active
        ]
    )
    result = Activation(kind="activated", bundle_code=recommendations[0].bundle.code)
    planned = []
    for rec in recommendations:
        if rec.student_id in taken_out:
            result.excluded.append({"studentId": rec.student_id, "overrideCode": taken_out[rec.student_id]})
        elif rec.qa_exclusion:
            result.deferred.append(
                {"studentId": rec.student_id, "reason": "DATA_INCOMPLETE", "qa": rec.qa_exclusion}
            )
        elif rec.student_id in active:
            result.already_active.append(rec.student_id)
        else:
            choice = choices.get(rec.student_id, MemberChoice(rec.student_id))
            planned.append((rec, _tier(rec, choice, confirmed), choice.override_code))
    for assignment in _assign_all(teacher, school_class, planned, cluster, step, now):
        result.activated.append(
            {
                "studentId": assignment.student_id,
                "assignmentId": assignment.pk,
                "scaffoldTier": assignment.scaffold_tier,
            }
        )
    for deferred in result.deferred:
        _action(teacher, school_class, deferred["studentId"], "deferred", step, code=catalog.QA_003)
    for excluded in result.excluded:
        _action(teacher, school_class, excluded["studentId"], "excluded", step, code=excluded["overrideCode"])
    _move_draft(teacher, school_class, "TAW_13", now)
    record(
        verb="workflow.activated",
        actor=teacher,
        target=school_class,
        why=f"{len(result.activated)} activated on {result.bundle_code}, {len(result.deferred)} deferred",
        details={"workflow_step": step, **result.as_json()},
    )
    return result


def _targets(
    school_class: SchoolClass, cluster_id: int | None, student_ids: list[int] | None
) -> tuple[str, list[Recommendation], Cluster | None]:
    recommendations = Recommendation.objects.filter(school_class=school_class).select_related(
        "bundle", "student"
    )
    if (cluster_id is None) == (not student_ids):
        raise WorkflowError(
            "BAD_TARGET", "give either clusterId (bulk) or studentIds with one student (individual)"
        )
    if cluster_id is not None:
        cluster = Cluster.objects.filter(pk=cluster_id, school_class=school_class).first()
        if cluster is None:
            raise WorkflowError("NOT_FOUND", f"no cluster {cluster_id} in this class", status=404)
        members = ClusterMember.objects.filter(cluster=cluster).values_list("student_id", flat=True)
        return (
            "TAW_11",
            list(recommendations.filter(student_id__in=list(members)).order_by("student_id")),
            cluster,
        )
    if len(student_ids or []) != 1:
        raise WorkflowError("BAD_TARGET", "individual activation takes exactly one student in studentIds")
    found = list(recommendations.filter(student_id=student_ids[0]))
    if not found:
        raise WorkflowError(
            "NOT_FOUND", f"student {student_ids[0]} has no recommendation in this class", status=404
        )
    return "TAW_12", found, None


def _guardrails(recommendations: list[Recommendation]) -> None:
    thin = [r.student_id for r in recommendations if r.do_not_decide_yet]
    if thin:
        raise WorkflowError(
            catalog.Guardrail.INSUFFICIENT_EVIDENCE,
            "not enough evidence to decide yet for these students; they are in the “needs more data” "
            "bucket and cannot be activated",
            status=409,
            studentIds=thin,
            bucket="needs_more_data",
        )
    acute = list(
        AcuteRegressionAlert.objects.filter(
            student_id__in=[r.student_id for r in recommendations], state=AcuteRegressionAlert.State.OPEN
        ).values_list("student_id", "pk")
    )
    if acute:
        raise WorkflowError(
            catalog.Guardrail.ACUTE_REGRESSION,
            "resolve the open acute-regression alerts first (POST /api/workflow/review: dismiss with a "
            "context flag, or escalate for a tier review)",
            status=409,
            studentIds=[student_id for student_id, _ in acute],
            alertIds=[pk for _, pk in acute],
        )


def _tier(rec: Recommendation, choice: MemberChoice, confirmed: bool) -> str:
    tier = choice.scaffold_tier or rec.recommended_tier
    if tier not in catalog.TIERS:
        raise WorkflowError("INVALID_TIER", f"scaffoldTier must be one of {', '.join(catalog.TIERS)}")
    if tier == rec.recommended_tier:
        if choice.override_code:
            check_override(choice.override_code, catalog.OverrideScope.ACTIVATION)
        return tier
    if not choice.override_code:
        raise WorkflowError(
            "OVERRIDE_CODE_REQUIRED",
            f"student {rec.student_id}: {tier} differs from the recommended {rec.recommended_tier}; "
            "say why with an activation override code",
        )
    check_override(choice.override_code, catalog.OverrideScope.ACTIVATION)
    if not confirmed:
        raise WorkflowError(
            "CONFIRMATION_REQUIRED",
            f"student {rec.student_id}: {tier} differs from the recommended {rec.recommended_tier}; "
            'send "confirmed": true to apply it',
            status=409,
            studentId=rec.student_id,
        )
    return tier


def _assign_all(
    teacher: User,
    school_class: SchoolClass,
    planned: list[tuple[Recommendation, str, str]],
    cluster: Cluster | None,
    step: str,
    now: datetime,
) -> list[BundleAssignment]:
    """The cluster writer's write: per member an assignment, its scaffold rows, its first history
    row and the teacher's action, each table in one statement whatever the cluster's size."""
    assignments = BundleAssignment.objects.bulk_create(
        BundleAssignment(
            organisation_id=school_class.organisation_id,
            school_class=school_class,
            student_id=rec.student_id,
            bundle=rec.bundle,
            cluster=cluster,
            scaffold_tier=tier,
            recommended_tier=rec.recommended_tier,
            activated_by=teacher,
            activated_at=now,
        )
        for rec, tier, _ in planned
    )
    rows, history, actions = [], [], []
    for assignment, (rec, tier, code) in zip(assignments, planned, strict=True):
        bundle, minutes = rec.bundle, engines.SCAFFOLD_MINUTES[tier]
        threads = [(bundle.anchor_skill, "anchor"), *((t, "supporting") for t in bundle.supporting_threads)]
        if bundle.asset_bridge:
            threads.append((bundle.asset_bridge, "bridge"))
        rows += [
            ScaffoldRow(
                assignment=assignment, thread=thread, role=role, level=tier, weekly_minutes=minutes[role]
            )
            for thread, role in threads
        ]
        history.append(
            AssignmentHistory(
                assignment=assignment,
                event="activated",
                triggering_workflow_step=step,
                override_code=code,
                actor=teacher,
                at=now,
                details={"scaffold_tier": tier, "recommended_tier": rec.recommended_tier},
            )
        )
        actions.append(
            TeacherActionLog(
                organisation_id=school_class.organisation_id,
                teacher=teacher,
                school_class=school_class,
                student_id=rec.student_id,
                action_type="activate",
                workflow_step=step,
                code=code,
                details={"assignment": assignment.pk},
                at=now,
            )
        )
    ScaffoldRow.objects.bulk_create(rows)
    AssignmentHistory.objects.bulk_create(history)
    TeacherActionLog.objects.bulk_create(actions)
    return assignments


def _route(teacher: User, school_class: SchoolClass, rec: Recommendation, now: datetime) -> Activation:
    outcome = catalog.ROUTING_OUTCOMES[catalog.ObjectType(rec.object_type)]
    routing = {"studentId": rec.student_id, "objectType": rec.object_type, "routingOutcome": outcome}
    _action(
        teacher, school_class, rec.student_id, "individual_routing", "TAW_12", code=outcome, details=routing
    )
    _move_draft(teacher, school_class, "TAW_13", now)
    record(
        verb="workflow.routed",
        actor=teacher,
        target=school_class,
        student_id=rec.student_id,
        why=f"{rec.object_type}: {outcome}",
        details={"workflow_step": "TAW_12", **routing},
    )
    return Activation(kind="routed", routing=routing)


# Review, plan status and exit ----------------------------------------------------------------------


def _lock_for_student(organisation_id: int, student_id: int) -> BundleAssignment | None:
    """The single-writer lock: per (org, bundle assignment), or per (org, student) without one."""
    assignment = BundleAssignment.objects.filter(
        student_id=student_id, status=BundleAssignment.Status.ACTIVE
    ).first()
    key = f"assignment:{assignment.pk}" if assignment else f"student:{student_id}"
    advisory_xact_lock(f"workflow:{organisation_id}:{key}")
    return assignment


@transaction.atomic
def review(
    *, teacher: User, school_class: SchoolClass, alert_id: int, action: str, context_flag: str = ""
) -> AcuteRegressionAlert:
    """TAW_15: resolve an acute-regression alert. Dismiss needs a context flag (kept in the context
    flag log only); escalate opens a tier-review nomination. The plan status is never changed."""
    alert = AcuteRegressionAlert.objects.filter(
        pk=alert_id,
        student__enrollments__school_class=school_class,
        student__enrollments__status=Enrollment.Status.ACTIVE,
    ).first()
    if alert is None:
        raise WorkflowError("NOT_FOUND", f"no acute-regression alert {alert_id} in this class", status=404)
    if action not in ("dismiss", "escalate"):
        raise WorkflowError("INVALID_ACTION", "action must be dismiss or escalate")
    if (action == "dismiss" or context_flag) and context_flag not in catalog.CONTEXT_FLAGS:
        raise WorkflowError(
            "INVALID_CONTEXT_FLAG",
            f"contextFlag must be one of {', '.join(catalog.CONTEXT_FLAGS)} (and dismissing needs one); "
            "never free text",
        )
    _lock_for_student(school_class.organisation_id, alert.student_id)
    alert = AcuteRegressionAlert.objects.select_for_update().get(pk=alert.pk)
    if alert.state != AcuteRegressionAlert.State.OPEN:
        raise WorkflowError("ALREADY_RESOLVED", f"this alert was already {alert.state}", status=409)
    now = timezone.now()
    alert.state = (
        AcuteRegressionAlert.State.DISMISSED if action == "dismiss" else AcuteRegressionAlert.State.ESCALATED
    )
    alert.resolved_by, alert.resolved_at = teacher, now
    alert.save(update_fields=["state", "resolved_by", "resolved_at"])
    if action == "dismiss":
        ContextFlagLog.objects.create(
            organisation_id=school_class.organisation_id,
            student_id=alert.student_id,
            alert=alert,
            flag=context_flag,
            workflow_step="TAW_15",
            recorded_by=teacher,
            recorded_at=now,
        )
    else:
        TeacherReviewRequest.objects.create(
            organisation_id=school_class.organisation_id,
            student_id=alert.student_id,
            alert=alert,
            requested_by=teacher,
            requested_at=now,
        )
    _action(teacher, school_class, alert.student_id, f"acute_{action}", "TAW_15", code=context_flag)
    record(
        verb=f"workflow.acute_alert_{alert.state}",
        actor=teacher,
        target=alert,
        class_id=school_class.pk,
        why=context_flag or "nominated for a tier review",
        details={"workflow_step": "TAW_15", "action": action, "context_flag": context_flag or None},
    )
    return alert


def _assignment(school_class: SchoolClass, assignment_id: int) -> BundleAssignment:
    assignment = BundleAssignment.objects.filter(pk=assignment_id, school_class=school_class).first()
    if assignment is None:
        raise WorkflowError("NOT_FOUND", f"no bundle assignment {assignment_id} in this class", status=404)
    advisory_xact_lock(f"workflow:{school_class.organisation_id}:assignment:{assignment.pk}")
    assignment = BundleAssignment.objects.select_for_update().get(pk=assignment.pk)
    if assignment.status != BundleAssignment.Status.ACTIVE:
        raise WorkflowError("ALREADY_EXITED", "this bundle assignment is already closed", status=409)
    return assignment


@transaction.atomic
def plan_continue(*, teacher: User, school_class: SchoolClass, assignment_id: int) -> BundleAssignment:
    """TAW_16: the teacher keeps the plan going after reviewing it."""
    assignment = _assignment(school_class, assignment_id)
    assignment.plan_status = BundleAssignment.PlanStatus.CONTINUING
    assignment.save(update_fields=["plan_status"])
    _history(assignment, teacher, "continued", "TAW_16", "")
    _action(teacher, school_class, assignment.student_id, "plan_continue", "TAW_16")
    record(
        verb="workflow.plan_continued", actor=teacher, target=assignment, details={"workflow_step": "TAW_16"}
    )
    return assignment


@transaction.atomic
def exit_plan(
    *, teacher: User, school_class: SchoolClass, assignment_id: int, override_code: str
) -> BundleAssignment:
    """TAW_17: close a bundle assignment with an exit code."""
    check_override(override_code, catalog.OverrideScope.EXIT)
    assignment = _assignment(school_class, assignment_id)
    now = timezone.now()
    assignment.status, assignment.plan_status = (
        BundleAssignment.Status.EXITED,
        BundleAssignment.PlanStatus.EXITED,
    )
    assignment.exited_at, assignment.exit_code = now, override_code
    assignment.save(update_fields=["status", "plan_status", "exited_at", "exit_code"])
    _history(assignment, teacher, "exited", "TAW_17", override_code)
    _action(teacher, school_class, assignment.student_id, "exit", "TAW_17", code=override_code)
    _move_draft(teacher, school_class, "TAW_17", now)
    record(
        verb="workflow.exited",
        actor=teacher,
        target=assignment,
        why=catalog.OVERRIDE_BY_CODE[override_code].label,
        details={"workflow_step": "TAW_17", "override_code": override_code},
    )
    return assignment


def _history(assignment: BundleAssignment, teacher: User, event: str, step: str, code: str) -> None:
    AssignmentHistory.objects.create(
        assignment=assignment,
        event=event,
        triggering_workflow_step=step,
        override_code=code,
        actor=teacher,
        at=timezone.now(),
    )
