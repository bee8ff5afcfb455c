"""Every write of the proactive engine except the dispatcher's: schedules, the automation
switches, per-student pause and proactiveness, engagement with its calibration, and patterns."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import record
from classroom import inputs
from classroom.access import can_act_for
from classroom.models import DailyPerformance, Student, User
from tutor.models import (
    AutomationSwitch,
    EngagementEvent,
    ObservedPattern,
    ProactivenessSettings,
    ScheduledTask,
)
from tutor.proactive import patterns
from tutor.proactive.timing import ScheduleInvalid, check_cron, check_one_off, next_after, zone

SYSTEM_PROACTIVE = "system:proactive"


def require_teacher_of(user: User, student: Student) -> None:
    if not can_act_for(user, student):
        raise PermissionDenied("only the student's teachers and organisation admins schedule for them")


@transaction.atomic
def schedule_create(
    *,
    by: User,
    student: Student,
    kind: str,
    intent: str,
    cron: str = "",
    run_at: datetime | None = None,
    time_zone: str = "",
    pattern: ObservedPattern | None = None,
    now: datetime | None = None,
) -> ScheduledTask:
    """A recurring (cron) or one-off (run_at) task; its first due time computed in its time zone."""
    require_teacher_of(by, student)
    now = now or timezone.now()
    if kind not in ScheduledTask.Kind.values:
        raise ScheduleInvalid("kind", f"must be one of {', '.join(ScheduledTask.Kind.values)}; got {kind!r}")
    intent = (intent or "").strip()
    if len(intent) < 3:
        raise ScheduleInvalid("intent", "say what the message should say or ask")
    if len(intent) > inputs.INTENT:
        raise ScheduleInvalid("intent", inputs.too_long(len(intent), inputs.INTENT))
    time_zone = time_zone or settings.TIME_ZONE
    zone(time_zone)
    if bool(cron) == bool(run_at):
        raise ScheduleInvalid("cron", "give either cron (recurring) or run_at (once), not both or neither")
    if cron:
        cron = check_cron(cron)
        first = next_after(cron, time_zone, now)
    else:
        if timezone.is_naive(run_at):
            run_at = timezone.make_aware(run_at, zone(time_zone))
        first = check_one_off(run_at, now)
    task = ScheduledTask.objects.create(
        owner=by,
        student=student,
        kind=kind,
        cron=cron,
        run_at=run_at,
        time_zone=time_zone,
        intent=intent,
        pattern=pattern,
        next_run_at=first,
    )
    record(
        verb="schedule.created",
        actor=by,
        target=task,
        why=intent[:300],
        details={"kind": kind, "cron": cron, "run_at": run_at.isoformat() if run_at else None,
                 "time_zone": time_zone, "next_run_at": first.isoformat(),
                 "pattern_id": pattern.pk if pattern else None},
    )  # fmt: skip
    return task


TRANSITIONS = {
    "pause": (ScheduledTask.Status.ACTIVE, ScheduledTask.Status.PAUSED),
    "resume": (ScheduledTask.Status.PAUSED, ScheduledTask.Status.ACTIVE),
    "cancel": (None, ScheduledTask.Status.CANCELLED),
}


@transaction.atomic
def schedule_manage(
    *, task: ScheduledTask, by: User, action: str, now: datetime | None = None
) -> ScheduledTask:
    """Pause, resume or cancel. Resuming computes the next due time from now: what was missed
    while paused is not sent."""
    if action not in TRANSITIONS:
        raise ScheduleInvalid("action", "must be pause, resume or cancel")
    task = ScheduledTask.objects.select_for_update().select_related("student").get(pk=task.pk)
    require_teacher_of(by, task.student)
    required, target = TRANSITIONS[action]
    if task.status in (ScheduledTask.Status.CANCELLED, ScheduledTask.Status.DONE) or (
        required and task.status != required
    ):
        raise ScheduleInvalid("action", f"cannot {action} a {task.get_status_display().lower()} task")
    now = now or timezone.now()
    task.status = target
    if action == "resume":
        task.next_run_at = next_after(task.cron, task.time_zone, now) if task.cron else max(task.run_at, now)
    task.save(update_fields=["status", "next_run_at"])
    record(verb=f"schedule.{action}d" if action != "cancel" else "schedule.cancelled", actor=by, target=task)
    return task


@transaction.atomic
def switch_set(*, name: str, on: bool, by: User, reason: str = "") -> AutomationSwitch:
    """Flip the kill switch or shadow mode of the admin's organisation (an operator without one:
    of every organisation). The next due task reads it; no restart."""
    if not (by.is_superuser or by.role == User.Role.ORG_ADMIN):
        raise PermissionDenied("only organisation admins flip the automation switches")
    if name not in AutomationSwitch.Name.values:
        raise ValueError(f"name must be one of {', '.join(AutomationSwitch.Name.values)}")
    reason = inputs.check_text(reason, field="reason", limit=inputs.REASON)
    switch, _ = AutomationSwitch.objects.select_for_update().get_or_create(
        organisation_id=by.organisation_id, name=name
    )
    switch.on, switch.changed_by, switch.changed_at, switch.reason = on, by, timezone.now(), reason
    switch.save(update_fields=["on", "changed_by", "changed_at", "reason"])
    record(
        verb=f"automation.{name}_{'on' if on else 'off'}",
        actor=by,
        target=switch,
        organisation_id=by.organisation_id,
        why=reason or f"{switch.get_name_display()} turned {'on' if on else 'off'}",
        details={"scope": "organisation" if by.organisation_id else "every organisation"},
    )
    return switch


def switches(organisation_id: int | None) -> dict[str, bool]:
    """Which switches are on for an organisation: its own, or the operators' for everyone."""
    return switches_for({organisation_id})[organisation_id]


