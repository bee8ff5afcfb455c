"""Reads of the proactive engine: a learner's profile, schedules with their runs, the switches,
and the approval source the audit notifier watches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from audit.notify import PendingApproval
from classroom.access import students_for
from classroom.models import Student, User
from tutor.models import AutomationSwitch, ObservedPattern, ScheduledTask, TaskRun
from tutor.proactive.services import settings_peek


def schedules_for(user: User) -> QuerySet[ScheduledTask]:
    """The schedules of the students a user reaches (one scoping rule: classroom.access)."""
    return ScheduledTask.objects.filter(student__in=students_for(user)).select_related(
        "student", "owner", "pattern"
    )


def profile(student: Student) -> dict[str, Any]:
    """ "What do you know about me?": patterns with their evidence, settings, schedules."""
    prefs = settings_peek(student)
    return {
        "student_id": student.pk,
        "patterns": [
            {
                "kind": p.kind,
                "description": p.description,
                "evidence": p.evidence,
                "confidence": p.confidence,
                "first_seen": p.first_seen,
                "last_seen": p.last_seen,
            }
            for p in ObservedPattern.objects.filter(student=student)
        ],
        "settings": settings_json(prefs),
        "schedules": [
            schedule_json(task)
            for task in ScheduledTask.objects.filter(student=student)
            .exclude(status=ScheduledTask.Status.CANCELLED)
            .select_related("owner", "pattern")
        ],
    }


def settings_json(prefs: Any) -> dict[str, Any]:
    return {
        "level": prefs.level,
        "suppressed_types": prefs.suppressed_types,
        "paused": prefs.paused,
        "changed_at": prefs.changed_at,
    }


def schedule_json(task: ScheduledTask) -> dict[str, Any]:
    return {
        "id": task.pk,
        "student_id": task.student_id,
        "kind": task.kind,
        "cron": task.cron or None,
        "run_at": task.run_at,
        "time_zone": task.time_zone,
        "intent": task.intent,
        "status": task.status,
        "next_run_at": task.next_run_at,
        "last_run_at": task.last_run_at,
        "owner": task.owner.get_username(),
        "pattern": task.pattern.description if task.pattern else None,
    }


def run_json(run: TaskRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "scheduled_for": run.scheduled_for,
        "started_at": run.started_at,
        "duration_ms": run.duration_ms,
        "status": run.status,
        "output": run.output,
        "rationale": run.rationale,
        "error": run.error or None,
    }


def switch_states(organisation_id: int | None) -> list[AutomationSwitch]:
    """Both switches of an organisation, off where never flipped, with who flipped them and when."""
    rows = AutomationSwitch.objects.filter(organisation_id=organisation_id).select_related("changed_by")
    found = {row.name: row for row in rows}
    return [found.get(name) or AutomationSwitch(name=name) for name in AutomationSwitch.Name.values]


def pending_approvals(older_than: datetime) -> Iterator[PendingApproval]:
    """Runs of high-impact kinds waiting for a teacher (settings.AUDIT_APPROVAL_SOURCES)."""
    for run in TaskRun.objects.filter(
        status=TaskRun.Status.PENDING_APPROVAL, started_at__lte=older_than
    ).select_related("task__student"):
        student = run.task.student
        yield PendingApproval(
            key=f"tutor.taskrun:{run.pk}",
            organisation_id=student.organisation_id,
            summary=f"{run.task.get_kind_display()} for {student.full_name}: {run.task.intent[:120]}",
            requested_at=run.started_at,
            url=f"/students/{student.pk}/schedules/",
        )
