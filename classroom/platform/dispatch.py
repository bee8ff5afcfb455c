"""The dispatcher: the one way anything (an assignment, a nudge) is sent to a learner on the platform.

The idempotency key is derived from what is sent (student, kind, payload and the caller's
reference, such as the alert or scheduled run it comes from), so a retry, a re-delivered job
or a second click carries the same key and the platform sends once. Every attempt is a
DispatchLog row; the outcome is one audit event.

`dispatch_many` sends a batch (the proactive dispatcher's due runs) on the platform client's
threads and writes what happened in one transaction afterwards: the attempts' DispatchLog rows in
one INSERT, the events in one append to the log. A process that dies between a send and that
transaction leaves no row for it; the caller's retry carries the same key, so the platform
answers with the send it already made (`replayed`) and that is what gets recorded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from audit.models import ActivityEvent, Failure
from audit.services import failure_clear, new_event, record_events, record_failure
from classroom.models import DispatchLog, Student, User
from classroom.platform.client import DispatchReceipt, PlatformClient, PlatformError

KINDS = ("assignment", "nudge")
SYSTEM_DISPATCH = "system:dispatcher"


class DispatchError(Exception):
    """The platform did not take the dispatch; `hint` says what to do."""

    def __init__(self, message: str, *, hint: str, log: DispatchLog | None) -> None:
        super().__init__(message)
        self.hint = hint
        self.log = log


@dataclass(frozen=True)
class Outgoing:
    """One thing to send: what `dispatch_send` takes."""

    student: Student
    kind: str
    payload: dict[str, Any]
    reference: str


@dataclass
class Sent:
    """What became of one `Outgoing`: the DispatchLog of the attempt that got through (or of the
    earlier send, `deduplicated`), or the error, already recorded, when it failed."""

    log: DispatchLog | None
    error: DispatchError | None = None
    deduplicated: bool = False


@dataclass
class _Attempts:
    """The attempts of one key, noted by the client's thread as each ends."""

    first: int
    rows: list[tuple[int, int | None, str, Any]] = field(default_factory=list)