def switches_for(organisation_ids: set[int | None]) -> dict[int | None, dict[str, bool]]:
    """`switches` of several organisations in one query (the dispatcher's batch)."""
    on: dict[int | None, dict[str, bool]] = {org: {} for org in organisation_ids}
    rows = AutomationSwitch.objects.filter(
        Q(organisation_id__in=[org for org in organisation_ids if org is not None])
        | Q(organisation__isnull=True)
    ).values_list("organisation_id", "name", "on")
    for owner, name, is_on in rows:
        for org in on if owner is None else [owner]:
            on[org][name] = on[org].get(name, False) or is_on
    return on


def settings_peek(student: Student) -> ProactivenessSettings:
    """The learner's settings for reading: the defaults, unsaved, when they have none yet."""
    return settings_peek_many([student])[student.pk]


def settings_peek_many(students: list[Student]) -> dict[int, ProactivenessSettings]:
    """`settings_peek` of several learners in one query, by student id."""
    found = {row.student_id: row for row in ProactivenessSettings.objects.filter(student__in=students)}
    return {s.pk: found.get(s.pk) or ProactivenessSettings(student=s) for s in students}


def settings_for(student: Student) -> ProactivenessSettings:
    found, _ = ProactivenessSettings.objects.get_or_create(student=student)
    return found


@transaction.atomic
def student_pause(*, student: Student, by: User, paused: bool) -> ProactivenessSettings:
    require_teacher_of(by, student)
    row = ProactivenessSettings.objects.select_for_update().get(pk=settings_for(student).pk)
    row.paused, row.changed_by, row.changed_at = paused, by, timezone.now()
    row.save(update_fields=["paused", "changed_by", "changed_at"])
    record(verb=f"automation.student_{'paused' if paused else 'resumed'}", actor=by, target=student)
    return row


def _require_self_or_teacher(user: User, student: Student) -> None:
    """The learner themselves, or one of their teachers."""
    if student.user_id is not None and student.user_id == user.pk:
        return
    require_teacher_of(user, student)


@transaction.atomic
def proactiveness_adjust(*, student: Student, by: User, level: str) -> ProactivenessSettings:
    """Set how proactive the tutor is with the learner (the learner, or a teacher: the tutor only
    proposes it, and the teacher who confirms it sets it)."""
    _require_self_or_teacher(by, student)
    if level not in ProactivenessSettings.Level.values:
        raise ScheduleInvalid("level", f"must be one of {', '.join(ProactivenessSettings.Level.values)}")
    row = ProactivenessSettings.objects.select_for_update().get(pk=settings_for(student).pk)
    row.level, row.changed_by, row.changed_at = level, by, timezone.now()
    row.save(update_fields=["level", "changed_by", "changed_at"])
    record(verb="proactiveness.adjusted", actor=by, target=student, why=f"level {level}")
    return row


