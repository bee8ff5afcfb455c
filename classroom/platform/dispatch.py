"""The dispatcher: the one way anything (an assignment, a nudge) is sent to a learner on the platform.

The idempotency key is derived from what is sent (student, kind, payload and the caller's
reference, such as the alert or scheduled run it comes from), so a retry, a re-delivered job
or a second click carries the same key and the platform sends once. Every attempt is a
DispatchLog row; the outcome is one audit event.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from audit.services import failure_clear, record, record_failure
from classroom.models import DispatchLog, Student, User
from classroom.platform.client import PlatformClient, PlatformError

KINDS = ("assignment", "nudge")
SYSTEM_DISPATCH = "system:dispatcher"


class DispatchError(Exception):
    """The platform did not take the dispatch; `hint` says what to do."""

    def __init__(self, message: str, *, hint: str, log: DispatchLog | None) -> None:
        super().__init__(message)
        self.hint = hint
        self.log = log


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
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if not reference.strip():
        raise ValueError("reference must say what this dispatch is for, e.g. 'alert:42'")
    key = idempotency_key(student=student, kind=kind, payload=payload, reference=reference)
    actor = {"actor": by, "actor_name": "" if by else (actor_name or SYSTEM_DISPATCH)}
    sent = DispatchLog.objects.filter(idempotency_key=key, status=DispatchLog.Status.SENT).first()
    if sent is not None:
        record(
            verb="dispatch.deduplicated",
            target=sent,
            student_id=student.pk,
            organisation_id=student.organisation_id,
            why=f"already sent as attempt {sent.attempt}; not sent again",
            details={"idempotency_key": key, "kind": kind, "reference": reference},
            **actor,
        )
        return sent
    first_attempt = (
        DispatchLog.objects.filter(idempotency_key=key).aggregate(n=Max("attempt"))["n"] or 0
    ) + 1
    logs: dict[int, DispatchLog] = {}

    def on_attempt(number: int, status: int | None, error: str) -> None:
        # Each attempt commits on its own, so the trail survives whatever happens next.
        log = DispatchLog.objects.create(
            student=student,
            kind=kind,
            idempotency_key=key,
            attempt=first_attempt + number - 1,
            payload=payload,
            status=DispatchLog.Status.FAILED if error else DispatchLog.Status.SENT,
            response_code=status,
            error=error,
            attempted_at=timezone.now(),
        )
        logs[number] = log

    owned = client is None
    client = client or PlatformClient()
    try:
        receipt = client.dispatch(
            student.platform_id, kind=kind, payload=payload, idempotency_key=key, on_attempt=on_attempt
        )
    except PlatformError as error:
        last = logs[max(logs)] if logs else None
        with transaction.atomic():
            record_failure(
                verb="dispatch.failed",
                remediation=error.hint,
                fingerprint=_fingerprint(student, kind),
                target=last,
                target_type="" if last else "classroom.dispatchlog",
                student_id=student.pk,
                organisation_id=student.organisation_id,
                why=str(error),
                details={
                    "idempotency_key": key,
                    "kind": kind,
                    "reference": reference,
                    "attempts": len(logs),
                    "error": str(error),
                },
                **actor,
            )
        raise DispatchError(str(error), hint=error.hint, log=last) from error
    finally:
        if owned:
            client.close()
    log = logs[max(logs)]
    with transaction.atomic():
        record(
            verb="dispatch.sent",
            target=log,
            student_id=student.pk,
            organisation_id=student.organisation_id,
            why=f"{kind} for {reference}",
            details={
                "idempotency_key": key,
                "kind": kind,
                "reference": reference,
                "attempts": len(logs),
                "dispatch_id": receipt.dispatch_id,
                "replayed": receipt.replayed,
            },
            **actor,
        )
        failure_clear(
            organisation_id=student.organisation_id,
            fingerprint=_fingerprint(student, kind),
            actor_name=SYSTEM_DISPATCH,
            why=f"{kind} for {reference} sent",
        )
    return log


def _fingerprint(student: Student, kind: str) -> str:
    """One open failure per student and kind of dispatch, until a send of that kind goes through."""
    return f"dispatch|{student.pk}|{kind}"
