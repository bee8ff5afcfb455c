"""Every write of study plans: drafts, publishing, approvals, discarding and expiry.

The system proposes, the teacher decides: a draft (from the form, plain text, the API or the
tutor) is only a proposal; publishing needs a confirmation, and a high-impact change a second
person. Each step records one audit event in the same transaction as its write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from audit.models import ActivityEvent
from audit.services import record
from classroom import inputs
from classroom.access import can_act_for
from classroom.models import Alert, Organisation, Student, User
from classroom.rules import Finding
from classroom.services import alerts_set
from plans import schema
from plans.models import Approval, Curriculum, PlanDraft, PlanPolicy, PlanVersion, StudyPlan

SYSTEM_PLANS = "system:plans"


class PublishConflict(Exception):
    """The plan moved on, or the draft is no longer open: nothing was published. Says why."""


def policy_for(organisation: Organisation) -> schema.Policy:
    """The organisation's plan policy and catalogue (settings' defaults where it has no policy)."""
    row = PlanPolicy.objects.filter(organisation=organisation).first()
    catalogue = frozenset(
        Curriculum.objects.filter(organisation=organisation, is_active=True).values_list("code", flat=True)
    )
    return schema.Policy(
        min_weekly_minutes=row.min_weekly_minutes if row else settings.PLAN_MIN_WEEKLY_MINUTES,
        max_weekly_minutes=row.max_weekly_minutes if row else settings.PLAN_MAX_WEEKLY_MINUTES,
        catalogue=catalogue,
        high_impact_pacing_share=(
            row.high_impact_pacing_share if row else settings.PLAN_HIGH_IMPACT_PACING_SHARE
        ),
        new_curriculum_needs_approval=row.new_curriculum_needs_approval if row else True,
    )


def published_document(student: Student) -> tuple[schema.PlanDocument | None, int]:
    """The student's published plan and its version number (None and 0 before the first)."""
    study_plan = StudyPlan.objects.filter(student=student).select_related("current_version").first()
    if study_plan is None or study_plan.current_version is None:
        return None, 0
    return schema.PlanDocument.model_validate(study_plan.current_version.document), study_plan.version_number


@dataclass
class Proposal:
    """A validated (or refused) proposed plan and what it changes: what the teacher previews."""

    plan: dict[str, Any]
    base_number: int
    document: schema.PlanDocument | None = None
    diff: schema.PlanDiff | None = None
    errors: list[str] = field(default_factory=list)
    high_impact: list[str] = field(default_factory=list)
    understood: list[str] = field(default_factory=list)
    not_understood: list[str] = field(default_factory=list)
    read_by: str = ""  # "model", "rules", or "" for a structured proposal
    fallback_reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors and self.document is not None

    def read(self, interpretation: Any) -> None:
        """Carry over what reading the plain text understood, and what read it."""
        self.understood, self.not_understood = interpretation.understood, interpretation.not_understood
        self.read_by, self.fallback_reason = interpretation.read_by, interpretation.fallback_reason

    def as_json(self) -> dict[str, Any]:
        return {
            "plan": self.document.as_json() if self.document else self.plan,
            "base_version": self.base_number,
            "valid": self.ok,
            "errors": schema.PlanInvalid(self.errors).by_field() if self.errors else {},
            "diff": self.diff.as_json() if self.diff else {},
            "summary": self.diff.summary() if self.diff else [],
            "high_impact": self.high_impact,
            "understood": self.understood,
            "not_understood": self.not_understood,
            "read_by": self.read_by,
            "fallback_reason": self.fallback_reason,
        }


def plan_propose(*, student: Student, plan: Any, today: Any = None) -> Proposal:
    """Validate a proposed plan document against the schema and the organisation's policy, and
    diff it against the published version. Writes nothing."""
    base, number = published_document(student)
    proposal = Proposal(plan=plan if isinstance(plan, dict) else {}, base_number=number)
    try:
        document = schema.parse(plan, base=base)
    except schema.PlanInvalid as invalid:
        proposal.errors = invalid.errors
        return proposal
    policy = policy_for(student.organisation)
    proposal.errors = schema.policy_errors(
        document, base=base, policy=policy, today=today or timezone.localdate()
    )
    proposal.document = document
    proposal.diff = schema.diff(base, document)
    if not proposal.errors and proposal.diff.is_empty:
        proposal.errors = ["plan: the proposal changes nothing in the published plan"]
    proposal.high_impact = high_impact_reasons(proposal.diff, policy, first=base is None)
    return proposal


