"""What the tutor and the teacher see beside a conversation: the context bundle, the conversation
with the tutor's proposals, and the staff a prompt speaks of by their role."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Prefetch, Q
from django.shortcuts import get_object_or_404
from django.utils import timezone

from classroom.access import students_for
from classroom.models import (
    DailyPerformance,
    Student,
    StudentSyncState,
    StudyPlanProgress,
    TeacherAssignment,
    User,
)
from plans.models import PlanDraft, PlanVersion
from plans.services import schema_summary
from tutor.chat.prompts import StaffNames
from tutor.models import ChatMessage, ScheduledTask, ToolProposal

ROLE_ASKING, ROLE_OTHER = "the teacher", "another teacher"
MASTERY_WINDOW_DAYS = 28
RECENT_MESSAGES = 30


@dataclass
class ContextBundle:
    """Plan summary, mastery roll-ups, recent adjustments, upcoming milestones and the last sync."""

    version: int = 0
    objectives: list[str] = field(default_factory=list)
    pacing: str = ""
    curricula: list[str] = field(default_factory=list)
    plan: dict[str, Any] | None = None
    mastery_now: float | None = None
    mastery_change: float | None = None
    minutes_7d: int = 0
    checkins_7d: int = 0
    adjustments: list[str] = field(default_factory=list)
    milestones: list[tuple[str, date, str]] = field(default_factory=list)  # title, due, where from
    last_synced_at: datetime | None = None

    def as_prompt(self) -> str:
        """The bundle in words for the model (no names: the student is 'the student'). All of it is
        data (synced from the platform or stored free text): the caller puts it in a data section."""
        lines = [f"Published plan: version {self.version}" if self.version else "No published plan yet."]
        lines += [f"- objective: {text}" for text in self.objectives]
        if self.pacing:
            lines.append(f"- pacing: {self.pacing}; curricula: {', '.join(self.curricula) or 'none'}")
        mastery = f"{self.mastery_now:.0%}" if self.mastery_now is not None else "not assessed"
        change = f" ({self.mastery_change:+.0%} over 28 days)" if self.mastery_change is not None else ""
        week = f"{self.minutes_7d} min, {self.checkins_7d}/7 check-ins"
        lines.append(f"Mastery {mastery}{change}; this week {week}")
        lines += [f"Recent adjustment: {line}" for line in self.adjustments]
        lines += [f"Upcoming milestone: {title}, due {due.isoformat()}" for title, due, _ in self.milestones]
        synced = f"{self.last_synced_at:%Y-%m-%d %H:%M}" if self.last_synced_at else "never"
        lines.append(f"Last platform sync: {synced}")
        return "\n".join(lines)


def context_bundle(student: Student) -> ContextBundle:
    """Five queries, whatever the student's history."""
    today = timezone.localdate()
    bundle = ContextBundle()
    # Versions are only made by publishing, so the newest is the published one.
    versions = list(PlanVersion.objects.filter(plan__student=student).order_by("-number")[:3])
    if versions:
        doc = versions[0].document
        bundle.version, bundle.plan = versions[0].number, doc
        bundle.objectives = [o["text"] for o in doc["objectives"]]
        pacing = doc["pacing"]
        bundle.pacing = f"{pacing['weekly_minutes']} minutes a week in {pacing['sessions_per_week']} sessions"
        bundle.curricula = doc["curricula"]
        bundle.milestones = [
            (m["title"], date.fromisoformat(m["due"]), "plan")
            for m in doc["milestones"]
            if date.fromisoformat(m["due"]) >= today
        ][:3]
    days = list(
        DailyPerformance.objects.filter(
            student=student, date__gt=today - timedelta(days=MASTERY_WINDOW_DAYS), date__lte=today
        )
        .order_by("date")
        .values_list("date", "study_minutes", "mastery", "checked_in")
    )
    measured = [mastery for _, _, mastery, _ in days if mastery is not None]
    if measured:
        bundle.mastery_now = measured[-1]
        bundle.mastery_change = measured[-1] - measured[0] if len(measured) > 1 else None
    week = [row for row in days if row[0] > today - timedelta(days=7)]
    bundle.minutes_7d = sum(row[1] for row in week)
    bundle.checkins_7d = sum(1 for row in week if row[3])
    bundle.adjustments = [
        f"v{v.number} {v.published_at:%d %b}: {'; '.join(v.changes) or v.rationale}" for v in versions
    ]
    drafts = PlanDraft.objects.filter(
        plan__student=student, state__in=PlanDraft.ACTIVE, expires_at__gt=timezone.now()
    ).order_by("-created_at")
    bundle.adjustments += [f"open draft: {'; '.join(schema_summary(d))}" for d in drafts[:3]]
    platform = StudyPlanProgress.objects.filter(student=student, completed_on__isnull=True, due_on__gte=today)
    bundle.milestones += [(m.title, m.due_on, "platform") for m in platform.order_by("due_on")[:3]]
    bundle.milestones.sort(key=lambda item: item[1])
    bundle.last_synced_at = (
        StudentSyncState.objects.filter(student=student).values_list("last_synced_at", flat=True).first()
    )
    return bundle


def conversation(student: Student, teacher: Any) -> list[ChatMessage]:
    """The last messages, each tutor answer with its proposals (two queries)."""
    messages = ChatMessage.objects.filter(student=student, teacher=teacher).order_by("-created_at", "-pk")
    proposals = Prefetch("proposals", queryset=ToolProposal.objects.select_related("decided_by"))
    return list(reversed(messages.select_related("draft").prefetch_related(proposals)[:RECENT_MESSAGES]))


def get_proposal_for_user(user: User, pk: int) -> ToolProposal:
    """A proposal about a student the user reaches (classroom.access), else 404."""
    proposals = ToolProposal.objects.filter(student__in=students_for(user))
    return get_object_or_404(proposals.select_related("student", "decided_by"), pk=pk)


def staff_names(student: Student, by: User) -> StaffNames:
    """The people a prompt about the student may name, as roles (one query): the teacher asking,
    and the student's other teachers and whoever published, approved or drafted their plan or
    owns one of their schedules."""
    versions = PlanVersion.objects.filter(plan__student=student)
    others = (
        User.objects.filter(
            Q(
                pk__in=TeacherAssignment.objects.filter(school_class__enrollments__student=student).values(
                    "teacher"
                )
            )
            | Q(pk__in=versions.values("published_by"))
            | Q(pk__in=versions.filter(approved_by__isnull=False).values("approved_by"))
            | Q(pk__in=PlanDraft.objects.filter(plan__student=student).values("author"))
            | Q(pk__in=ScheduledTask.objects.filter(student=student).values("owner"))
        )
        .exclude(pk=by.pk)
        .order_by("pk")
    )
    return StaffNames.of([(by, ROLE_ASKING), *((user, ROLE_OTHER) for user in others)])
