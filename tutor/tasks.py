"""Operational tasks run by the django-q2 workers."""

from __future__ import annotations

from django.conf import settings
from django_q.tasks import async_task

from audit import context
from classroom.models import Student
from tutor.models import WorkerHeartbeat
from tutor.orchestrator.services import day_run, due_preparations
from tutor.proactive.dispatcher import run_due_tasks as dispatcher_pass
from tutor.proactive.services import patterns_detect


def heartbeat() -> None:
    """Proves a worker is taking tasks off the queue. Idempotent: an upsert of one row."""
    WorkerHeartbeat.beat(settings.Q_CLUSTER["name"])


def run_due_tasks() -> str:
    """The "proactive-dispatch" schedule, every minute: one dispatcher pass, the backstop of the
    dispatcher process (`manage.py run_due_tasks`), which sends as tasks fall due."""
    with context.bind(source="worker"):
        result = dispatcher_pass()
    return f"{result.claimed} due: {result.by_status}"


def detect_patterns(student_ids: list[int]) -> int:
    """After a sync: the pattern detector over the students whose activity just arrived."""
    with context.bind(source="worker"):
        return sum(len(patterns_detect(student=s)) for s in Student.objects.filter(pk__in=student_ids))


def prepare_daily_plans() -> int:
    """The "orchestrator-prepare" schedule: one task per learner whose plan for today is due.
    Running it twice queues a day twice, and the second finds the plan made."""
    due = due_preparations()
    for student_id, week, day in due:
        async_task("tutor.tasks.prepare_daily_plan", student_id, week, day)
    return len(due)


def prepare_daily_plan(student_id: int, week: int, day: int) -> str:
    """One learner's plan for (week, day), unless it exists already."""
    with context.bind(source="worker"):
        run = day_run(student=Student.objects.get(pk=student_id), by=None, week=week, day=day)
    return f"{'made' if run.created else 'already there'} in {run.seconds:.1f} s"