def high_impact_reasons(diff: schema.PlanDiff, policy: schema.Policy, *, first: bool = False) -> list[str]:
    """Why a change needs a second approver (nothing, for a student's first plan)."""
    if first:
        return []
    reasons = []
    if policy.new_curriculum_needs_approval and diff.curricula_added:
        reasons.append(f"a new curriculum: {', '.join(diff.curricula_added)}")
    share = diff.pacing_share()
    if share > policy.high_impact_pacing_share:
        reasons.append(
            f"weekly minutes change by {share:.0%}, more than the {policy.high_impact_pacing_share:.0%} "
            "the organisation allows without a second approver"
        )
    return reasons


def can_edit(user: User, student: Student) -> bool:
    """Teachers of the student's classes and org admins edit plans; compliance staff only read."""
    return can_act_for(user, student)


def _require_editor(user: User, student: Student) -> None:
    if not can_edit(user, student):
        raise PermissionDenied("only the student's teachers and organisation admins change study plans")


@transaction.atomic
def save_study_plan_draft(
    *,
    student: Student,
    by: User,
    plan: Any,
    rationale: str,
    source: str,
    source_text: str = "",
    agent: str = "",
) -> PlanDraft:
    """The one way a draft is stored: validated, diffed against the published version, with its
    rationale and author, open for PLAN_DRAFT_TTL_DAYS days. `agent` names the tutor when it
    proposes on the teacher's behalf (the teacher stays the author and decides)."""
    _require_editor(by, student)
    rationale = (rationale or "").strip()
    if len(rationale) < 3:
        raise schema.PlanInvalid(["rationale: say why the plan should change"])
    limits = (("rationale", rationale, inputs.RATIONALE), ("text", source_text, inputs.PLAN_TEXT))
    for name, value, limit in limits:
        if len(value) > limit:
            raise schema.PlanInvalid([f"{name}: {inputs.too_long(len(value), limit)}"])
    if source not in PlanDraft.Source.values:
        raise ValueError(f"unknown draft source {source!r}")
    proposal = plan_propose(student=student, plan=plan)
    if not proposal.ok:
        raise schema.PlanInvalid(proposal.errors)
    assert proposal.document is not None and proposal.diff is not None
    study_plan, _ = StudyPlan.objects.get_or_create(student=student)
    draft = PlanDraft.objects.create(
        plan=study_plan,
        base_number=proposal.base_number,
        document=proposal.document.as_json(),
        diff=proposal.diff.as_json(),
        rationale=rationale,
        source=source,
        source_text=source_text,
        author=by,
        high_impact=proposal.high_impact,
    )
    record(
        verb="plan.draft_saved",
        actor=None if agent else by,
        actor_name=agent,
        source="agent" if agent else None,
        target=draft,
        why=rationale,
        details={
            "base_version": draft.base_number,
            "changes": proposal.diff.summary(),
            "diff": draft.diff,
            "source": source,
            "high_impact": draft.high_impact,
            "expires_at": draft.expires_at.isoformat(),
            **({"on_behalf_of": by.get_username()} if agent else {}),
        },
    )
    return draft


def plan_publish(*, draft: PlanDraft, by: User, confirmed: bool) -> PlanDraft:
    """Publish a draft the user has confirmed. A high-impact change goes to the approval queue
    instead; a draft made from a version that is no longer the published one, or no longer open,
    is a PublishConflict. A refusal is recorded as a failed event, then raised."""
    if not confirmed:
        raise schema.PlanInvalid(["confirm: review the changes and confirm them to publish"])
    try:
        with transaction.atomic():
            draft, study_plan = _lock(draft)
            _require_editor(by, study_plan.student)
            _check_publishable(draft, study_plan)
            reasons = _recheck(draft, study_plan)
            if reasons:
                return approval_request(draft=draft, by=by, reasons=reasons)
            _publish(draft, study_plan, by=by, approved_by=None)
            return draft
    except (PublishConflict, schema.PlanInvalid) as refused:
        _record_refusal(draft, by=by, verb="plan.publish_failed", error=str(refused))
        raise


