"""Platform sync: fill the mirrors from the platform, in the background, without losing or duplicating rows.

1. `sync_run_request` records a queued SyncRun (one active run per target) and enqueues it.
2. A worker runs `sync_run_execute`: students are fetched with bounded concurrency; as fetches
   complete, their rows are upserted a batch of students per transaction (under per-student
   advisory locks on PostgreSQL), and the run's progress is written as it goes.
3. A failed student keeps what was stored before; the run ends succeeded, partial or failed,
   with the error and a remediation hint, and the risk alerts of its students are recomputed.
Running a run twice, or at the same time on two workers, leaves the same rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, QuerySet, Sum
from django.utils import timezone

from audit import context
from audit.models import ActivityEvent, Failure
from audit.services import failure_clear, record, record_failure
from classroom.bulk import upsert
from classroom.locks import advisory_xact_lock, advisory_xact_locks
from classroom.models import (
    Assignment,
    DailyPerformance,
    Enrollment,
    Organisation,
    SchoolClass,
    Student,
    StudentSyncState,
    StudyPlanProgress,
    SyncRun,
    SyncRunStudent,
    User,
)
from classroom.platform.client import PlatformClient, PlatformError, StudentChanges
from classroom.services import alerts_recompute
from classroom.signals import students_synced

SYSTEM_SYNC = "system:sync"
PROGRESS_EVERY_SECONDS = 0.5
STALE_RETRY_MINUTES = 10
# Fetched students stored per transaction, and the longest a fetched student waits to be stored.
# A batch costs about as many round trips as one student did, which is what lets the main thread
# keep up with 16 concurrent fetches (bench/sync.py); a batch fits in the fetch window, so the
# fetch threads keep working while it is stored.
STORE_BATCH = 16
STORE_WAIT_SECONDS = 0.25


def sync_run_request(
    *,
    organisation: Organisation,
    trigger: str,
    school_class: SchoolClass | None = None,
    student: Student | None = None,
    by: User | None = None,
    enqueue: bool = True,
) -> tuple[SyncRun, bool]:
    """Queue a sync of a student, a class, or (neither given) the whole organisation.

    Returns `(run, created)`: while a run for the same target is queued or running, that run
    is returned instead of a second one. `enqueue=False` is for a caller that runs it itself.
    """
    scope = (
        SyncRun.Scope.STUDENT
        if student
        else SyncRun.Scope.CLASS
        if school_class
        else SyncRun.Scope.ORGANISATION
    )
    with transaction.atomic():
        # Serialise requests for one target, so two clicks at once make one run.
        target = student or school_class or organisation
        type(target).objects.select_for_update().filter(pk=target.pk).first()
        active = SyncRun.objects.filter(
            organisation=organisation,
            scope=scope,
            school_class=school_class,
            student=student,
            status__in=SyncRun.ACTIVE,
        ).first()
        if active is not None:
            return active, False
        run = SyncRun.objects.create(
            organisation=organisation,
            scope=scope,
            school_class=school_class,
            student=student,
            trigger=trigger,
            requested_by=by,
            queued_at=timezone.now(),
            correlation_id=context.current().correlation_id,
        )
        record(
            verb="sync.requested",
            actor=by,
            actor_name="" if by else SYSTEM_SYNC,
            target=run,
            student_id=student.pk if student else None,
            class_id=school_class.pk if school_class else None,
            status=ActivityEvent.Status.PENDING,
            why=f"{run.get_trigger_display()}: sync of {target}",
        )
        if enqueue:
            transaction.on_commit(lambda: _enqueue(run.pk))
    return run, True


def _enqueue(run_id: int) -> None:
    from django_q.tasks import async_task

    async_task("classroom.tasks.sync_run", run_id)


def sync_student_if_stale(*, student: Student, by: User | None = None) -> SyncRun | None:
    """For a page that found this student's mirror missing or older than its freshness window:
    queue a targeted refresh (or return the one under way, or one tried in the last minutes)."""
    now = timezone.now()
    synced_at = (
        StudentSyncState.objects.filter(student=student).values_list("last_synced_at", flat=True).first()
    )
    if synced_at and synced_at >= now - timedelta(hours=settings.MIRROR_FRESHNESS_HOURS):
        return None
    recent = (
        SyncRun.objects.filter(student=student, queued_at__gte=now - timedelta(minutes=STALE_RETRY_MINUTES))
        .order_by("-queued_at")
        .first()
    )
    if recent is not None:
        return recent
    run, _ = sync_run_request(
        organisation=student.organisation, student=student, trigger=SyncRun.Trigger.STALE, by=by
    )
    return run


@dataclass
class _Tally:
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    failing_in_a_row: int = 0
    last_error: PlatformError | None = None


def sync_run_execute(
    *, run_id: int, client: PlatformClient | None = None, progress: Callable[[SyncRun], None] | None = None
) -> SyncRun:
    """Run a queued (or interrupted) sync to the end. A finished run is returned unchanged."""
    run = SyncRun.objects.select_related("organisation").get(pk=run_id)
    if not run.is_active:
        return run
    students = _students_of(run)
    run.status, run.started_at = SyncRun.Status.RUNNING, run.started_at or timezone.now()
    run.total = students.count()
    run.save(update_fields=["status", "started_at", "total"])
    classes = dict(SchoolClass.objects.filter(organisation=run.organisation).values_list("platform_id", "pk"))
    owned = client is None
    client = client or PlatformClient()
    tally, aborted, last_progress = _Tally(), False, time.monotonic()
    batch: list[_Fetched] = []

    def fetch(student: tuple[int, str, datetime | None]) -> tuple[StudentChanges, int]:
        started = time.monotonic()
        changes = client.fetch_changes(student[1], since=student[2])
        return changes, int((time.monotonic() - started) * 1000)

    try:
        with context.bind(source=context.current().source, correlation_id=run.correlation_id or None):
            results = client.map_concurrently(
                students.values_list("pk", "platform_id", "sync_state__cursor").iterator(chunk_size=500),
                fetch,
            )
            batch_started = time.monotonic()
            for (student_id, _, _), result, error in results:
                tally.processed += 1
                if error is None:
                    if not batch:
                        batch_started = time.monotonic()
                    batch.append(_Fetched(student_id, *result))
                    tally.succeeded += 1
                    tally.failing_in_a_row = 0
                else:
                    _store_failure(run, student_id, error)
                    tally.failed += 1
                    tally.failing_in_a_row += 1
                    tally.last_error = error
                    if not tally.succeeded and tally.failing_in_a_row >= settings.PLATFORM_CIRCUIT_BREAKER:
                        aborted = True
                        results.close()
                        break
                if len(batch) >= STORE_BATCH or (
                    batch and time.monotonic() - batch_started >= STORE_WAIT_SECONDS
                ):
                    _store(run, batch, classes)
                    batch = []
                if time.monotonic() - last_progress >= PROGRESS_EVERY_SECONDS:
                    last_progress = time.monotonic()
                    _save_progress(run, tally, unstored=len(batch))
                    if progress:
                        progress(run)
            # An unexpected error above skips this: those students are fetched again when the run is retried.
            if batch:
                _store(run, batch, classes)
    finally:
        if owned:
            client.close()
    return _finish(run, tally, aborted, progress)


def _students_of(run: SyncRun) -> QuerySet[Student]:
    students = Student.objects.filter(organisation=run.organisation)
    if run.scope == SyncRun.Scope.STUDENT:
        students = students.filter(pk=run.student_id)
    elif run.scope == SyncRun.Scope.CLASS:
        students = students.filter(
            enrollments__school_class_id=run.school_class_id, enrollments__status=Enrollment.Status.ACTIVE
        )
    return students.order_by("pk")


@dataclass
class _Fetched:
    student_id: int
    changes: StudentChanges
    duration_ms: int


def _lock_students(student_ids: list[int]) -> None:
    """Two workers syncing one student take turns; distinct students never wait for each other.

    On PostgreSQL the transaction also commits without waiting for its WAL flush: a crash may
    lose the last few milliseconds of mirror writes, together with the cursors that recorded them,
    so the next sync fetches them again. It spares a disk flush per batch.
    """
    advisory_xact_locks(f"sync-student:{student_id}" for student_id in student_ids)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


@transaction.atomic
def _store(run: SyncRun, batch: list[_Fetched], classes: dict[str, int]) -> None:
    """Upsert the mirrors, sync state and run outcome of a batch of fetched students, in one
    transaction and a statement per table."""
    _lock_students([fetched.student_id for fetched in batch])
    now = timezone.now()
    upsert(
        DailyPerformance,
        [
            {"student_id": fetched.student_id, "synced_at": now, **row}
            for fetched in batch
            for row in fetched.changes.performance
        ],
        unique=("student_id", "date"),
        stamp="synced_at",
    )
    upsert(
        Assignment,
        [
            {
                "student_id": fetched.student_id,
                "school_class_id": classes.get(row["class_platform_id"]),
                "platform_id": row["platform_id"],
                "title": row["title"],
                "due_at": row["due_at"],
                "submitted_at": row["submitted_at"],
                "synced_at": now,
            }
            for fetched in batch
            for row in fetched.changes.assignments
        ],
        unique=("student_id", "platform_id"),
        stamp="synced_at",
    )
    upsert(
        StudyPlanProgress,
        [
            {"student_id": fetched.student_id, "synced_at": now, **row}
            for fetched in batch
            for row in fetched.changes.plan_progress
        ],
        unique=("student_id", "platform_id"),
        stamp="synced_at",
    )
    upsert(
        StudentSyncState,
        [
            {
                "student_id": fetched.student_id,
                "last_synced_at": now,
                "last_attempted_at": now,
                "last_status": StudentSyncState.Status.OK,
                "last_error": "",
                "cursor": fetched.changes.as_of,
            }
            for fetched in batch
        ],
        unique=("student_id",),
    )
    upsert(
        SyncRunStudent,
        [
            {
                "run_id": run.pk,
                "student_id": fetched.student_id,
                "status": SyncRunStudent.Status.OK,
                "performance_rows": len(fetched.changes.performance),
                "assignment_rows": len(fetched.changes.assignments),
                "milestone_rows": len(fetched.changes.plan_progress),
                "duration_ms": fetched.duration_ms,
                "error": "",
                "hint": "",
            }
            for fetched in batch
        ],
        unique=("run_id", "student_id"),
    )


@transaction.atomic
def _store_failure(run: SyncRun, student_id: int, error: PlatformError) -> None:
    """Record the failure; the student's mirrors and last good sync stay as they were."""
    advisory_xact_lock(f"sync-student:{student_id}")
    now = timezone.now()
    StudentSyncState.objects.bulk_create(
        [
            StudentSyncState(
                student_id=student_id,
                last_attempted_at=now,
                last_status=StudentSyncState.Status.FAILED,
                last_error=str(error),
            )
        ],
        update_conflicts=True,
        unique_fields=["student"],
        update_fields=["last_attempted_at", "last_status", "last_error"],
    )
    SyncRunStudent.objects.bulk_create(
        [
            SyncRunStudent(
                run=run,
                student_id=student_id,
                status=SyncRunStudent.Status.FAILED,
                error=str(error),
                hint=error.hint,
            )
        ],
        update_conflicts=True,
        unique_fields=["run", "student"],
        update_fields=["status", "error", "hint"],
    )
    record(
        verb="sync.student_failed",
        actor_name=SYSTEM_SYNC,
        target=run,
        student_id=student_id,
        class_id=run.school_class_id,
        status=ActivityEvent.Status.FAILED,
        why=error.hint,
        details={"error": str(error), "status": error.status, "code": error.code},
    )


