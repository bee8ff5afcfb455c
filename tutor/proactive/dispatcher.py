"""The dispatcher: due scheduled tasks, each run exactly once, through the automation controls.

A pass works in batches of `PROACTIVE_BATCH` runs, each step one statement or one transaction for
the whole batch rather than a handful per run (1,000 runs due at one minute must reach the
platform within seconds, and three audit events a run, each taking its organisation's chain head
on its own, were most of a run's cost):

1. Claim: in one transaction, lock a batch of due tasks (`SELECT ... FOR UPDATE SKIP LOCKED` on
   PostgreSQL, so several workers never take the same task), give each a TaskRun for its due time
   (unique per task and time) and move its `next_run_at` to the first time after now (croniter in
   the task's time zone): a run missed during downtime runs once, not once per missed slot.
2. Decide, reading the controls afresh for the batch (one query for the switches of its
   organisations, one for its learners' settings): the kill switch, the per-student pause,
   proactiveness off, calibration (suppressed types), the approval queue for high-impact kinds.
3. Compose (LLM gateway, or the kind's template when there is no model), filtered and redacted,
   and store each message on its run before anything is sent: a run taken again after a crash
   sends what it composed the first time, so its idempotency key (which covers the message) is
   the same and the platform sends it once.
4. Read the controls again (a switch flipped while the batch was composed stops its sends), then
   in shadow mode record the decision and the message and send nothing; else send through the
   platform dispatcher (`dispatch_many`, the platform client's threads) with an idempotency key
   derived from the run.
5. Record every run of the batch (status, duration, output, error) and its audit event, with
   its rationale, the source data and the model call it used, in one transaction.
A run left claimed by a worker that died is taken again after `PROACTIVE_RECLAIM_MINUTES`.

A one-off whose send fails (the platform is down) is not lost: its task becomes active again with
its next attempt after a growing wait (1, 2, 4 … minutes, at most `RETRY_MAX_WAIT`), and the next
claim takes the same run, so the same message goes with the same idempotency key and the platform
sends it once. `PROACTIVE_ONE_OFF_DEADLINE_HOURS` after its due time it is given up: the run and
the task are marked not delivered and a high-severity failure says what did not reach whom. A
recurring task's failed run is not retried: its next due time sends a new message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from audit import context
from audit.models import ActivityEvent, Failure
from audit.services import new_event, record, record_events, record_failure
from classroom import bulk
from classroom.models import DailyPerformance, User
from classroom.platform.client import PlatformClient
from classroom.platform.dispatch import Outgoing, dispatch_many
from tutor.chat.prompts import DATA_RULE, StaffNames, data_section
from tutor.llm.gateway import Ask, FallbackAnswer, complete_many
from tutor.llm.pseudonyms import Pseudonyms
from tutor.models import ProactivenessSettings, ScheduledTask, TaskRun, WorkerHeartbeat
from tutor.proactive.services import (
    SYSTEM_PROACTIVE,
    require_teacher_of,
    settings_peek_many,
    switches_for,
)
from tutor.proactive.timing import next_after, zone

SYSTEM = """You write one short message (at most two sentences) from a tutor to a learner, called
{pseudonym}. Warm, specific, never pushy; no links, no personal data. Kind of message: {kind}.
The data section gives the teacher's intent for the message and what it rests on: write the message
that intent describes. {data_rule}"""
# The learner reads the message: its teacher, named in the intent, is "your teacher" to them.
ROLE_FOR_LEARNER = "your teacher"

logger = logging.getLogger(__name__)
HEARTBEAT_EVERY = timedelta(seconds=30)
# Wake just after a due time, not just before it; look again this soon at a due task held elsewhere.
WAKE_MARGIN_SECONDS = 0.005
HELD_ELSEWHERE_SECONDS = 0.5
SHADOW_RATIONALE = "shadow mode: decided and recorded, not sent"
OUTCOME_FIELDS = (
    "status",
    "output",
    "rationale",
    "error",
    "llm_event_id",
    "dispatch",
    "duration_ms",
    "attempts",
)
EVENT_STATUS = {
    TaskRun.Status.FAILED: ActivityEvent.Status.FAILED,
    TaskRun.Status.PENDING_APPROVAL: ActivityEvent.Status.PENDING,
}
# A one-off's failed send is tried again after these waits, doubling, until its deadline.
RETRY_FIRST_WAIT = timedelta(minutes=1)
RETRY_MAX_WAIT = timedelta(minutes=60)


@dataclass
class PassReport:
    claimed: int = 0  # runs the pass took: due now, or left claimed by a worker that died
    by_status: dict[str, int] = field(default_factory=dict)
    # Per run: from its due time to when its batch's outcomes were recorded.
    lateness_ms: list[int] = field(default_factory=list)

    def count(self, status: str) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1


def run_due_tasks(*, now: datetime | None = None) -> PassReport:
    """One dispatcher pass: everything due at `now`, then the runs left claimed by a worker that
    died. One platform client serves the whole pass (its connections kept alive; made only when
    the pass has something to do)."""
    now = now or timezone.now()
    report = PassReport()
    client: PlatformClient | None = None
    try:
        for claim in (_claim, _reclaim):
            while True:
                runs = claim(now)
                if runs and client is None:
                    client = PlatformClient()
                report.claimed += len(runs)
                _tally(report, runs, process(runs, client=client, now=now))
                if len(runs) < settings.PROACTIVE_BATCH:
                    break
    finally:
        if client is not None:
            client.close()
    return report


def _tally(report: PassReport, runs: list[TaskRun], statuses: list[str]) -> None:
    recorded = timezone.now()
    for run, status in zip(runs, statuses, strict=True):
        report.count(status)
        report.lateness_ms.append(_ms(recorded - run.scheduled_for))


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


def serve(stop: threading.Event, *, on_pass: Callable[[PassReport], None] = lambda report: None) -> None:
    """The dispatcher process: a pass, then sleep until the earliest active task falls due (at
    most `PROACTIVE_POLL_SECONDS`, so schedules created or moved meanwhile are seen), until
    `stop` is set; a pass under way is finished first. Every half minute or so it writes its
    heartbeat, which /healthz reports. Several may run at once (they claim with SKIP LOCKED)."""
    beat_at = None
    while not stop.is_set():
        try:
            started = timezone.now()
            with context.bind(source="worker"):  # each pass its own correlation id
                report = run_due_tasks(now=started)
            on_pass(report)
            now = timezone.now()
            if beat_at is None or now - beat_at >= HEARTBEAT_EVERY:
                WorkerHeartbeat.beat(WorkerHeartbeat.dispatcher_cluster())
                beat_at = now
            wait = _until_next_due(now, started)
        except DatabaseError:
            # The database went away (a restart, a failover): a new connection next time. What a
            # pass had claimed is taken again after PROACTIVE_RECLAIM_MINUTES, and sent once.
            logger.exception("dispatcher pass failed; trying again in %s s", settings.PROACTIVE_POLL_SECONDS)
            connection.close()
            wait = settings.PROACTIVE_POLL_SECONDS
        stop.wait(wait)


def _until_next_due(now: datetime, pass_started: datetime) -> float:
    """Seconds to sleep: until the earliest due time (the index on status and next_run_at), at
    most the poll period; none for a task that fell due while the pass ran. One that was due
    when the pass began and is due still is a task another dispatcher holds: look again a moment
    later rather than spin."""
    poll = settings.PROACTIVE_POLL_SECONDS
    due = (
        ScheduledTask.objects.filter(status=ScheduledTask.Status.ACTIVE, next_run_at__isnull=False)
        .order_by("next_run_at")
        .values_list("next_run_at", flat=True)
        .first()
    )
    if due is None:
        return poll
    if due <= pass_started:
        return HELD_ELSEWHERE_SECONDS
    return min(poll, max(0.0, (due - now).total_seconds() + WAKE_MARGIN_SECONDS))


def _claim(now: datetime) -> list[TaskRun]:
    with transaction.atomic():
        tasks = list(
            ScheduledTask.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=ScheduledTask.Status.ACTIVE, next_run_at__lte=now)
            .select_related("student__organisation", "pattern", "owner")
            .order_by("next_run_at")[: settings.PROACTIVE_BATCH]
        )
        retried = _runs_to_retry([task for task in tasks if task.is_retrying])
        runs, fresh = [], []
        started = timezone.now()
        for task in tasks:
            run = retried.get(task.pk)
            if run is None:
                run = TaskRun(task=task, scheduled_for=task.next_run_at, started_at=started)
                fresh.append(run)
            else:
                run.task, run.status, run.started_at = task, TaskRun.Status.CLAIMED, started
            runs.append(run)
            task.last_run_at = task.next_run_at
            task.next_run_at = next_after(task.cron, task.time_zone, now) if task.cron else None
            if task.next_run_at is None:
                task.status = ScheduledTask.Status.DONE
        bulk.update(tasks, ["last_run_at", "next_run_at", "status"])
        TaskRun.objects.bulk_create(fresh)
        if retried:
            bulk.update(list(retried.values()), ["status", "started_at"])
    return runs


def _runs_to_retry(tasks: list[ScheduledTask]) -> dict[int, TaskRun]:
    """The run of each one-off waiting for another attempt (one query, none when there is none):
    it is taken again, not replaced, so its message and idempotency key stay the same."""
    if not tasks:
        return {}
    runs = TaskRun.objects.filter(task__in=tasks, status=TaskRun.Status.FAILED).order_by("-scheduled_for")
    found: dict[int, TaskRun] = {}
    for run in runs:
        found.setdefault(run.task_id, run)
    return found


def _reclaim(now: datetime) -> list[TaskRun]:
    """Runs claimed more than `PROACTIVE_RECLAIM_MINUTES` ago and never finished (their worker
    died), claimed again the same way (SKIP LOCKED, a new claim time), so two dispatchers never
    both take one."""
    with transaction.atomic():
        runs = list(
            TaskRun.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                status=TaskRun.Status.CLAIMED,
                started_at__lt=now - timedelta(minutes=settings.PROACTIVE_RECLAIM_MINUTES),
            )
            .select_related("task__student__organisation", "task__pattern", "task__owner")
            .order_by("started_at", "pk")[: settings.PROACTIVE_BATCH]
        )
        started = timezone.now()
        for run in runs:
            run.started_at = started
        bulk.update(runs, ["started_at"])
    return runs


@dataclass
class _Controls:
    """What the switches and the learners' settings say, read once for a batch."""

    on: dict[int | None, dict[str, bool]]
    prefs: dict[int, ProactivenessSettings]

    @classmethod
    def read(cls, runs: list[TaskRun]) -> _Controls:
        students = list({run.task.student_id: run.task.student for run in runs}.values())
        return cls(
            on=switches_for({student.organisation_id for student in students}),
            prefs=settings_peek_many(students),
        )

    def switch(self, task: ScheduledTask, name: str) -> bool:
        return self.on[task.student.organisation_id].get(name, False)


