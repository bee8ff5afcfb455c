"""`/api/workflow/*`: the seven endpoints of shared/seeds/002, ClassTeacher-scoped."""

from __future__ import annotations

from typing import Any, Literal

from django.http import Http404, HttpRequest
from ninja import Router, Schema
from pydantic import ConfigDict, Field

from classroom.inputs import CODE, DRAFT_STATE_BYTES, Id
from workflow import catalog, selectors, services
from workflow.models import StepDefinition

router = Router(tags=["activation workflow"])

# The closed lists, declared in the document; the services refuse anything else with the seed's
# codes (INVALID_OVERRIDE_CODE, SCOPE_MISMATCH, ...), so the schema does not check them itself.
OVERRIDE_CODES = ["", *catalog.OVERRIDE_BY_CODE]
CONTEXT_FLAGS = ["", *catalog.CONTEXT_FLAGS]
# More members than any class has; a cluster is activated by its id.
MAX_MEMBERS = 500


def _one_of(values: list[str], description: str) -> Any:
    return Field(default="", max_length=CODE, description=description, json_schema_extra={"enum": values})


class SaveDraftIn(Schema):
    classId: Id  # noqa: N815 - the seed's field names
    step: str = Field(
        max_length=CODE,
        description="TAW_01..TAW_17; must be reachable from the draft's current step",
        json_schema_extra={"enum": list(catalog.STEP_IDS)},
    )
    state: dict[str, Any] = Field(
        default_factory=dict,
        description=f"What the surfaces need to resume (at most {DRAFT_STATE_BYTES // 1024} KiB as JSON).",
    )


class MemberIn(Schema):
    studentId: Id  # noqa: N815
    scaffoldTier: str = _one_of(["", *catalog.TIERS], "Level_1, Level_2 or Level_3; empty: recommended")  # noqa: N815
    overrideCode: str = _one_of(OVERRIDE_CODES, "An activation code, for a tier not recommended")  # noqa: N815


class ActivateIn(Schema):
    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["clusterId"]}, {"required": ["studentIds"]}]}
    )

    classId: Id  # noqa: N815
    clusterId: Id | None = None  # noqa: N815
    studentIds: list[Id] = Field(default_factory=list, max_length=MAX_MEMBERS)  # noqa: N815
    members: list[MemberIn] = Field(default_factory=list, max_length=MAX_MEMBERS)
    confirmed: bool = False


class ReviewIn(Schema):
    classId: Id  # noqa: N815
    alertId: Id  # noqa: N815
    action: Literal["dismiss", "escalate"]
    contextFlag: str = _one_of(CONTEXT_FLAGS, "A context flag; required to dismiss")  # noqa: N815


class ExitIn(Schema):
    classId: Id  # noqa: N815
    assignmentId: Id  # noqa: N815
    overrideCode: str = Field(  # noqa: N815
        max_length=CODE,
        description="An exit override code",
        json_schema_extra={
            "enum": [o.code for o in catalog.OVERRIDE_CODES if o.scope == catalog.OverrideScope.EXIT]
        },
    )


class ErrorOut(Schema):
    error: str
    detail: str


# 403: the workflow is for teachers (a learner's token, or compliance staff).
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut}


@router.get("/steps", response={200: dict, 401: ErrorOut, 403: ErrorOut})
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
def recommendations(request: HttpRequest, class_id: Id) -> dict[str, Any]:
    """The Recommendations Panel feed: one recommendation per student, the guardrails that apply,
    the clusters, and the open acute-regression alerts."""
    school_class = services.class_for_teacher(request.user, class_id)
    return selectors.recommendations_json(school_class)


@router.get("/draft/{teacher_id}/{class_id}", response={200: dict, **ERRORS})
def draft(request: HttpRequest, teacher_id: Id, class_id: Id) -> dict[str, Any]:
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