def _save_progress(run: SyncRun, tally: _Tally, *, unstored: int) -> None:
    """Students count as processed once stored (or failed), so the bar never runs ahead of the rows."""
    run.processed, run.succeeded = tally.processed - unstored, tally.succeeded - unstored
    run.failed = tally.failed
    SyncRun.objects.filter(pk=run.pk).update(
        processed=run.processed, succeeded=run.succeeded, failed=run.failed
    )


def _finish(
    run: SyncRun, tally: _Tally, aborted: bool, progress: Callable[[SyncRun], None] | None
) -> SyncRun:
    # Count from the per-student rows: right even when two workers ran this run at once.
    outcomes = SyncRunStudent.objects.filter(run=run)
    counts = dict(outcomes.values("status").annotate(n=Count("pk")).values_list("status", "n"))
    sums = outcomes.aggregate(
        performance=Sum("performance_rows"),
        assignments=Sum("assignment_rows"),
        milestones=Sum("milestone_rows"),
    )
    run.succeeded, run.failed = counts.get("ok", 0), counts.get("failed", 0)
    run.processed = run.succeeded + run.failed
    run.rows = {name: value or 0 for name, value in sums.items()}
    run.finished_at = timezone.now()
    if run.failed == 0 and not aborted:
        run.status, run.error, run.hint = SyncRun.Status.SUCCEEDED, "", ""
    else:
        common = (
            outcomes.filter(status="failed").values("hint").annotate(n=Count("pk")).order_by("-n").first()
        )
        run.status = SyncRun.Status.FAILED if run.succeeded == 0 else SyncRun.Status.PARTIAL
        run.hint = (common or {}).get("hint", "") or (tally.last_error.hint if tally.last_error else "")
        run.error = f"{run.failed} of {run.total} students failed"
        if aborted:
            untried = run.total - run.processed
            run.error += f"; stopped after {tally.failing_in_a_row} failures in a row, {untried} not tried"
        if tally.last_error is not None:
            run.error += f" (last: {tally.last_error})"
    succeeded = run.status == SyncRun.Status.SUCCEEDED
    with transaction.atomic():
        run.save(
            update_fields=[
                "status",
                "processed",
                "succeeded",
                "failed",
                "rows",
                "finished_at",
                "error",
                "hint",
            ]
        )
        event = {
            "verb": "sync.finished",
            "actor_name": SYSTEM_SYNC,
            "target": run,
            "student_id": run.student_id,
            "class_id": run.school_class_id,
            "details": {
                "outcome": run.status,
                "total": run.total,
                "succeeded": run.succeeded,
                "failed": run.failed,
                "rows": run.rows,
                "error": run.error,
                "seconds": run.duration_seconds,
            },
        }
        # One open failure per sync target, however many runs fail, until one succeeds or someone
        # resolves it.
        target = (
            f"class:{run.school_class_id}"
            if run.school_class_id
            else f"student:{run.student_id}"
            if run.student_id
            else "all"
        )
        fingerprint = f"sync|{run.organisation_id}|{target}"
        if succeeded:
            record(**event, why=f"{run.succeeded} students synced")
            failure_clear(
                organisation_id=run.organisation_id,
                fingerprint=fingerprint,
                actor_name=SYSTEM_SYNC,
                why=f"sync run {run.pk} succeeded",
            )
        else:
            record_failure(
                **event,
                why=run.error or f"{run.failed} of {run.total} students failed",
                remediation=run.hint
                or "retry the sync from the class page; if it fails again, check the platform",
                severity=Failure.Severity.HIGH
                if run.status == SyncRun.Status.FAILED
                else Failure.Severity.NORMAL,
                fingerprint=fingerprint,
            )
    if run.succeeded:
        synced = list(outcomes.filter(status=SyncRunStudent.Status.OK).values_list("student_id", flat=True))
        students_synced.send(sender=sync_run_execute, organisation=run.organisation, student_ids=synced)
        alerts_recompute(
            organisation=run.organisation,
            student_ids=None
            if run.scope == SyncRun.Scope.ORGANISATION
            else _students_of(run).values_list("pk", flat=True),
        )
    if progress:
        progress(run)
    return run