def process(
    runs: list[TaskRun],
    *,
    approved: bool = False,
    client: PlatformClient | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Decide, compose and send (or not) a batch of claimed runs; their final statuses, in order.
    `client` is the pass's platform client (without one, the dispatch makes its own); `now` is the
    pass's time, from which a failed one-off's next attempt and its deadline are reckoned."""
    if not runs:
        return []
    now = now or timezone.now()
    started = time.monotonic()
    for run in runs:
        run.status, run.rationale, run.error = TaskRun.Status.CLAIMED, "", ""
    controls = _Controls.read(runs)
    for run in runs:
        _decide(run, controls, approved=approved)
    _compose([run for run in runs if run.status == TaskRun.Status.CLAIMED])

    # The controls again, just before anything is sent: a flip while the batch was composed counts.
    composed = [run for run in runs if run.status == TaskRun.Status.CLAIMED]
    if composed:
        controls = _Controls.read(composed)
        for run in composed:
            _decide(run, controls, approved=approved)
            if run.status == TaskRun.Status.CLAIMED and controls.switch(run.task, "shadow_mode"):
                run.status, run.rationale = TaskRun.Status.SHADOW, SHADOW_RATIONALE
    outgoing = [run for run in runs if run.status == TaskRun.Status.CLAIMED]
    if outgoing:
        _send(outgoing, client, now)
    _finish(runs, started)
    return [run.status for run in runs]


def _decide(run: TaskRun, controls: _Controls, *, approved: bool) -> None:
    """What the controls say before anything is composed or sent: a status that stops the run
    here, with why; a run they let through stays claimed."""
    task = run.task
    prefs = controls.prefs[task.student_id]
    stop: tuple[str, str] | None = None
    if controls.switch(task, "kill_switch"):
        stop = TaskRun.Status.SKIPPED, "the global kill switch is on"
    elif prefs.paused:
        stop = TaskRun.Status.SKIPPED, "proactive messages are paused for this learner"
    elif prefs.level == ProactivenessSettings.Level.OFF:
        stop = TaskRun.Status.SKIPPED, "the learner's proactiveness is off"
    elif task.kind in prefs.suppressed_types:
        stop = (
            TaskRun.Status.SUPPRESSED,
            f"the learner dismissed {task.get_kind_display().lower()}s repeatedly",
        )
    # A run sent before was let through, or approved, then: its retry is not asked again.
    elif task.kind in settings.PROACTIVE_APPROVAL_KINDS and not approved and not run.attempts:
        stop = (
            TaskRun.Status.PENDING_APPROVAL,
            f"{task.get_kind_display()} is high impact: the teacher approves it",
        )
    if stop is not None:
        run.status, run.rationale = stop


def _why(task: ScheduledTask) -> str:
    basis = f"; it rests on the pattern: {task.pattern.description}" if task.pattern else ""
    return f"{task.get_kind_display()} scheduled by {task.owner.get_username()}: {task.intent[:200]}{basis}"


def _template(task: ScheduledTask, week_minutes: int) -> FallbackAnswer:
    """The message when there is no model: the teacher's intent, in the kind's frame."""
    if task.kind == ScheduledTask.Kind.WEEKLY_REPORT:
        text = f"Your week: {week_minutes} minutes of study. {task.intent}"
    else:
        frames = {
            "reminder": "Reminder: {}",
            "check_in": "Checking in: {}",
            "assignment": "New assignment: {}",
        }
        text = frames.get(task.kind, "{}").format(task.intent)
    if task.pattern:
        text += f" (I noticed: {task.pattern.description[0].lower()}{task.pattern.description[1:]}.)"
    return FallbackAnswer(text=text)


def _week_minutes(tasks: list[ScheduledTask]) -> dict[int, int]:
    """Minutes studied in the last 7 days by the learners of the weekly reports (one query)."""
    students = {task.student_id for task in tasks if task.kind == ScheduledTask.Kind.WEEKLY_REPORT}
    if not students:
        return {}
    return dict(
        DailyPerformance.objects.filter(
            student_id__in=students, date__gt=timezone.localdate() - timedelta(days=7)
        )
        .values("student_id")
        .annotate(minutes=Sum("study_minutes"))
        .values_list("student_id", "minutes")
    )


def _compose(runs: list[TaskRun]) -> None:
    """Each run's message, through the gateway in one go (up to `PROACTIVE_CONCURRENCY` model
    calls at once), stored on the run before it is sent. A run composed before (taken again
    after a crash, or approved after waiting) keeps its message."""
    fresh = [run for run in runs if not run.output]
    week = _week_minutes([run.task for run in fresh])
    asks, masks = [], []
    for run in fresh:
        task, student = run.task, run.task.student
        pseudonyms = Pseudonyms.for_student(student)
        basis = f"\nIt rests on this pattern: {task.pattern.description}." if task.pattern else ""
        # The intent and the pattern are stored free text: data. Only the task's owner is masked
        # (no query): the one staff member its intent is likely to name.
        data = StaffNames.of([(task.owner, ROLE_FOR_LEARNER)]).mask(
            f"The teacher's intent: {task.intent}{basis}"
        )
        masks.append(pseudonyms)
        asks.append(
            Ask(
                purpose=f"compose a scheduled {task.kind}",
                system=SYSTEM.format(
                    pseudonym=pseudonyms.pseudonym_for(student.pk),
                    kind=task.get_kind_display(),
                    data_rule=DATA_RULE,
                ),
                messages=[{"role": "user", "content": data_section(data)}],
                fallback=partial(_template, task, week.get(task.student_id) or 0),
                actor=SYSTEM_PROACTIVE,
                organisation_id=student.organisation_id,
                student_id=student.pk,
                pseudonyms=pseudonyms,
            )
        )
    replies = complete_many(asks, concurrency=settings.PROACTIVE_CONCURRENCY) if asks else []
    for run, reply, pseudonyms in zip(fresh, replies, masks, strict=True):
        run.output, run.llm_event_id = pseudonyms.unmask(reply.text), reply.event_id or None
        blocked = "; ".join(note for note in reply.filtered if note.startswith("blocked"))
        if blocked:
            run.status, run.error = (
                TaskRun.Status.FAILED,
                f"the content filter withheld the message: {blocked}",
            )
    if fresh:
        bulk.update(fresh, ["output", "llm_event_id"])


def _send(runs: list[TaskRun], client: PlatformClient | None, now: datetime) -> None:
    sent = dispatch_many(
        [
            Outgoing(
                student=run.task.student,
                kind="assignment" if run.task.kind == ScheduledTask.Kind.ASSIGNMENT else "nudge",
                payload={"message": run.output, "type": run.task.kind},
                reference=f"task-run:{run.pk}",
            )
            for run in runs
        ],
        actor_name=SYSTEM_PROACTIVE,
        client=client,
    )
    for run, outcome in zip(runs, sent, strict=True):
        run.dispatch = outcome.log
        run.attempts += 1
        if outcome.error is None:
            run.status = TaskRun.Status.SENT
        else:
            run.status, run.error = TaskRun.Status.FAILED, f"{outcome.error} ({outcome.error.hint})"
            if not run.task.cron:
                _retry_or_give_up(run, now)


def _retry_or_give_up(run: TaskRun, now: datetime) -> None:
    """A one-off's send failed: its task is due again after a wait that doubles with each attempt
    (the last one at the deadline), or, from its deadline on, the run is not delivered and the
    task ends so. Claimed runs' tasks are done, so nobody else changes them meanwhile."""
    task = run.task
    deadline = run.scheduled_for + timedelta(hours=settings.PROACTIVE_ONE_OFF_DEADLINE_HOURS)
    if now >= deadline:
        run.status = TaskRun.Status.UNDELIVERED
        task.status = ScheduledTask.Status.UNDELIVERED
        return
    wait = min(RETRY_FIRST_WAIT * 2 ** (run.attempts - 1), RETRY_MAX_WAIT)
    task.status, task.next_run_at = ScheduledTask.Status.ACTIVE, min(now + wait, deadline)


