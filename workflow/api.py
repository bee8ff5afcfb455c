"""`/api/workflow/*`: the seven endpoints of shared/seeds/002, ClassTeacher-scoped."""

from __future__ import annotations

from typing import Any, Literal

from django.http import Http404, HttpRequest
from ninja import Router, Schema
from pydantic import Field

from workflow import catalog, selectors, services
from workflow.models import StepDefinition

router = Router(tags=["activation workflow"])


class SaveDraftIn(Schema):
    classId: int  # noqa: N815 - the seed's field names
    step: str = Field(description="TAW_01..TAW_17; must be reachable from the draft's current step")
    state: dict[str, Any] = Field(default_factory=dict, description="Whatever the surfaces need to resume.")


class MemberIn(Schema):
    studentId: int  # noqa: N815
    scaffoldTier: str = ""  # noqa: N815
    overrideCode: str = ""  # noqa: N815


class ActivateIn(Schema):
    classId: int  # noqa: N815
    clusterId: int | None = None  # noqa: N815
    studentIds: list[int] = Field(default_factory=list)  # noqa: N815
    members: list[MemberIn] = Field(default_factory=list)
    confirmed: bool = False


class ReviewIn(Schema):
    classId: int  # noqa: N815
    alertId: int  # noqa: N815
    action: Literal["dismiss", "escalate"]
    contextFlag: str = ""  # noqa: N815


class ExitIn(Schema):
    classId: int  # noqa: N815
    assignmentId: int  # noqa: N815
    overrideCode: str  # noqa: N815


class ErrorOut(Schema):
    error: str
    detail: str


ERRORS = {400: ErrorOut, 401: ErrorOut, 404: ErrorOut, 409: ErrorOut}


@router.get("/steps", response={200: dict, 401: ErrorOut})
def steps(request: HttpRequest) -> dict[str, Any]:
    """The 17 step definitions of the pinned catalog version, with the closed code lists."""
    services.require_teacher(request.user)
    rows = StepDefinition.objects.filter(catalog_version=catalog.CATALOG_VERSION).order_by("ordinal")
    return {
        "version": catalog.CATALOG_VERSION,
        "steps": [
            {
                "id": row.step_id,
                "stage": row.stage,
                "surface": row.surface,
                "title": row.title,
                "description": row.description,
                "next": row.next_steps,
            }
            for row in rows
        ],
        "overrideCodes": [
            {"code": o.code, "scope": o.scope, "label": o.label} for o in catalog.OVERRIDE_CODES
        ],
        "contextFlags": list(catalog.CONTEXT_FLAGS),
    }


@router.get("/recommendations/{class_id}", response={200: dict, **ERRORS})
def recommendations(request: HttpRequest, class_id: int) -> dict[str, Any]:
    """The Recommendations Panel feed: one recommendation per student, the guardrails that apply,
    the clusters, and the open acute-regression alerts."""
    school_class = services.class_for_teacher(request.user, class_id)
    return selectors.recommendations_json(school_class)


@router.get("/draft/{teacher_id}/{class_id}", response={200: dict, **ERRORS})
def draft(request: HttpRequest, teacher_id: int, class_id: int) -> dict[str, Any]:
    """Resume an in-progress draft (a teacher reads only their own)."""
    if teacher_id != request.user.pk:
        raise Http404("drafts are private to their teacher")
    school_class = services.class_for_teacher(request.user, class_id)
    found = services.draft_get(teacher=request.user, school_class=school_class)
    return selectors.draft_json(found, school_class)


@router.post("/save-draft", response={200: dict, **ERRORS})
def save_draft(request: HttpRequest, body: SaveDraftIn) -> dict[str, Any]:
    school_class = services.class_for_teacher(request.user, body.classId)
    saved = services.draft_save(
        teacher=request.user, school_class=school_class, step=body.step, state=body.state
    )
    return selectors.draft_json(saved, school_class)


@router.post("/activate", response={200: dict, **ERRORS})
def activate(request: HttpRequest, body: ActivateIn) -> dict[str, Any]:
    """Either `kind="activated"` (a bundle: assignments and scaffold rows) or `kind="routed"` (a
    non-bundle object: a routing record); both 200."""
    school_class = services.class_for_teacher(request.user, body.classId)
    result = services.activate(
        teacher=request.user,
        school_class=school_class,
        cluster_id=body.clusterId,
        student_ids=body.studentIds,
        members=[services.MemberChoice(m.studentId, m.scaffoldTier, m.overrideCode) for m in body.members],
        confirmed=body.confirmed,
    )
    return result.as_json()


@router.post("/review", response={200: dict, **ERRORS})
def review(request: HttpRequest, body: ReviewIn) -> dict[str, Any]:
    """Resolve an acute-regression alert: dismiss with a context flag, or escalate (a tier-review
    nomination). The plan status is never changed here."""
    school_class = services.class_for_teacher(request.user, body.classId)
    alert = services.review(
        teacher=request.user,
        school_class=school_class,
        alert_id=body.alertId,
        action=body.action,
        context_flag=body.contextFlag,
    )
    return {"alertId": alert.pk, "state": alert.state, "studentId": alert.student_id}


@router.post("/exit", response={200: dict, **ERRORS})
def exit_plan(request: HttpRequest, body: ExitIn) -> dict[str, Any]:
    school_class = services.class_for_teacher(request.user, body.classId)
    assignment = services.exit_plan(
        teacher=request.user,
        school_class=school_class,
        assignment_id=body.assignmentId,
        override_code=body.overrideCode,
    )
    return {"assignmentId": assignment.pk, "status": assignment.status, "exitCode": assignment.exit_code}
