"""The activation workflow in words a teacher reads: the codes, guardrails and refusals."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING, Any

from classroom.models import SchoolClass, Student
from workflow import catalog, engines, services
from workflow.catalog import Stage
from workflow.models import (
    AcuteRegressionAlert,
    Bundle,
    Cluster,
    Recommendation,
)
from workflow.services import WorkflowError

if TYPE_CHECKING:
    from workflow.panels import Target

STAGE_TITLES = {
    Stage.REVIEW: "Review",
    Stage.GROUPING: "Grouping",
    Stage.ACTIVATION: "Activation",
    Stage.MONITORING: "Monitoring",
    Stage.DECISION: "Decision",
}
OBJECT_TYPE_WORDS = {
    catalog.ObjectType.INTERVENTION: "Intervention bundle",
    catalog.ObjectType.COMPOSITE: "Composite bundle",
    catalog.ObjectType.PRACTICE_SET: "Practice set",
    catalog.ObjectType.ENRICHMENT: "Enrichment",
    catalog.ObjectType.MONITOR_ONLY: "Monitor only",
}
ROUTING_WORDS = {
    "ROUTE_PRACTICE_SET": "assign a practice set",
    "ROUTE_ENRICHMENT": "offer enrichment work",
    "ROUTE_MONITOR_ONLY": "keep monitoring, no new work",
}
MODE_WORDS = {"small_group": "small group", "independent": "independent work"}
MONITORING_WORDS = {
    "on_track": ("On track", "mastery is up since the activation"),
    "watch": ("Watch", "mastery has not moved since the activation"),
    "off_track": ("Off track", "mastery is down since the activation"),
    "too_early": ("Too early to tell", "fewer than three measurements since the activation"),
}
CHOOSE_FIRST = (
    "Choose a group on the Smart Grouping Panel, or one student on the Recommendations Panel, first."
)
REFUSALS = {
    catalog.Guardrail.INSUFFICIENT_EVIDENCE: (
        "Not activated: there is not enough evidence yet for {names}. They are in the “needs more data” "
        "group and can be activated once more data arrives."
    ),
    catalog.Guardrail.ACUTE_REGRESSION: (
        "Not activated: {names} still has an open acute regression. Resolve it first on the "
        "Recommendations Panel (dismiss it with what happened, or escalate it for a tier review), "
        "or take them out of the group. Nothing was written."
    ),
    "CONFIRMATION_REQUIRED": (
        "Not activated: you chose another scaffold tier than recommended for {names}. Go back to the "
        "Activation Review and tick “confirm this deviation” to apply it. Nothing was written."
    ),
    "OVERRIDE_CODE_REQUIRED": (
        "Not activated: you chose another scaffold tier than recommended for {names}. Go back to the "
        "Activation Review and pick the reason from the list. Nothing was written."
    ),
    "SCOPE_MISMATCH": "That reason belongs to another kind of decision: pick one from the list shown here.",
    "INVALID_OVERRIDE_CODE": (
        "Pick a reason from the list: only the listed reasons are recorded, never free text."
    ),
    "INVALID_CONTEXT_FLAG": "To dismiss the alert, say what happened: pick a context from the list.",
    "INVALID_ACTION": "Choose whether to dismiss the alert or to escalate it.",
    "INVALID_TIER": "Choose Level_1, Level_2 or Level_3 as the scaffold tier.",
    "ALREADY_RESOLVED": (
        "This alert was already resolved (by you or a colleague): the list below is up to date."
    ),
    "ALREADY_EXITED": "This plan was already closed: the list below is up to date.",
    "NOT_FOUND": "That group, student, alert or plan is no longer here (the recommendations may have been "
    "refreshed): the page below is up to date.",
    "NOT_A_MEMBER": "The group changed since you reviewed it: review its members again.",
    "BAD_TARGET": CHOOSE_FIRST,
}


# Words -------------------------------------------------------------------------------------------


def words(code: str) -> str:
    return code.replace("_", " ")


def day(iso: str | None) -> str:
    if not iso:
        return "unknown"
    day = date.fromisoformat(iso)
    return f"{day.day} {day:%b}"


def join(names: list[str]) -> str:
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)


def code_label(code: str) -> str:
    override = catalog.OVERRIDE_BY_CODE.get(code)
    return override.label if override else ""


def cluster_keys(school_class: SchoolClass, cluster: Cluster) -> list[tuple[str, str]]:
    """The five keys that make these students one cluster, in words."""
    bundle = cluster.bundle
    kind = OBJECT_TYPE_WORDS[catalog.ObjectType(bundle.object_type)].lower()
    return [
        ("Class", school_class.name),
        ("Bundle", f"{bundle.title} ({bundle.code}, {kind})"),
        ("Anchor skill", words(cluster.anchor_skill)),
        ("Scaffold tier", cluster.scaffold_tier),
        ("Delivery mode", MODE_WORDS.get(cluster.delivery_mode, cluster.delivery_mode)),
    ]


def target_title(school_class: SchoolClass, target: Target) -> str:
    if target.cluster:
        cluster = target.cluster
        return (
            f"{cluster.bundle.title} · {cluster.scaffold_tier} · {MODE_WORDS.get(cluster.delivery_mode, '')}"
        )
    return f"{target.recs[0].student.full_name}, on their own"


def evidence_words(evidence: dict[str, Any]) -> list[str]:
    measured = evidence.get("days_measured", 0)
    words = [f"{measured} of the last {engines.WINDOW_DAYS} days with a mastery measurement"]
    if "mastery_now" in evidence:
        words.append(f"mastery now {evidence['mastery_now']:.0%}")
    if "gain_14d" in evidence:
        words.append(f"{evidence['gain_14d']:+.0%} in 14 days")
    if evidence.get("confidence_last3") is not None:
        words.append(f"confidence {evidence['confidence_last3']:.1f}/5 over the last three check-ins")
    if "last_day_with_data" in evidence:
        words.append(f"last data {day(evidence['last_day_with_data'])}")
    return words


def thin_words(evidence: dict[str, Any]) -> str:
    measured = evidence.get("days_measured", 0)
    days = "no days" if measured == 0 else f"only {measured} day{'s' if measured != 1 else ''}"
    return (
        f"Not enough evidence yet: {days} with a mastery measurement in the last {engines.WINDOW_DAYS} "
        f"({engines.EVIDENCE_MIN_DAYS} needed). We'll look again as data arrives."
    )


def acute_words(alert: AcuteRegressionAlert) -> str:
    return (
        f"Open acute regression: {alert.summary}. Resolve it before activating anything for "
        f"{alert.student.first_name}: dismiss it with what happened, or escalate it for a tier review. "
        "The plan status does not change either way."
    )


def data_incomplete_words(evidence: dict[str, Any] | None) -> str:
    evidence = evidence or {}
    quiet = evidence.get("quiet_days")
    since = (
        f"no data for {quiet} days (last on {day(evidence.get('last_day_with_data'))})" if quiet else "gaps"
    )
    return (
        f"Data incomplete (QA_003): {since}. Deferred: nothing is activated for this student until data "
        "arrives again; the rest of the group can go ahead."
    )


def guardrail_words(rec: Recommendation, alert: AcuteRegressionAlert | None) -> list[str]:
    words = [acute_words(alert)] if alert else []
    if rec.do_not_decide_yet:
        words.append(thin_words(rec.evidence))
    if rec.qa_exclusion:
        words.append(data_incomplete_words(rec.evidence))
    return words


def blocker_words(rec: Recommendation, alert: AcuteRegressionAlert | None) -> list[str]:
    """What will make the activation refuse (the two guardrails no override code bypasses)."""
    words = [acute_words(alert)] if alert else []
    return [*words, thin_words(rec.evidence)] if rec.do_not_decide_yet else words


def deviation_warning(student: Student, rec: Recommendation, tier: str, code: str, choice: dict) -> str:
    if not rec.is_bundle or tier == rec.recommended_tier:
        return ""
    missing = [] if code else ["no reason chosen yet"]
    missing += [] if choice.get("confirmed") else ["not confirmed yet"]
    if not missing:
        return ""
    return (
        f"{student.full_name}: {tier} instead of the recommended {rec.recommended_tier}, "
        f"{' and '.join(missing)}. Finish it on the Activation Review, or the activation is refused."
    )


def resolved_words(alert: AcuteRegressionAlert, flag: str) -> str:
    name = alert.student.full_name
    if alert.state == AcuteRegressionAlert.State.DISMISSED:
        return (
            f"Dismissed {name}'s acute regression: {catalog.CONTEXT_FLAG_LABELS[flag].lower()}. "
            "The context is kept in the context-flag log; the plan status is unchanged."
        )
    return (
        f"Escalated {name}'s acute regression: a tier review is requested (the RTI team decides). "
        "The plan status is unchanged."
    )


def activation_words(result: services.Activation, school_class: SchoolClass) -> dict[str, Any]:
    if result.routing is not None:
        routing = result.routing
        name = student_names([routing["studentId"]])[routing["studentId"]]
        kind = OBJECT_TYPE_WORDS[catalog.ObjectType(routing["objectType"])]
        outcome = routing["routingOutcome"]
        return ok(
            f"Routed {name}: {kind} → {ROUTING_WORDS[outcome]} ({outcome}).",
            "No bundle assignment was written; the routing is recorded in the teacher action log.",
        )
    names = student_names(
        [a["studentId"] for a in result.activated]
        + [d["studentId"] for d in result.deferred]
        + [e["studentId"] for e in result.excluded]
        + result.already_active
    )
    bundle = Bundle.objects.filter(
        organisation_id=school_class.organisation_id, code=result.bundle_code
    ).first()
    on = f"{bundle.title} ({bundle.code})" if bundle else result.bundle_code
    count = len(result.activated)
    lines = [
        f"Activated {count} bundle assignment{'s' if count != 1 else ''} on {on}: "
        + join([f"{names[a['studentId']]} at {a['scaffoldTier']}" for a in result.activated])
        + "."
        if count
        else f"Nothing new was activated on {on}."
    ]
    if result.deferred:
        lines.append(
            f"Deferred, data incomplete (QA_003): {join([names[d['studentId']] for d in result.deferred])}."
        )
    if result.excluded:
        out = [f"{names[e['studentId']]} ({code_label(e['overrideCode'])})" for e in result.excluded]
        lines.append(f"Taken out of the group: {join(out)}.")
    if result.already_active:
        lines.append(f"Already active, left as they were: {join([names[i] for i in result.already_active])}.")
    return ok(*lines)


def refusal_words(error: WorkflowError, choices: Iterable[dict[str, Any]]) -> str:
    if error.code == "ILLEGAL_TRANSITION":
        return transition_words(error.extra.get("currentStep", catalog.FIRST_STEP))
    text = REFUSALS.get(error.code)
    if text is None:
        return f"Not done: {error.detail}."
    ids = list(error.extra.get("studentIds") or [])
    if "studentId" in error.extra:
        ids = [error.extra["studentId"]]
    if error.code == "CONFIRMATION_REQUIRED":
        ids = [c["studentId"] for c in choices if not c.get("confirmed")] or ids
    names = student_names(ids)
    return text.format(names=join([names[i] for i in ids if i in names]) or "this student")


def transition_words(current: str) -> str:
    step = catalog.STEP_BY_ID[current]
    following = "; ".join(f"{s} {catalog.STEP_BY_ID[s].title}" for s in step.next)
    return (
        f"Not from here: your workflow is at {step.id} {step.title} "
        f"({catalog.SURFACE_TITLES[step.surface]}), and from there the next steps are {following}. "
        "To begin a new round, start over from the recommendations: nothing already activated is undone."
    )


def ok(*lines: str) -> dict[str, Any]:
    return {"ok": True, "lines": list(lines)}


def no(*lines: str) -> dict[str, Any]:
    return {"ok": False, "lines": list(lines)}


def student_names(student_ids: Iterable[int]) -> dict[int, str]:
    return {s.pk: s.full_name for s in Student.objects.filter(pk__in=list(student_ids))}
