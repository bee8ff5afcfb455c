"""A worker task that raises is a failure someone sees; the next success of the task closes it."""

from __future__ import annotations

from multiprocessing import Queue, Value
from uuid import uuid4

import pytest
from django_q.monitor import monitor
from django_q.worker import worker

from audit.models import ActivityEvent, Failure

RUNS = {"left_to_fail": 0}


def flaky_task() -> str:
    if RUNS["left_to_fail"] > 0:
        RUNS["left_to_fail"] -= 1
        raise ConnectionError("the mail relay refused the connection")
    return "done"


def _run_on_worker(func: str) -> None:
    """One task through django-q2's own worker and result monitor, as a cluster runs it (unlike
    the tests' sync mode, which raises the task's error in the caller instead)."""
    tasks: Queue = Queue()
    results: Queue = Queue()
    tasks.put({"id": uuid4().hex, "name": "test-task", "func": func, "args": (), "kwargs": {}})
    tasks.put("STOP")
    worker(tasks, results, Value("f", -1))
    results.put("STOP")
    monitor(results)


# The worker closes the database connection before and after each task, as in a cluster, so the
# test cannot sit inside one transaction.
@pytest.mark.django_db(transaction=True)
def test_a_task_that_raises_opens_a_failure_with_its_traceback_and_a_success_closes_it():
    RUNS["left_to_fail"] = 2
    name = "tests.audit.test_task_failures.flaky_task"

    _run_on_worker(name)
    _run_on_worker(name)

    failure = Failure.objects.get(state="open")
    assert (failure.verb, failure.severity, failure.occurrences) == ("task.failed", "high", 2)
    assert "Q_MAX_ATTEMPTS" in failure.remediation and failure.escalation
    event = ActivityEvent.objects.filter(verb="task.failed").latest("seq")
    assert event.why == f"{name} raised: the mail relay refused the connection"
    assert (event.status, event.actor_name, event.source) == ("failed", "system:worker", "worker")
    assert "Traceback" in event.details["error"] and "ConnectionError" in event.details["error"]

    _run_on_worker(name)

    failure.refresh_from_db()
    assert (failure.state, failure.resolution_note) == ("resolved", f"cleared: {name} ran again")
    assert ActivityEvent.objects.filter(verb="failure.resolved", actor_name="system:worker").count() == 1