@transaction.atomic
def approval_decide(*, approval: Approval, by: User, approve: bool, note: str = "") -> Approval:
    """A second person approves (publishing the draft) or rejects a high-impact change."""
    note = inputs.check_text(note.strip(), field="note", limit=inputs.NOTE)
    draft, study_plan = _lock(approval.draft)
    approval = Approval.objects.select_for_update().get(pk=approval.pk)
    _require_editor(by, study_plan.student)
    if by.pk == approval.requested_by_id:
        raise PermissionDenied("a second person must decide: you asked for this approval")
    if approval.state != Approval.State.PENDING:
        raise PublishConflict(f"this change was already {approval.get_state_display().lower()}")
    now = timezone.now()
    approval.decided_by, approval.decided_at, approval.note = by, now, note
    if approve:
        if study_plan.version_number != draft.base_number:
            raise PublishConflict(_moved_on(study_plan, draft))
        approval.state = Approval.State.APPROVED
        approval.save(update_fields=["state", "decided_by", "decided_at", "note"])
        record(verb="plan.approved", actor=by, target=approval, why=approval.note or "approved")
        _publish(draft, study_plan, by=approval.requested_by, approved_by=by)
    else:
        approval.state = Approval.State.REJECTED
        approval.save(update_fields=["state", "decided_by", "decided_at", "note"])
        draft.state, draft.closed_at, draft.closed_by = PlanDraft.State.REJECTED, now, by
        draft.save(update_fields=["state", "closed_at", "closed_by"])
        record(verb="plan.rejected", actor=by, target=approval, why=approval.note or "rejected")
    return approval


@transaction.atomic
def draft_discard(*, draft: PlanDraft, by: User) -> PlanDraft:
    draft, study_plan = _lock(draft)
    _require_editor(by, study_plan.student)
    if draft.state not in PlanDraft.ACTIVE:
        raise PublishConflict(f"this draft is already {draft.get_state_display().lower()}")
    draft.state, draft.closed_at, draft.closed_by = PlanDraft.State.DISCARDED, timezone.now(), by
    draft.save(update_fields=["state", "closed_at", "closed_by"])
    Approval.objects.filter(draft=draft, state=Approval.State.PENDING).update(
        state=Approval.State.REJECTED, decided_by=by, decided_at=draft.closed_at, note="draft discarded"
    )
    record(verb="plan.draft_discarded", actor=by, target=draft, why="discarded")
    return draft


def drafts_expire(*, now: datetime | None = None) -> int:
    """Close drafts past their expiry, and keep the dashboard's expiring-drafts alerts in step
    (a student with a draft expiring within the warning window has one). Idempotent."""
    now = now or timezone.now()
    expired = 0
    for draft in PlanDraft.objects.filter(state__in=PlanDraft.ACTIVE, expires_at__lte=now).select_related(
        "plan__student"
    ):
        with transaction.atomic():
            claimed = PlanDraft.objects.filter(pk=draft.pk, state=draft.state).update(
                state=PlanDraft.State.EXPIRED, closed_at=now
            )
            if claimed:
                expired += 1
                Approval.objects.filter(draft=draft, state=Approval.State.PENDING).update(
                    state=Approval.State.REJECTED, decided_at=now, note="draft expired"
                )
                record(
                    verb="plan.draft_expired",
                    actor_name=SYSTEM_PLANS,
                    target=draft,
                    why=f"not published within {settings.PLAN_DRAFT_TTL_DAYS} days",
                )
    _expiring_alerts(now)
    return expired


def _expiring_alerts(now: datetime) -> None:
    hours = settings.ALERT_THRESHOLDS["draft_expiry_warning_hours"]
    soon = PlanDraft.objects.filter(
        state__in=PlanDraft.ACTIVE, expires_at__gt=now, expires_at__lte=now + timedelta(hours=hours)
    ).values_list("plan__student__organisation_id", "plan__student_id", "expires_at")
    by_org: dict[int, dict[int, list[datetime]]] = {}
    for organisation_id, student_id, expires_at in soon:
        by_org.setdefault(organisation_id, {}).setdefault(student_id, []).append(expires_at)
    with_alerts = Alert.objects.filter(
        kind=Alert.Kind.EXPIRING_DRAFT, state__in=[Alert.State.OPEN, Alert.State.ACKNOWLEDGED]
    ).values_list("organisation_id", flat=True)
    for organisation in Organisation.objects.filter(pk__in={*by_org, *with_alerts}):
        students = by_org.get(organisation.pk, {})
        findings = {
            student_id: Finding(
                kind=Alert.Kind.EXPIRING_DRAFT,
                severity=2,
                summary=f"{len(dates)} study-plan draft{'s' if len(dates) > 1 else ''} expire"
                f"{'' if len(dates) > 1 else 's'} by {timezone.localtime(min(dates)):%a %d %b %H:%M}",
                metrics={"drafts": len(dates), "first_expires_at": min(dates).isoformat()},
            )
            for student_id, dates in students.items()
        }
        alerts_set(organisation=organisation, kind=Alert.Kind.EXPIRING_DRAFT, findings=findings, now=now)


# Helpers -------------------------------------------------------------------------------------------


