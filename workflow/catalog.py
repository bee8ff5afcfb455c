"""The Teacher Activation Workflow as data (shared/seeds/002): the 17 steps and their stages and
surfaces, the allowed transitions, the closed code lists (override codes with their scopes,
context flags, bundle object types, routing outcomes) and the guardrail error codes.

The seed names the counts and the rules; where it names no value (the nine override codes, the
routing outcomes) the ones here are ours, documented in the README and served by
`GET /api/workflow/steps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

CATALOG_VERSION = "TAW-2026.11-1"
DRAFT_TTL_DAYS = 7


class Stage(StrEnum):
    REVIEW = "review"
    GROUPING = "grouping"
    ACTIVATION = "activation"
    MONITORING = "monitoring"
    DECISION = "decision"


class Surface(StrEnum):
    RECOMMENDATIONS = "recommendations_panel"
    SMART_GROUPING = "smart_grouping_panel"
    SCAFFOLD_PREVIEW = "scaffold_distribution_preview"
    ACTIVATION_REVIEW = "activation_review"
    ACTIVATION_CONFIRMATION = "activation_confirmation"
    PLAN_REVIEW = "plan_review_exit"


SURFACE_TITLES = {
    Surface.RECOMMENDATIONS: "Recommendations Panel",
    Surface.SMART_GROUPING: "Smart Grouping Panel",
    Surface.SCAFFOLD_PREVIEW: "Scaffold Distribution Preview",
    Surface.ACTIVATION_REVIEW: "Activation Review",
    Surface.ACTIVATION_CONFIRMATION: "Activation Confirmation",
    Surface.PLAN_REVIEW: "Plan Review & Exit",
}


@dataclass(frozen=True)
class Step:
    id: str
    stage: Stage
    surface: Surface
    title: str
    description: str
    next: tuple[str, ...]


STEPS: tuple[Step, ...] = (
    Step("TAW_01", Stage.REVIEW, Surface.RECOMMENDATIONS, "Load recommendations",
         "Read the class's recommendations, one per student, from the profile engine.", ("TAW_02",)),
    Step("TAW_02", Stage.REVIEW, Surface.RECOMMENDATIONS, "Check guardrails",
         "Sort out students with thin evidence, open acute regressions or incomplete data.", ("TAW_03",)),
    Step("TAW_03", Stage.REVIEW, Surface.RECOMMENDATIONS, "Recommendations panel",
         "The teacher reads the recommendations and the guardrails.", ("TAW_04", "TAW_07", "TAW_13")),
    Step("TAW_04", Stage.GROUPING, Surface.SMART_GROUPING, "Compute clusters",
         "Group students who share bundle, anchor skill, scaffold tier and delivery mode.", ("TAW_05",)),
    Step("TAW_05", Stage.GROUPING, Surface.SCAFFOLD_PREVIEW, "Scaffold distribution preview",
         "Level_1 / Level_2 / Level_3 across a cluster before committing.", ("TAW_06", "TAW_07")),
    Step("TAW_06", Stage.GROUPING, Surface.SMART_GROUPING, "Adjust membership",
         "Take members out of a cluster, each with a grouping override code.", ("TAW_05", "TAW_07")),
    Step("TAW_07", Stage.ACTIVATION, Surface.ACTIVATION_REVIEW, "Activation review",
         "Confirm each member, or adjust them.", ("TAW_08", "TAW_09", "TAW_10")),
    Step("TAW_08", Stage.ACTIVATION, Surface.ACTIVATION_REVIEW, "Member overrides",
         "Another tier than recommended: a code and a confirmation.", ("TAW_07", "TAW_09", "TAW_10")),
    Step("TAW_09", Stage.ACTIVATION, Surface.ACTIVATION_REVIEW, "Deferrals",
         "Students deferred for incomplete data (QA_003) or needing more data are set aside.", ("TAW_10",)),
    Step("TAW_10", Stage.ACTIVATION, Surface.ACTIVATION_CONFIRMATION, "Activation confirmation",
         "The final summary before the commit.", ("TAW_11", "TAW_12", "TAW_07")),
    Step("TAW_11", Stage.ACTIVATION, Surface.ACTIVATION_CONFIRMATION, "Bulk activation",
         "One bundle assignment per cluster member, through the cluster writer.", ("TAW_13",)),
    Step("TAW_12", Stage.ACTIVATION, Surface.ACTIVATION_CONFIRMATION, "Individual activation or routing",
         "One student: a bundle assignment, or a non-bundle routing record.", ("TAW_13",)),
    Step("TAW_13", Stage.MONITORING, Surface.PLAN_REVIEW, "Plan status",
         "Read the monitoring status of the active plans.", ("TAW_14",)),
    Step("TAW_14", Stage.MONITORING, Surface.PLAN_REVIEW, "Acute alerts",
         "Surface open acute-regression alerts.", ("TAW_15", "TAW_16")),
    Step("TAW_15", Stage.DECISION, Surface.PLAN_REVIEW, "Resolve acute regression",
         "Dismiss with a context flag, or escalate to a tier-review nomination.", ("TAW_14", "TAW_16")),
    Step("TAW_16", Stage.DECISION, Surface.PLAN_REVIEW, "Plan status transition",
         "Continue the plan, or move on to exit.", ("TAW_13", "TAW_17")),
    Step("TAW_17", Stage.DECISION, Surface.PLAN_REVIEW, "Exit",
         "Close the plan with an exit override code.", ("TAW_01",)),
)  # fmt: skip
STEP_IDS = tuple(step.id for step in STEPS)
STEP_BY_ID = {step.id: step for step in STEPS}
STEP_STAGE = {step.id: step.stage for step in STEPS}
FIRST_STEP = "TAW_01"


def can_move(current: str, target: str) -> bool:
    """A step may be saved again, move to one of its next steps, or start over at TAW_01."""
    return target in (current, FIRST_STEP) or target in STEP_BY_ID[current].next


class OverrideScope(StrEnum):
    ACTIVATION = "activation"  # a member's tier differs from the recommendation
    GROUPING = "grouping"  # a member is taken out of a cluster
    EXIT = "exit"  # a bundle assignment is closed


@dataclass(frozen=True)
class OverrideCode:
    code: str
    scope: OverrideScope
    label: str


OVERRIDE_CODES: tuple[OverrideCode, ...] = (
    OverrideCode("OVR_TIER_RAISE", OverrideScope.ACTIVATION, "More scaffolding than recommended"),
    OverrideCode("OVR_TIER_LOWER", OverrideScope.ACTIVATION, "Less scaffolding than recommended"),
    OverrideCode("OVR_OBSERVED_NEED", OverrideScope.ACTIVATION, "Classroom observation not in the data"),
    OverrideCode("OVR_RECENT_ASSESSMENT", OverrideScope.ACTIVATION, "A recent assessment not yet synced"),
    OverrideCode("OVR_GROUP_EXCLUDE", OverrideScope.GROUPING, "Better served outside this group"),
    OverrideCode("OVR_GROUP_SCHEDULE", OverrideScope.GROUPING, "Cannot join the group's sessions"),
    OverrideCode("OVR_EXIT_GOAL_MET", OverrideScope.EXIT, "Goal met"),
    OverrideCode("OVR_EXIT_NO_RESPONSE", OverrideScope.EXIT, "Not responding to the bundle"),
    OverrideCode("OVR_EXIT_PLACEMENT_CHANGE", OverrideScope.EXIT, "Placement or schedule changed"),
)
OVERRIDE_BY_CODE = {o.code: o for o in OVERRIDE_CODES}

CONTEXT_FLAGS: tuple[str, ...] = (
    "CTX_SESSION_INTERRUPTED",
    "CTX_TECHNICAL_ISSUE",
    "CTX_AUDIO_PROBLEM",
    "CTX_GROUP_NOT_COMPLETED",
    "CTX_STUDENT_ABSENT",
    "CTX_NEEDED_REPETITION",
    "CTX_PAPER_CHECK_ADMIN",
)
CONTEXT_FLAG_LABELS = {
    "CTX_SESSION_INTERRUPTED": "The session was interrupted",
    "CTX_TECHNICAL_ISSUE": "A technical issue",
    "CTX_AUDIO_PROBLEM": "An audio problem",
    "CTX_GROUP_NOT_COMPLETED": "The group work was not completed",
    "CTX_STUDENT_ABSENT": "The student was absent",
    "CTX_NEEDED_REPETITION": "The student needed a repetition",
    "CTX_PAPER_CHECK_ADMIN": "Checked on paper by the teacher",
}


class ObjectType(StrEnum):
    """BundleObjectType: the two bundle kinds, and the non-bundle objects a recommendation may be."""

    INTERVENTION = "INTERVENTION"
    COMPOSITE = "COMPOSITE"
    PRACTICE_SET = "PRACTICE_SET"
    ENRICHMENT = "ENRICHMENT"
    MONITOR_ONLY = "MONITOR_ONLY"


BUNDLE_TYPES = (ObjectType.INTERVENTION, ObjectType.COMPOSITE)
ROUTING_OUTCOMES = {
    ObjectType.PRACTICE_SET: "ROUTE_PRACTICE_SET",
    ObjectType.ENRICHMENT: "ROUTE_ENRICHMENT",
    ObjectType.MONITOR_ONLY: "ROUTE_MONITOR_ONLY",
}

TIERS = ("Level_1", "Level_2", "Level_3")
DELIVERY_MODES = ("small_group", "independent")


class Guardrail(StrEnum):
    INSUFFICIENT_EVIDENCE = "INSUFFICIENT_EVIDENCE"
    ACUTE_REGRESSION = "ACUTE_REGRESSION_UNRESOLVED"
    DATA_INCOMPLETE = "DATA_INCOMPLETE"


QA_003 = "QA_003"
