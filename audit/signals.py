"""Sign-ins and sign-outs, field-level history and failed worker tasks, recorded for compliance review."""

from __future__ import annotations

from typing import Any

from auditlog.models import LogEntry
from auditlog.signals import post_log
from axes.helpers import get_client_ip_address, get_cool_off, get_failure_limit
from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.utils import timezone
from django_q.signals import post_execute

from audit import context
from audit.models import ActivityEvent, Failure
from audit.services import failure_clear, record, record_failure

WORKER = "system:worker"


def _address(request: Any) -> str | None:
    """The client's address as the sign-in throttle counts it (AXES_CLIENT_IP_CALLABLE)."""
    return get_client_ip_address(request) if request is not None else None


def _account(username: str) -> Any:
    """The account a sign-in named, if there is one: its organisation's compliance staff see the
    attempt. The log, not the sign-in page, is where it shows whether the account exists."""
    if not username:
        return None
    user_model = get_user_model()
    return user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).first()


@receiver(user_logged_in)
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    address = _address(request)
    record(verb="user.logged_in", actor=user, target=user, details={"address": address} if address else None)


@receiver(user_logged_out)
def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        record(verb="user.logged_out", actor=user, target=user)


@receiver(user_login_failed)
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    """Under the organisation of the account named, with the address. Only the username that was
    tried, never the password. axes has counted this failure already (its app comes first in
    INSTALLED_APPS): a count past the limit means the lock refused it before any password check."""
    username = str(credentials.get("username", ""))[:150]
    address = _address(request)
    failures = getattr(request, "axes_failures_since_start", None)
    refused = failures is not None and failures > get_failure_limit(request, credentials)
    what = (
        "refused while sign-in is locked after too many failures" if refused else "wrong username or password"
    )
    record(
        verb="user.login_failed",
        actor_name=username or "anonymous",
        target=_account(username),
        status=ActivityEvent.Status.FAILED,
        why=f"{what}, from {address or 'an unknown address'}",
        details={"address": address, "failures": failures},
    )


@receiver(user_locked_out)
def _locked_out(
    sender: Any, request: Any, username: str | None, ip_address: str | None, **kwargs: Any
) -> None:
    """Once per lock, at the failure that reached the limit; axes signals again at every try while
    locked, and `_login_failed` records those."""
    failures = request.axes_failures_since_start
    limit = get_failure_limit(request, request.axes_credentials)
    if failures != limit:
        return
    until = timezone.localtime(request.axes_attempt_time + get_cool_off(request))
    record(
        verb="user.locked_out",
        actor_name=(username or "")[:150] or "anonymous",
        target=_account(username or ""),
        status=ActivityEvent.Status.FAILED,
        why=f"sign-in locked until {until:%H:%M %Z} after {failures} failed sign-ins for this account "
        f"or from {ip_address or 'an unknown address'}",
        details={"address": ip_address, "failures": failures, "limit": limit, "until": until.isoformat()},
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