def _lock(draft: PlanDraft) -> tuple[PlanDraft, StudyPlan]:
    """Lock the plan row first (every publisher of this plan waits here), then reload the draft."""
    study_plan = StudyPlan.objects.select_for_update().select_related("student").get(pk=draft.plan_id)
    return PlanDraft.objects.select_for_update().get(pk=draft.pk), study_plan


def _check_publishable(draft: PlanDraft, study_plan: StudyPlan) -> None:
    if draft.state == PlanDraft.State.PUBLISHED:
        who = draft.closed_by.display_name if draft.closed_by else "someone"
        raise PublishConflict(
            f"this draft was already published by {who} at {timezone.localtime(draft.closed_at):%H:%M:%S}"
        )
    if draft.state == PlanDraft.State.PENDING_APPROVAL:
        raise PublishConflict("this draft is already waiting for a second approver")
    if draft.state != PlanDraft.State.OPEN:
        raise PublishConflict(f"this draft is {draft.get_state_display().lower()}")
    if draft.expires_at <= timezone.now():
        raise PublishConflict("this draft has expired; make a new one")
    if study_plan.version_number != draft.base_number:
        raise PublishConflict(_moved_on(study_plan, draft))


def _moved_on(study_plan: StudyPlan, draft: PlanDraft) -> str:
    current = study_plan.current_version
    who = current.published_by.display_name if current else "someone"
    when = f" at {timezone.localtime(current.published_at):%d %b %H:%M}" if current else ""
    return (
        f"version {study_plan.version_number} was published by {who}{when} after this draft was made "
        f"from version {draft.base_number}; make a new draft from the current plan"
    )


def _recheck(draft: PlanDraft, study_plan: StudyPlan) -> list[str]:
    """The policy may have changed since the draft was saved: check again, and say whether the
    change is high impact now."""
    document = schema.PlanDocument.model_validate(draft.document)
    base = (
        schema.PlanDocument.model_validate(study_plan.current_version.document)
        if study_plan.current_version
        else None
    )
    policy = policy_for(study_plan.student.organisation)
    errors = schema.policy_errors(document, base=base, policy=policy, today=timezone.localdate())
    if errors:
        raise schema.PlanInvalid(errors)
    return high_impact_reasons(schema.diff(base, document), policy, first=base is None)


def approval_request(*, draft: PlanDraft, by: User, reasons: list[str]) -> PlanDraft:
    """Put a high-impact draft in the approval queue (inside the caller's transaction)."""
    approval = Approval.objects.create(
        draft=draft,
        organisation_id=draft.plan.student.organisation_id,
        requested_by=by,
        requested_at=timezone.now(),
        reasons=reasons,
    )
    draft.state, draft.high_impact = PlanDraft.State.PENDING_APPROVAL, reasons
    draft.save(update_fields=["state", "high_impact"])
    record(
        verb="plan.approval_requested",
        actor=by,
        target=approval,
        status=ActivityEvent.Status.PENDING,
        why="; ".join(reasons),
        details={"draft_id": draft.pk, "changes": schema_summary(draft)},
    )
    return draft


def _publish(draft: PlanDraft, study_plan: StudyPlan, *, by: User, approved_by: User | None) -> PlanVersion:
    now = timezone.now()
    version = PlanVersion.objects.create(
        plan=study_plan,
        number=study_plan.version_number + 1,
        document=draft.document,
        rationale=draft.rationale,
        changes=schema_summary(draft),
        draft=draft,
        published_by=by,
        approved_by=approved_by,
        published_at=now,
    )
    study_plan.current_version, study_plan.version_number = version, version.number
    study_plan.save(update_fields=["current_version", "version_number"])
    draft.state, draft.closed_at, draft.closed_by = PlanDraft.State.PUBLISHED, now, approved_by or by
    draft.save(update_fields=["state", "closed_at", "closed_by"])
    record(
        verb="plan.published",
        actor=approved_by or by,
        target=study_plan,
        why=draft.rationale,
        details={
            "version": version.number,
            "draft_id": draft.pk,
            "changes": version.changes,
            "published_by": by.get_username(),
            "approved_by": approved_by.get_username() if approved_by else None,
            "published_at": now.isoformat(),
        },
    )
    return version


def schema_summary(draft: PlanDraft) -> list[str]:
    return schema.PlanDiff(**draft.diff).summary()


def _record_refusal(draft: PlanDraft, *, by: User, verb: str, error: str) -> None:
    record(
        verb=verb,
        actor=by,
        target=draft,
        status=ActivityEvent.Status.FAILED,
        why=error,
        details={"draft_id": draft.pk, "state": draft.state},
    )
