"""The dispatcher: due scheduled tasks, each run exactly once, through the automation controls.

1. Claim: in one transaction, lock a batch of due tasks (`SELECT ... FOR UPDATE SKIP LOCKED` on
   PostgreSQL, so several workers never take the same task), give each a TaskRun for its due time
   (unique per task and time) and move its `next_run_at` to the first time after now (croniter in
   the task's time zone): a run missed during downtime runs once, not once per missed slot.
2. Decide, outside that transaction, reading the controls afresh for every run (a flip applies
   to the next due task): the kill switch, the per-student pause, proactiveness off, calibration
   (suppressed types), the approval queue for high-impact kinds.
3. Compose (LLM gateway, or the kind's template when there is no model), filtered and redacted;
   in shadow mode record the decision and the message and send nothing; else send through the
   platform dispatcher with an idempotency key derived from the run, so a retry sends once.
4. Record the run (status, duration, output, error) and an audit event with its rationale, the
   source data and the model call it used.
A run left claimed by a worker that died is taken again after `PROACTIVE_RECLAIM_MINUTES`; its
idempotency key is the same, so the platform still sends it once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from queue import Empty, Queue

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from audit.models import ActivityEvent
from audit.services import record
from classroom.models import DailyPerformance, User
from classroom.platform.client import PlatformClient
from classroom.platform.dispatch import DispatchError, dispatch_send
from tutor.llm.gateway import FallbackAnswer, complete
from tutor.llm.pseudonyms import Pseudonyms
from tutor.models import ProactivenessSettings, ScheduledTask, TaskRun
from tutor.proactive.services import SYSTEM_PROACTIVE, require_teacher_of, settings_peek, switches
from tutor.proactive.timing import next_after

SYSTEM = """You write one short message (at most two sentences) from a tutor to a learner, called
{pseudonym}. Warm, specific, never pushy; no links, no personal data. Kind of message: {kind}."""


@dataclass
class PassReport:
    claimed: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    lateness_ms: list[int] = field(default_factory=list)

    def count(self, status: str) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1


def run_due_tasks(*, now: datetime | None = None) -> PassReport:
    """One dispatcher pass: everything due at `now` (and runs left claimed by a dead worker).
    One platform client serves the whole pass (its connections kept alive; made only when there
    is something to send), and the claimed runs are processed by `PROACTIVE_CONCURRENCY` threads,
    each with its own database connection."""
    now = now or timezone.now()
    report = PassReport()
    client: PlatformClient | None = None
    try:
        while True:
            runs = _claim(now)
            report.claimed += len(runs)
            if runs and client is None:
                client = PlatformClient()
            for run, status in _process_all(runs, client):
                report.count(status)
                report.lateness_ms.append(int((run.started_at - run.scheduled_for).total_seconds() * 1000))
            if len(runs) < settings.PROACTIVE_BATCH:
                break
        stale = list(
            TaskRun.objects.filter(
                status=TaskRun.Status.CLAIMED,
                started_at__lt=now - timedelta(minutes=settings.PROACTIVE_RECLAIM_MINUTES),
            ).select_related("task__student__organisation", "task__pattern", "task__owner")
        )
        if stale and client is None:
            client = PlatformClient()
        for _, status in _process_all(stale, client):
            report.count(status)
    finally:
        if client is not None:
            client.close()
    return report


def _process_all(runs: list[TaskRun], client: PlatformClient | None) -> list[tuple[TaskRun, str]]:
    workers = min(settings.PROACTIVE_CONCURRENCY, len(runs))
    if workers <= 1:
        return [(run, process(run, client=client)) for run in runs]
    pending: Queue[TaskRun] = Queue()
    for run in runs:
        pending.put(run)
    done: list[tuple[TaskRun, str]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            while True:
                try:
                    run = pending.get_nowait()
                except Empty:
                    return
                done.append((run, process(run, client=client)))
        except BaseException as error:  # noqa: BLE001 - re-raised in the calling thread below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, name=f"dispatch-{n}") for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return done


def _claim(now: datetime) -> list[TaskRun]:
    with transaction.atomic():
        tasks = list(
            ScheduledTask.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=ScheduledTask.Status.ACTIVE, next_run_at__lte=now)
            .select_related("student__organisation", "pattern", "owner")
            .order_by("next_run_at")[: settings.PROACTIVE_BATCH]
        )
        runs = []
        started = timezone.now()
        for task in tasks:
            runs.append(TaskRun(task=task, scheduled_for=task.next_run_at, started_at=started))
            task.last_run_at = task.next_run_at
            task.next_run_at = next_after(task.cron, task.time_zone, now) if task.cron else None
            if task.next_run_at is None:
                task.status = ScheduledTask.Status.DONE
        ScheduledTask.objects.bulk_update(tasks, ["last_run_at", "next_run_at", "status"])
        TaskRun.objects.bulk_create(runs)
    return runs


def process(run: TaskRun, *, approved: bool = False, client: PlatformClient | None = None) -> str:
    """Decide, compose and send (or not) one claimed run; returns its final status."""
    started = time.monotonic()
    task = run.task
    on = switches(task.student.organisation_id)
    status, rationale = _decide(task, approved=approved, on=on)
    message, llm_event, dispatch, error = "", None, None, ""
    if status is None:
        message, llm_event, blocked = _compose(task)
        if blocked:
            status, error = TaskRun.Status.FAILED, f"the content filter withheld the message: {blocked}"
        elif on.get("shadow_mode"):
            status, rationale = TaskRun.Status.SHADOW, "shadow mode: decided and recorded, not sent"
        else:
            status, dispatch, error = _send(run, message, client)
    run.status, run.output, run.rationale, run.error = status, message, rationale or _why(task), error
    run.llm_event_id, run.dispatch = llm_event, dispatch
    run.duration_ms = int((time.monotonic() - started) * 1000)
    with transaction.atomic():
        run.save(
            update_fields=[
                "status",
                "output",
                "rationale",
                "error",
                "llm_event_id",
                "dispatch",
                "duration_ms",
            ]
        )
        record(
            verb=f"proactive.{status}",
            actor_name=SYSTEM_PROACTIVE,
            target=run,
            source="worker",
            status=ActivityEvent.Status.FAILED
            if status == TaskRun.Status.FAILED
            else ActivityEvent.Status.PENDING
            if status == TaskRun.Status.PENDING_APPROVAL
            else ActivityEvent.Status.SUCCEEDED,
            why=run.rationale,
            details={
                "task_id": task.pk,
                "kind": task.kind,
                "scheduled_for": run.scheduled_for.isoformat(),
                "lateness_ms": int((run.started_at - run.scheduled_for).total_seconds() * 1000),
                "pattern": {"kind": task.pattern.kind, "evidence": task.pattern.evidence}
                if task.pattern
                else None,
                "llm_event_id": llm_event,
                "dispatch_id": dispatch.pk if dispatch else None,
                "error": error or None,
            },
        )
    return status


def _decide(task: ScheduledTask, *, approved: bool, on: dict[str, bool]) -> tuple[str | None, str]:
    """What the controls say before anything is composed: a status that stops here, or None."""
    if on.get("kill_switch"):
        return TaskRun.Status.SKIPPED, "the global kill switch is on"
    prefs = settings_peek(task.student)
    if prefs.paused:
        return TaskRun.Status.SKIPPED, "proactive messages are paused for this learner"
    if prefs.level == ProactivenessSettings.Level.OFF:
        return TaskRun.Status.SKIPPED, "the learner's proactiveness is off"
    if task.kind in prefs.suppressed_types:
        return (
            TaskRun.Status.SUPPRESSED,
            f"the learner dismissed {task.get_kind_display().lower()}s repeatedly",
        )
    if task.kind in settings.PROACTIVE_APPROVAL_KINDS and not approved:
        return (
            TaskRun.Status.PENDING_APPROVAL,
            f"{task.get_kind_display()} is high impact: the teacher approves it",
        )
    return None, ""


def _why(task: ScheduledTask) -> str:
    basis = f"; it rests on the pattern: {task.pattern.description}" if task.pattern else ""
    return f"{task.get_kind_display()} scheduled by {task.owner.get_username()}: {task.intent[:200]}{basis}"


def _template(task: ScheduledTask) -> str:
    """The message when there is no model: the teacher's intent, in the kind's frame."""
    if task.kind == ScheduledTask.Kind.WEEKLY_REPORT:
        week = DailyPerformance.objects.filter(
            student=task.student, date__gt=timezone.localdate() - timedelta(days=7)
        ).aggregate(minutes=Sum("study_minutes"))
        text = f"Your week: {week['minutes'] or 0} minutes of study. {task.intent}"
    else:
        frames = {
            "reminder": "Reminder: {}",
            "check_in": "Checking in: {}",
            "assignment": "New assignment: {}",
        }
        text = frames.get(task.kind, "{}").format(task.intent)
    if task.pattern:
        text += f" (I noticed: {task.pattern.description[0].lower()}{task.pattern.description[1:]}.)"
    return text


def _compose(task: ScheduledTask) -> tuple[str, int | None, str]:
    student = task.student
    pseudonyms = Pseudonyms.for_student(student)
    basis = f"\nIt rests on this pattern: {task.pattern.description}." if task.pattern else ""
    reply = complete(
        purpose=f"compose a scheduled {task.kind}",
        system=SYSTEM.format(pseudonym=pseudonyms.pseudonym_for(student.pk), kind=task.get_kind_display()),
        messages=[{"role": "user", "content": f"The teacher's intent: {task.intent}{basis}"}],
        fallback=lambda: FallbackAnswer(text=_template(task)),
        actor=SYSTEM_PROACTIVE,
        organisation_id=student.organisation_id,
        student_id=student.pk,
        pseudonyms=pseudonyms,
    )
    blocked = "; ".join(note for note in reply.filtered if note.startswith("blocked"))
    return pseudonyms.unmask(reply.text), reply.event_id or None, blocked


def _send(run: TaskRun, message: str, client: PlatformClient | None) -> tuple[str, object, str]:
    task = run.task
    try:
        log = dispatch_send(
            student=task.student,
            kind="assignment" if task.kind == ScheduledTask.Kind.ASSIGNMENT else "nudge",
            payload={"message": message, "type": task.kind},
            reference=f"task-run:{run.pk}",
            actor_name=SYSTEM_PROACTIVE,
            client=client,
        )
    except DispatchError as error:
        return TaskRun.Status.FAILED, error.log, f"{error} ({error.hint})"
    return TaskRun.Status.SENT, log, ""


def approve(*, run: TaskRun, by: User) -> str:
    """A teacher approves a run waiting in the approval queue; the other controls still apply."""
    require_teacher_of(by, run.task.student)
    with transaction.atomic():
        claimed = TaskRun.objects.filter(pk=run.pk, status=TaskRun.Status.PENDING_APPROVAL).update(
            status=TaskRun.Status.CLAIMED
        )
        if not claimed:
            raise ValueError("this run is not waiting for approval")
        record(verb="proactive.approved", actor=by, target=run, why="approved by the teacher")
    run.refresh_from_db()
    return process(run, approved=True)
