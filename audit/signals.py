"""Sign-ins and sign-outs, field-level history and failed worker tasks, recorded for compliance review."""

from __future__ import annotations

from typing import Any

from auditlog.models import LogEntry
from auditlog.signals import post_log
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django_q.signals import post_execute

from audit import context
from audit.models import ActivityEvent, Failure
from audit.services import failure_clear, record, record_failure

WORKER = "system:worker"


@receiver(user_logged_in)
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    record(verb="user.logged_in", actor=user, target=user)


@receiver(user_logged_out)
def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        record(verb="user.logged_out", actor=user, target=user)


@receiver(user_login_failed)
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    # Only the username that was tried: never the password.
    record(
        verb="user.login_failed",
        actor_name=str(credentials.get("username", ""))[:150] or "anonymous",
        status=ActivityEvent.Status.FAILED,
        why="wrong username or password",
    )


@receiver(post_log)
def _field_history(sender: Any, instance: Any, action: int, log_entry: Any = None, **kwargs: Any) -> None:
    """Mirror each django-auditlog entry (a field-level diff) into the chained activity log, so
    field history shares the timeline, the search, the export and the tamper evidence of events."""
    if log_entry is None or action == LogEntry.Action.ACCESS:
        return
    verb = {
        LogEntry.Action.CREATE: "created",
        LogEntry.Action.UPDATE: "updated",
        LogEntry.Action.DELETE: "deleted",
    }
    actor = log_entry.actor
    source = context.current().source
    record(
        verb=f"{instance._meta.model_name}.{verb[action]}",
        actor=actor,
        actor_name="" if actor else f"system:{'auto' if source == 'system' else source}",
        target=instance,
        target_id=log_entry.object_pk,
        why="field history",
        details={
            "changes": log_entry.changes_dict,
            "log_entry_id": log_entry.pk,
            "object": log_entry.object_repr,
        },
    )


@receiver(post_execute)
def _task_finished(sender: Any, task: dict[str, Any], **kwargs: Any) -> None:
    """A django-q2 task that raised is a failure for someone to see, with its traceback; the next
    success of the same task closes it. Services record their own expected failures (a sync's
    platform errors); this catches the unexpected ones, whatever the task."""
    func = task.get("func")
    name = func if isinstance(func, str) else f"{func.__module__}.{func.__qualname__}"
    fingerprint = f"task|{name}"
    with context.bind(source="worker", correlation_id=str(task.get("id", "")) or None):
        if task.get("success"):
            failure_clear(
                organisation_id=None, fingerprint=fingerprint, actor_name=WORKER, why=f"{name} ran again"
            )
            return
        error = str(task.get("result") or "")
        record_failure(
            verb="task.failed",
            actor_name=WORKER,
            target_type="django_q.task",
            target_id=str(task.get("id", "")),
            severity=Failure.Severity.HIGH,
            why=f"{name} raised: {error.partition(' : ')[0]}"[:1000],
            remediation="The worker retries the task up to Q_MAX_ATTEMPTS times; the traceback is in "
            "this event's details. If it keeps failing, fix the cause and run it again from "
            "Admin → Django Q → Failed tasks.",
            fingerprint=fingerprint,
            details={"task": name, "task_name": task.get("name", ""), "error": error[-4000:]},
        )