def _finish(runs: list[TaskRun], started: float) -> None:
    """Every run's outcome and its audit event, in one transaction."""
    done = timezone.now()
    duration_ms = int((time.monotonic() - started) * 1000)
    events = []
    for run in runs:
        task = run.task
        run.rationale = run.rationale or _why(task)
        run.duration_ms = duration_ms
        if run.status == TaskRun.Status.UNDELIVERED:
            run.error = f"not delivered after {run.attempts} attempts; the last: {run.error}"
            continue  # its event is the failure recorded below
        events.append(
            new_event(
                verb=f"proactive.{run.status}",
                actor_name=SYSTEM_PROACTIVE,
                target=run,
                source="worker",
                status=EVENT_STATUS.get(run.status, ActivityEvent.Status.SUCCEEDED),
                why=run.rationale,
                details={
                    "task_id": task.pk,
                    "kind": task.kind,
                    "scheduled_for": run.scheduled_for.isoformat(),
                    "lateness_ms": _ms(done - run.scheduled_for),
                    "pattern": {"kind": task.pattern.kind, "evidence": task.pattern.evidence}
                    if task.pattern
                    else None,
                    "llm_event_id": run.llm_event_id,
                    "dispatch_id": run.dispatch_id,
                    "error": run.error or None,
                    "attempts": run.attempts,
                    "next_attempt_at": task.next_run_at.isoformat() if task.is_retrying else None,
                },
            )
        )
    # One-offs whose send failed: due again for their retry, or ended as not delivered.
    undelivered = [run for run in runs if run.status == TaskRun.Status.UNDELIVERED]
    retried = [run.task for run in runs if run.task.is_retrying] + [run.task for run in undelivered]
    with transaction.atomic():
        bulk.update(runs, OUTCOME_FIELDS)
        if retried:
            bulk.update(retried, ["status", "next_run_at"])
        record_events(events)
        for run in undelivered:
            _record_undelivered(run)


