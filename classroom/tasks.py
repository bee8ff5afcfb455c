"""django-q2 entry points: thin, idempotent wrappers over services."""

from __future__ import annotations

from audit import context
from classroom.live.services import events_expire
from classroom.models import Organisation, SchoolClass, Student, SyncRun
from classroom.platform.sync import sync_run_execute, sync_run_request
from classroom.services import alerts_recompute


def recompute_alerts(organisation_id: int) -> dict[str, int]:
    with context.bind(source="worker"):
        result = alerts_recompute(organisation=Organisation.objects.get(pk=organisation_id))
    return vars(result)


def recompute_student_alerts(student_id: int) -> dict[str, int]:
    """One learner's alerts, after something of theirs changed (a rating from the learner app)."""
    student = Student.objects.select_related("organisation").get(pk=student_id)
    with context.bind(source="worker"):
        result = alerts_recompute(organisation=student.organisation, student_ids=[student_id])
    return vars(result)


def recompute_all_alerts() -> dict[int, dict[str, int]]:
    return {pk: recompute_alerts(pk) for pk in Organisation.objects.values_list("pk", flat=True)}


def sync_run(run_id: int) -> str:
    """Run one queued sync. Safe to deliver twice: a finished run is left as it is."""
    with context.bind(source="worker"):
        return sync_run_execute(run_id=run_id).status


def sync_all_classes() -> int:
    """The nightly sync: one queued run per active class (an active run is not doubled)."""
    with context.bind(source="worker"):
        classes = SchoolClass.objects.filter(is_active=True).select_related("organisation")
        return sum(
            sync_run_request(organisation=c.organisation, school_class=c, trigger=SyncRun.Trigger.SCHEDULE)[1]
            for c in classes
        )


def expire_live_events() -> str:
    """Raw live-session events past LIVE_SIGNAL_RETENTION_HOURS (hourly, `install_schedules`)."""
    return f"{events_expire()} live events expired"
