"""The one write path into the activity log, and the failures that need someone's attention."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from audit import chain, context
from audit.models import ActivityEvent, Failure

DEFAULT_ESCALATION = {
    Failure.Severity.HIGH: "If the remediation does not work, the organisation admin escalates to the "
    "Proactive Tutor operators with this event's correlation id.",
    Failure.Severity.NORMAL: "If it recurs after the remediation, the organisation admin reviews it "
    "in Audit → Failures and escalates to the operators with its correlation id.",
}


def record(**fields: Any) -> ActivityEvent:
    """Append one event to its organisation's hash chain. Call it inside the service's transaction
    so the event and the write it describes commit or roll back together.

    The fields are `new_event`'s: `verb`; `actor` (a user), or for automation
    `actor_name="system:<component>"`; a model `target`, whose type and id it fills and whose
    `audit_scope()` (or `organisation_id`, `student_id` and `class_id` attributes) fills those
    columns unless given; `why`, `status`, `details`, `source`.
    """
    [event] = record_events([new_event(**fields)])
    return event


def new_event(
    *,
    verb: str,
    actor: Any = None,
    actor_name: str = "",
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str | int = "",
    organisation_id: int | None = None,
    student_id: int | None = None,
    class_id: int | None = None,
    why: str = "",
    status: str = ActivityEvent.Status.SUCCEEDED,
    details: dict[str, Any] | None = None,
    source: str | None = None,
) -> ActivityEvent:
    """An event as `record` takes it, checked and scoped but not yet chained or stored: for
    `record_events`, which appends many in one go."""
    if actor is None and not actor_name:
        raise ValueError("an event needs an actor or an actor_name such as 'system:alerts'")
    if status not in ActivityEvent.Status.values:
        raise ValueError(f"unknown status {status!r}")
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or target.pk
        scope = target.audit_scope() if hasattr(target, "audit_scope") else {}
        organisation_id = organisation_id or scope.get(
            "organisation_id", getattr(target, "organisation_id", None)
        )
        student_id = student_id or scope.get("student_id", getattr(target, "student_id", None))
        class_id = class_id or scope.get("class_id", getattr(target, "class_id", None))
    if organisation_id is None and actor is not None:
        organisation_id = getattr(actor, "organisation_id", None)
    ctx = context.current()
    # What the database will give back: keys as strings, tuples as lists; hashed exactly so.
    details = json.loads(chain.canonical(details or {}))
    actor_name = actor_name or actor.get_username()
    return ActivityEvent(
        organisation_id=organisation_id,
        actor=actor,
        actor_name=actor_name,
        verb=verb,
        target_type=target_type,
        target_id=str(target_id),
        student_id=student_id,
        class_id=class_id,
        why=why,
        status=status,
        source=source or ctx.source,
        correlation_id=ctx.correlation_id,
        details=details,
    )


def record_events(events: Sequence[ActivityEvent]) -> list[ActivityEvent]:
    """Append events made by `new_event` to their organisations' chains, in the order given, in
    one transaction: each chain's head is locked (in the order of the organisations' ids, so two
    writers never wait on each other in a circle) and moved once for all of its events, and the
    events go in one INSERT. A worker recording a batch of runs takes each lock once, not once per
    event. Call it inside the transaction of the writes the events describe.

    Raises `chain.ChainHeadMissingError` for a chain whose head was deleted: its events would
    otherwise restart at seq 1."""
    if not events:
        return []
    by_chain: dict[int, list[ActivityEvent]] = {}
    for event in events:
        by_chain.setdefault(chain.chain_key(event.organisation_id), []).append(event)
    with transaction.atomic():
        heads = {key: chain.lock_head(key) for key in sorted(by_chain)}
        # Stamped once every head is held: a chain's times never go back along its sequence.
        now = timezone.now()
        for key, group in by_chain.items():
            for event in group:
                event.occurred_at = now
            seq, prev_hash = heads[key]
            last_seq, last_hash = chain.link(group, seq=seq + 1, prev_hash=prev_hash)
            chain.move_head(key, seq=last_seq, hash=last_hash)
        ActivityEvent.objects.append_chained(list(events))
    return list(events)


def record_failure(
    *,
    verb: str,
    remediation: str,
    severity: str = Failure.Severity.NORMAL,
    escalation: str = "",
    why: str = "",
    fingerprint: str = "",
    **event: Any,
) -> ActivityEvent:
    """Record a failed action with what to do about it, and open (or bump) its Failure.

    One Failure stays open per `fingerprint` (by default the verb and target), counting
    recurrences, until someone resolves it.
    """
    escalation = escalation or DEFAULT_ESCALATION[Failure.Severity(severity)]
    details = {**(event.pop("details", None) or {}), "remediation": remediation, "escalation": escalation}
    details["severity"] = severity
    with transaction.atomic():
        failed = record(verb=verb, why=why, status=ActivityEvent.Status.FAILED, details=details, **event)
        fingerprint = (fingerprint or f"{verb}|{failed.target_type}:{failed.target_id}")[:200]
        open_failure = (
            Failure.objects.select_for_update()
            .filter(organisation_id=failed.organisation_id, fingerprint=fingerprint, state=Failure.State.OPEN)
            .first()
        )
        if open_failure is None:
            Failure.objects.create(
                organisation_id=failed.organisation_id,
                fingerprint=fingerprint,
                verb=verb,
                target_type=failed.target_type,
                target_id=failed.target_id,
                student_id=failed.student_id,
                class_id=failed.class_id,
                severity=severity,
                summary=why,
                remediation=remediation,
                escalation=escalation,
                first_event=failed,
                last_event=failed,
                first_seen_at=failed.occurred_at,
                last_seen_at=failed.occurred_at,
            )
        else:
            open_failure.occurrences += 1
            open_failure.last_event = failed
            open_failure.last_seen_at = failed.occurred_at
            open_failure.summary = why
            open_failure.remediation = remediation
            if severity == Failure.Severity.HIGH:
                open_failure.severity = severity
            open_failure.save()
    return failed


def failure_resolve(failure: Failure, *, by: Any, note: str = "") -> Failure:
    """Close an open failure; a later failure of the same thing opens a new one."""
    with transaction.atomic():
        failure = Failure.objects.select_for_update().get(pk=failure.pk)
        if failure.state != Failure.State.OPEN:
            raise ValueError("this failure is already resolved")
        _close(failure, by=by, note=note or "marked resolved")
    return failure


def failure_clear(
    *, organisation_id: int | None, fingerprint: str, actor_name: str, why: str
) -> Failure | None:
    """Resolve the open failure of `fingerprint`, if there is one, because the thing that failed
    has since succeeded (a later sync of the class, a delivery that went through on a retry).
    Call it in the success's transaction: nobody has to close by hand what fixed itself."""
    open_failures = Failure.objects.filter(
        organisation_id=organisation_id, fingerprint=fingerprint[:200], state=Failure.State.OPEN
    )
    # Almost every success has nothing to clear: one plain query, no lock, no savepoint.
    if not open_failures.exists():
        return None
    with transaction.atomic():
        failure = open_failures.select_for_update().first()
        if failure is not None:
            _close(failure, by=None, actor_name=actor_name, note=f"cleared: {why}")
    return failure


def _close(failure: Failure, *, by: Any, note: str, actor_name: str = "") -> None:
    failure.state = Failure.State.RESOLVED
    failure.resolved_at = timezone.now()
    failure.resolved_by = by
    failure.resolution_note = note
    failure.save(update_fields=["state", "resolved_at", "resolved_by", "resolution_note"])
    record(
        verb="failure.resolved",
        actor=by,
        actor_name=actor_name,
        target=failure,
        organisation_id=failure.organisation_id,
        student_id=failure.student_id,
        class_id=failure.class_id,
        why=note,
        details={"failed_event_id": failure.last_event_id, "occurrences": failure.occurrences},
    )
