"""Reads of study plans for the plan panel, the API and the approval notifications."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Prefetch
from django.utils import timezone

from audit.notify import PendingApproval
from classroom.models import Student, User
from plans import schema
from plans.models import Approval, Curriculum, PlanDraft, PlanVersion, StudyPlan
from plans.services import can_edit, schema_summary

RECENT_VERSIONS = 5


@dataclass
class DraftRow:
    draft: PlanDraft
    summary: list[str]
    stale: bool  # made from a version that is no longer the published one
    approval: Approval | None
    can_decide: bool


@dataclass
class PlanPanel:
    """Everything the plan panel shows, in a fixed number of queries."""

    student: Student
    version: PlanVersion | None
    document: schema.PlanDocument | None
    drafts: list[DraftRow] = field(default_factory=list)
    history: list[PlanVersion] = field(default_factory=list)
    catalogue: dict[str, str] = field(default_factory=dict)
    can_edit: bool = False

    @property
    def version_number(self) -> int:
        return self.version.number if self.version else 0


def plan_panel(student: Student, user: User) -> PlanPanel:
    study_plan = (
        StudyPlan.objects.filter(student=student)
        .select_related("current_version__published_by", "current_version__approved_by")
        .prefetch_related(
            Prefetch(
                "drafts",
                queryset=PlanDraft.objects.filter(state__in=PlanDraft.ACTIVE)
                .select_related("author", "approval__requested_by")
                .order_by("-created_at"),
                to_attr="active_drafts",
            )
        )
        .first()
    )
    editor = can_edit(user, student)
    panel = PlanPanel(
        student=student,
        version=study_plan.current_version if study_plan else None,
        document=None,
        catalogue=catalogue_of(student),
        can_edit=editor,
    )
    if study_plan is None:
        return panel
    if panel.version is not None:
        panel.document = schema.PlanDocument.model_validate(panel.version.document)
    now = timezone.now()
    for draft in study_plan.active_drafts:
        if draft.expires_at <= now:
            continue
        approval = getattr(draft, "approval", None)
        panel.drafts.append(
            DraftRow(
                draft=draft,
                summary=schema_summary(draft),
                stale=draft.base_number != study_plan.version_number,
                approval=approval,
                can_decide=bool(editor and approval and approval.requested_by_id != user.pk),
            )
        )
    panel.history = list(
        PlanVersion.objects.filter(plan=study_plan)
        .select_related("published_by", "approved_by")
        .order_by("-number")[:RECENT_VERSIONS]
    )
    return panel


def catalogue_of(student: Student) -> dict[str, str]:
    return dict(
        Curriculum.objects.filter(organisation_id=student.organisation_id, is_active=True)
        .order_by("title")
        .values_list("code", "title")
    )


def plan_json(student: Student) -> dict[str, Any]:
    """`GET /api/plans/<student_id>`: the published version and the open drafts."""
    study_plan = (
        StudyPlan.objects.filter(student=student).select_related("current_version__published_by").first()
    )
    version = study_plan.current_version if study_plan else None
    drafts = (
        PlanDraft.objects.filter(plan=study_plan, state__in=PlanDraft.ACTIVE, expires_at__gt=timezone.now())
        .select_related("author")
        .order_by("-created_at")
        if study_plan
        else []
    )
    return {
        "student_id": student.pk,
        "version": {
            "number": version.number,
            "plan": version.document,
            "rationale": version.rationale,
            "published_by": version.published_by.get_username(),
            "published_at": version.published_at,
        }
        if version
        else None,
        "drafts": [draft_json(draft) for draft in drafts],
    }


def draft_json(draft: PlanDraft) -> dict[str, Any]:
    return {
        "id": draft.pk,
        "state": draft.state,
        "base_version": draft.base_number,
        "plan": draft.document,
        "diff": draft.diff,
        "summary": schema_summary(draft),
        "rationale": draft.rationale,
        "source": draft.source,
        "author": draft.author.get_username(),
        "high_impact": draft.high_impact,
        "created_at": draft.created_at,
        "expires_at": draft.expires_at,
    }


def pending_approvals(older_than: datetime) -> Iterator[PendingApproval]:
    """The approval source the audit notifier watches (settings.AUDIT_APPROVAL_SOURCES)."""
    for approval in Approval.objects.filter(
        state=Approval.State.PENDING, requested_at__lte=older_than
    ).select_related("draft__plan__student", "requested_by"):
        student = approval.draft.plan.student
        yield PendingApproval(
            key=f"plans.approval:{approval.pk}",
            organisation_id=approval.organisation_id,
            summary=f"Study-plan change for {student.full_name} by "
            f"{approval.requested_by.display_name}: {'; '.join(approval.reasons)}",
            requested_at=approval.requested_at,
            url=f"/students/{student.pk}/plan/",
        )