@transaction.atomic
def engagement_record(
    *,
    student: Student,
    suggestion_type: str,
    response: str,
    run: Any = None,
    actor_name: str = SYSTEM_PROACTIVE,
) -> EngagementEvent:
    """Record how the learner answered; the `PROACTIVE_DISMISSALS_TO_SUPPRESS`-th dismissal of a
    type in a row (since its last acceptance or un-suppression) suppresses that type for them."""
    if response not in EngagementEvent.Response.values:
        raise ScheduleInvalid("response", "must be accepted, dismissed or ignored")
    if suggestion_type not in ScheduledTask.Kind.values:
        raise ScheduleInvalid("suggestion_type", f"must be one of {', '.join(ScheduledTask.Kind.values)}")
    event = EngagementEvent.objects.create(
        student=student, suggestion_type=suggestion_type, response=response, run=run
    )
    record(
        verb="engagement.recorded",
        actor_name=actor_name,
        target=event,
        organisation_id=student.organisation_id,
        student_id=student.pk,
        why=f"{suggestion_type} {response}",
    )
    row = ProactivenessSettings.objects.select_for_update().get(pk=settings_for(student).pk)
    if response != EngagementEvent.Response.DISMISSED or suggestion_type in row.suppressed_types:
        return event
    threshold = settings.PROACTIVE_DISMISSALS_TO_SUPPRESS
    answers = EngagementEvent.objects.filter(student=student, suggestion_type=suggestion_type).exclude(
        response=EngagementEvent.Response.IGNORED
    )
    reset = row.calibration_reset.get(suggestion_type)
    if reset:
        answers = answers.filter(at__gt=datetime.fromisoformat(reset))
    recent = list(answers.order_by("-at", "-pk").values_list("response", flat=True)[:threshold])
    if len(recent) == threshold and all(r == EngagementEvent.Response.DISMISSED for r in recent):
        row.suppressed_types = [*row.suppressed_types, suggestion_type]
        row.save(update_fields=["suppressed_types"])
        record(
            verb="proactiveness.suppressed",
            actor_name=SYSTEM_PROACTIVE,
            target=student,
            why=f"{threshold} dismissals of {suggestion_type} in a row",
            details={"suggestion_type": suggestion_type, "threshold": threshold},
        )
    return event


@transaction.atomic
def suppression_undo(*, student: Student, suggestion_type: str, by: User) -> ProactivenessSettings:
    """The learner or teacher takes a suppression back; the count of dismissals starts again."""
    _require_self_or_teacher(by, student)
    row = ProactivenessSettings.objects.select_for_update().get(pk=settings_for(student).pk)
    if suggestion_type not in row.suppressed_types:
        raise ScheduleInvalid("suggestion_type", f"{suggestion_type!r} is not suppressed")
    row.suppressed_types = [t for t in row.suppressed_types if t != suggestion_type]
    row.calibration_reset = {**row.calibration_reset, suggestion_type: timezone.now().isoformat()}
    row.changed_by, row.changed_at = by, timezone.now()
    row.save(update_fields=["suppressed_types", "calibration_reset", "changed_by", "changed_at"])
    record(verb="proactiveness.unsuppressed", actor=by, target=student, why=suggestion_type)
    return row


@transaction.atomic
def pattern_record(
    *,
    student: Student,
    kind: str,
    description: str,
    evidence: dict[str, Any],
    confidence: float,
    now: datetime | None = None,
) -> ObservedPattern:
    """Upsert a pattern: first seen stays, last seen, description, evidence and confidence move."""
    if not 0 <= confidence <= 1:
        raise ScheduleInvalid("confidence", "must be between 0 and 1")
    now = now or timezone.now()
    before = (
        ObservedPattern.objects.filter(student=student, kind=kind).values("evidence", "confidence").first()
    )
    pattern, created = ObservedPattern.objects.update_or_create(
        student=student,
        kind=kind,
        defaults={
            "description": description[:300],
            "evidence": evidence,
            "confidence": confidence,
            "last_seen": now,
        },
        create_defaults={
            "description": description[:300],
            "evidence": evidence,
            "confidence": confidence,
            "first_seen": now,
            "last_seen": now,
        },
    )
    # Seen again unchanged: only last_seen moves, which needs no event; new evidence does.
    if created or before != {"evidence": evidence, "confidence": confidence}:
        record(
            verb="pattern.observed" if created else "pattern.updated",
            actor_name=SYSTEM_PROACTIVE,
            target=student,
            why=description[:300],
            details={"kind": kind, "evidence": evidence, "confidence": confidence},
        )
    return pattern


def patterns_detect(*, student: Student, now: datetime | None = None) -> list[ObservedPattern]:
    """Run the rule-based detector over the learner's mirrors and record what it finds."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    facts = [
        patterns.Fact(day, minutes, confidence)
        for day, minutes, confidence in DailyPerformance.objects.filter(
            student=student, date__gt=today - timedelta(days=patterns.WINDOW_DAYS), date__lte=today
        )
        .order_by("date")
        .values_list("date", "study_minutes", "confidence")
    ]
    return [
        pattern_record(
            student=student,
            kind=found.kind,
            description=found.description,
            evidence=found.evidence,
            confidence=found.confidence,
            now=now,
        )
        for found in patterns.detect(facts, today=today)
    ]