def _record_undelivered(run: TaskRun) -> None:
    """The high-severity failure someone must act on: what was not delivered, to whom, when due."""
    task, student = run.task, run.task.student
    due = (
        f"{timezone.localtime(run.scheduled_for, zone(task.time_zone)):%a %d %b %Y %H:%M} ({task.time_zone})"
    )
    hours = settings.PROACTIVE_ONE_OFF_DEADLINE_HOURS
    record_failure(
        verb=f"proactive.{run.status}",
        actor_name=SYSTEM_PROACTIVE,
        source="worker",
        target=run,
        severity=Failure.Severity.HIGH,
        why=(
            f"{task.get_kind_display()} for {student.full_name}, due {due}, was not delivered: all "
            f"{run.attempts} attempts to send it failed over {hours} h. Message: {run.output[:200]}"
        ),
        remediation=(
            "check that the platform is up and that PLATFORM_BASE_URL and PLATFORM_TOKEN are right (the "
            f"run's error: {run.error[:200]}); then, if the message still matters, schedule it again "
            f"from /students/{student.pk}/schedules/"
        ),
        details={
            "task_id": task.pk,
            "kind": task.kind,
            "scheduled_for": run.scheduled_for.isoformat(),
            "message": run.output,
            "attempts": run.attempts,
            "deadline_hours": hours,
            "dispatch_id": run.dispatch_id,
            "error": run.error,
        },
    )


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
    [status] = process([run], approved=True)
    return status
