"""Every write of the classroom app: one function per use case, each recording its audit event."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from audit.services import record
from classroom import rules
from classroom.inputs import NOTE, check_text
from classroom.locks import advisory_xact_lock
from classroom.models import (
    Alert,
    Assignment,
    DailyPerformance,
    LearnerCheckIn,
    Organisation,
    Student,
    User,
)

SYSTEM_ALERTS = "system:alerts"
ACTIVE_STATES = (Alert.State.OPEN, Alert.State.ACKNOWLEDGED)
RULE_KINDS = (Alert.Kind.OVERDUE_ASSIGNMENTS, Alert.Kind.STALLED_MASTERY, Alert.Kind.LOW_CONFIDENCE_STREAK)
_CHUNK = 500


@dataclass
class RecomputeResult:
    students: int = 0
    opened: int = 0
    updated: int = 0
    resolved: int = 0


def alerts_recompute(
    *, organisation: Organisation, student_ids: Iterable[int] | None = None, now: datetime | None = None
) -> RecomputeResult:
    """Re-evaluate the risk rules for an organisation's students (all, or the given ones).

    1. Load history, open assignments and active alerts in a fixed number of queries per chunk.
    2. Open an alert for each new finding, refresh the numbers of one still firing (an
       acknowledged alert stays acknowledged), and resolve one whose condition cleared.
    3. Record an event for every opened, changed or resolved alert.
    Running it twice in a row changes nothing the second time.
    """
    now = now or timezone.now()
    today = timezone.localdate(now)
    thresholds = organisation.thresholds()
    students = Student.objects.filter(organisation=organisation)
    if student_ids is not None:
        students = students.filter(pk__in=list(student_ids))
    ids = list(students.order_by("pk").values_list("pk", flat=True))
    result = RecomputeResult(students=len(ids))
    for start in range(0, len(ids), _CHUNK):
        with transaction.atomic():
            # Two recomputes at once (two syncs finishing) would both open the same new alert.
            advisory_xact_lock(f"alerts:{organisation.pk}")
            _recompute_chunk(organisation, ids[start : start + _CHUNK], now, today, thresholds, result)
    return result


def _recompute_chunk(
    organisation: Organisation,
    ids: list[int],
    now: datetime,
    today,
    thresholds: dict,
    result: RecomputeResult,
) -> None:
    since = today - timedelta(days=rules.history_days_needed(thresholds))
    days: dict[int, list[rules.DayFact]] = defaultdict(list)
    # The learner's own ratings (day.done in the learner app) stand in on days the platform has none.
    own = {
        (student_id, day): confidence
        for student_id, day, confidence in LearnerCheckIn.objects.filter(
            student_id__in=ids, date__gte=since, date__lte=today
        ).values_list("student_id", "date", "confidence")
    }
    for student_id, day, mastery, confidence in DailyPerformance.objects.filter(
        student_id__in=ids, date__gte=since, date__lte=today
    ).values_list("student_id", "date", "mastery", "confidence"):
        own_rating = own.pop((student_id, day), None)
        rated = confidence if confidence is not None else own_rating
        days[student_id].append(rules.DayFact(day, mastery, rated))
    for (student_id, day), confidence in own.items():
        days[student_id].append(rules.DayFact(day, None, confidence))
    assignments: dict[int, list[rules.AssignmentFact]] = defaultdict(list)
    for student_id, title, due_at, submitted_at in Assignment.objects.filter(
        student_id__in=ids, submitted_at__isnull=True, due_at__lte=now
    ).values_list("student_id", "title", "due_at", "submitted_at"):
        assignments[student_id].append(rules.AssignmentFact(title, due_at, submitted_at))
    findings = {
        student_id: rules.evaluate(
            days=days[student_id],
            assignments=assignments[student_id],
            now=now,
            today=today,
            thresholds=thresholds,
        )
        for student_id in ids
    }
    _apply_findings(organisation, ids, RULE_KINDS, findings, now, result)


def alerts_set(
    *, organisation: Organisation, kind: str, findings: dict[int, rules.Finding], now: datetime | None = None
) -> RecomputeResult:
    """Make the alerts of one kind that another app evaluates (expiring study-plan drafts) match its
    findings: open the new, refresh the changed, resolve those of students no longer found."""
    now = now or timezone.now()
    with transaction.atomic():
        advisory_xact_lock(f"alerts:{organisation.pk}")
        ids = set(findings) | set(
            Alert.objects.filter(organisation=organisation, kind=kind, state__in=ACTIVE_STATES).values_list(
                "student_id", flat=True
            )
        )
        result = RecomputeResult(students=len(ids))
        grouped = {student_id: [findings[student_id]] if student_id in findings else [] for student_id in ids}
        _apply_findings(organisation, sorted(ids), (kind,), grouped, now, result)
    return result


def _apply_findings(
    organisation: Organisation,
    ids: list[int],
    kinds: tuple[str, ...],
    findings: dict[int, list[rules.Finding]],
    now: datetime,
    result: RecomputeResult,
) -> None:
    active = {
        (a.student_id, a.kind): a
        for a in Alert.objects.select_for_update().filter(
            student_id__in=ids, kind__in=kinds, state__in=ACTIVE_STATES
        )
    }
    to_create: list[Alert] = []
    to_update: list[Alert] = []
    for student_id in ids:
        fired = {f.kind for f in findings[student_id]}
        for finding in findings[student_id]:
            alert = active.get((student_id, finding.kind))
            if alert is None:
                to_create.append(
                    Alert(
                        organisation=organisation,
                        student_id=student_id,
                        kind=finding.kind,
                        severity=finding.severity,
                        summary=finding.summary,
                        metrics=finding.metrics,
                        opened_at=now,
                        last_evaluated_at=now,
                    )
                )
            elif alert.metrics != finding.metrics:
                alert.severity, alert.summary, alert.metrics = (
                    finding.severity,
                    finding.summary,
                    finding.metrics,
                )
                alert.last_evaluated_at = now
                to_update.append(alert)
        for kind in kinds:
            alert = active.get((student_id, kind))
            if alert is not None and kind not in fired:
                alert.state, alert.resolved_at, alert.last_evaluated_at = Alert.State.RESOLVED, now, now
                alert.resolution_note = "The condition no longer holds; resolved automatically."
                to_update.append(alert)
    created = Alert.objects.bulk_create(to_create)
    Alert.objects.bulk_update(
        to_update,
        ["severity", "summary", "metrics", "state", "resolved_at", "resolution_note", "last_evaluated_at"],
    )
    for alert in created:
        result.opened += 1
        _record_alert(
            alert, "alert.opened", why=alert.summary, details={"kind": alert.kind, "metrics": alert.metrics}
        )
    for alert in to_update:
        if alert.state == Alert.State.RESOLVED:
            result.resolved += 1
            _record_alert(alert, "alert.resolved", why="condition cleared", details={"kind": alert.kind})
        else:
            result.updated += 1
            _record_alert(
                alert,
                "alert.updated",
                why=alert.summary,
                details={"kind": alert.kind, "metrics": alert.metrics},
            )


def _record_alert(alert: Alert, verb: str, *, why: str, details: dict, actor: User | None = None) -> None:
    record(
        verb=verb,
        actor=actor,
        actor_name="" if actor else SYSTEM_ALERTS,
        target=alert,
        organisation_id=alert.organisation_id,
        student_id=alert.student_id,
        why=why,
        details=details,
    )


def check_in_record(*, student: Student, day: date, confidence: int) -> LearnerCheckIn:
    """The learner's own rating of `day` (1 to 5), from the learner app; a second rating of the
    same day replaces the first. The caller records the audit event of what it was part of."""
    row, _ = LearnerCheckIn.objects.update_or_create(
        student=student, date=day, defaults={"confidence": confidence, "reported_at": timezone.now()}
    )
    return row


class AlertStateError(Exception):
    """The alert is not in a state that allows the change (someone else moved it first)."""


@transaction.atomic
def alert_acknowledge(*, alert: Alert, by: User) -> Alert:
    """Mark an open alert as seen; it stays on the dashboard until it clears or is resolved."""
    _require_actor(by)
    now = timezone.now()
    claimed = Alert.objects.filter(pk=alert.pk, state=Alert.State.OPEN).update(
        state=Alert.State.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=by
    )
    if claimed != 1:
        raise AlertStateError("only an open alert can be acknowledged")
    alert.refresh_from_db()
    _record_alert(
        alert, "alert.acknowledged", why="acknowledged by the teacher", details={"kind": alert.kind}, actor=by
    )
    return alert


@transaction.atomic
def alert_resolve(*, alert: Alert, by: User, note: str = "") -> Alert:
    """Close an alert by hand. If its condition still holds at the next check, a new alert opens."""
    _require_actor(by)
    note = check_text(note.strip(), field="note", limit=NOTE)
    now = timezone.now()
    claimed = Alert.objects.filter(
        pk=alert.pk, state__in=[Alert.State.OPEN, Alert.State.ACKNOWLEDGED]
    ).update(state=Alert.State.RESOLVED, resolved_at=now, resolved_by=by, resolution_note=note)
    if claimed != 1:
        raise AlertStateError("this alert is already resolved")
    alert.refresh_from_db()
    _record_alert(
        alert, "alert.resolved", why=note or "resolved by the teacher", details={"kind": alert.kind}, actor=by
    )
    return alert


def _require_actor(user: User) -> None:
    if not user.can_act_on_alerts:
        raise PermissionDenied("only teachers and organisation admins can change alerts")