def idempotency_key(*, student: Student, kind: str, payload: Any, reference: str) -> str:
    canonical = json.dumps(
        {"student": student.platform_id, "kind": kind, "payload": payload, "reference": reference},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return "dsp_" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def dispatch_send(
    *,
    student: Student,
    kind: str,
    payload: dict[str, Any],
    reference: str,
    by: User | None = None,
    actor_name: str = "",
    client: PlatformClient | None = None,
) -> DispatchLog:
    """Send `payload` to the student through the platform, at most once per (what, reference).

    Returns the DispatchLog row of the attempt that got through (or of the earlier send, when
    this one was already sent); raises DispatchError, after recording it, when it failed.
    """
    [sent] = dispatch_many(
        [Outgoing(student=student, kind=kind, payload=payload, reference=reference)],
        by=by,
        actor_name=actor_name,
        client=client,
    )
    if sent.error is not None:
        raise sent.error
    return sent.log


def dispatch_many(
    items: list[Outgoing],
    *,
    by: User | None = None,
    actor_name: str = "",
    client: PlatformClient | None = None,
) -> list[Sent]:
    """Send every item, each at most once per (what, reference), up to the client's concurrency
    at a time; one `Sent` per item, in order. Input is checked before anything is sent."""
    for item in items:
        if item.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {item.kind!r}")
        if not item.reference.strip():
            raise ValueError("reference must say what this dispatch is for, e.g. 'alert:42'")
    keys = [
        idempotency_key(student=i.student, kind=i.kind, payload=i.payload, reference=i.reference)
        for i in items
    ]
    actor = {"actor": by, "actor_name": "" if by else (actor_name or SYSTEM_DISPATCH)}
    already = {
        log.idempotency_key: log
        for log in DispatchLog.objects.filter(idempotency_key__in=set(keys), status=DispatchLog.Status.SENT)
    }
    # Each key is sent once, by its first item; an item repeating a key shares that outcome.
    first_of = {key: n for n, key in reversed(list(enumerate(keys)))}
    fresh = [n for n, key in enumerate(keys) if key not in already and first_of[key] == n]
    before = dict(
        DispatchLog.objects.filter(idempotency_key__in=[keys[n] for n in fresh])
        .values("idempotency_key")
        .annotate(n=Max("attempt"))
        .values_list("idempotency_key", "n")
    )
    attempts = {keys[n]: _Attempts(first=(before.get(keys[n]) or 0) + 1) for n in fresh}
    receipts: dict[str, DispatchReceipt] = {}
    errors: dict[str, PlatformError] = {}

    def send(n: int) -> DispatchReceipt:
        item, key = items[n], keys[n]
        noted = attempts[key]
        return client.dispatch(
            item.student.platform_id,
            kind=item.kind,
            payload=item.payload,
            idempotency_key=key,
            on_attempt=lambda number, status, error: noted.rows.append(
                (noted.first + number - 1, status, error, timezone.now())
            ),
        )

    owned = client is None and bool(fresh)
    client = client or (PlatformClient() if fresh else None)
    try:
        for n, receipt, error in client.map_concurrently(fresh, send) if fresh else ():
            if error is None:
                receipts[keys[n]] = receipt
            else:
                errors[keys[n]] = error
    finally:
        if owned:
            client.close()

    with transaction.atomic():
        logs = {key: _logs(items[first_of[key]], key, noted) for key, noted in attempts.items()}
        DispatchLog.objects.bulk_create([log for rows in logs.values() for log in rows])
        results: dict[str, Sent] = {}
        events: dict[str, ActivityEvent] = {}
        for n, key in enumerate(keys):
            if first_of[key] != n:
                continue
            item = items[n]
            what = {"idempotency_key": key, "kind": item.kind, "reference": item.reference}
            scope = {"student_id": item.student.pk, "organisation_id": item.student.organisation_id, **actor}
            if key in already:
                sent = already[key]
                results[key] = Sent(log=sent, deduplicated=True)
                events[key] = new_event(
                    verb="dispatch.deduplicated",
                    target=sent,
                    why=f"already sent as attempt {sent.attempt}; not sent again",
                    details=what,
                    **scope,
                )
            elif key in receipts:
                log = logs[key][-1]
                results[key] = Sent(log=log)
                events[key] = new_event(
                    verb="dispatch.sent",
                    target=log,
                    why=f"{item.kind} for {item.reference}",
                    details={
                        **what,
                        "attempts": len(logs[key]),
                        "dispatch_id": receipts[key].dispatch_id,
                        "replayed": receipts[key].replayed,
                    },
                    **scope,
                )
            else:
                error = errors[key]
                last = logs[key][-1] if logs[key] else None
                record_failure(
                    verb="dispatch.failed",
                    remediation=error.hint,
                    fingerprint=_fingerprint(item.student, item.kind),
                    target=last,
                    target_type="" if last else "classroom.dispatchlog",
                    why=str(error),
                    details={**what, "attempts": len(logs[key]), "error": str(error)},
                    **scope,
                )
                results[key] = Sent(log=last, error=DispatchError(str(error), hint=error.hint, log=last))
        record_events(list(events.values()))
        _clear_failures([items[first_of[key]] for key in receipts])
    return [results[key] for key in keys]


def _logs(item: Outgoing, key: str, noted: _Attempts) -> list[DispatchLog]:
    return [
        DispatchLog(
            student=item.student,
            kind=item.kind,
            idempotency_key=key,
            attempt=attempt,
            payload=item.payload,
            status=DispatchLog.Status.FAILED if error else DispatchLog.Status.SENT,
            response_code=status,
            error=error,
            attempted_at=at,
        )
        for attempt, status, error, at in noted.rows
    ]


def _clear_failures(sent: list[Outgoing]) -> None:
    """A send that went through closes the open failure of its student and kind. Almost every
    send has none to close: one query finds the few that do."""
    if not sent:
        return
    fingerprints = {_fingerprint(item.student, item.kind): item for item in sent}
    open_ones = set(
        Failure.objects.filter(fingerprint__in=list(fingerprints), state=Failure.State.OPEN).values_list(
            "fingerprint", flat=True
        )
    )
    for fingerprint in sorted(open_ones):
        item = fingerprints[fingerprint]
        failure_clear(
            organisation_id=item.student.organisation_id,
            fingerprint=fingerprint,
            actor_name=SYSTEM_DISPATCH,
            why=f"{item.kind} for {item.reference} sent",
        )


def _fingerprint(student: Student, kind: str) -> str:
    """One open failure per student and kind of dispatch, until a send of that kind goes through."""
    return f"dispatch|{student.pk}|{kind}"
