"""/healthz, the worker heartbeat and the schedules that drive it."""

from __future__ import annotations

import threading
from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from audit.models import ActivityEvent
from classroom.live.services import session_start
from tests import factories
from tutor.conductor.process import serve as conductor_serve
from tutor.models import WorkerHeartbeat
from tutor.proactive.dispatcher import serve
from tutor.tasks import heartbeat


def test_healthz_reports_database_and_missing_worker(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == {"status": "ok"}
    assert body["worker"]["status"] == "never"
    assert body["dispatcher"]["status"] == "never"
    assert body["status"] == "degraded"


def test_healthz_is_ok_once_the_worker_and_the_dispatcher_have_beaten(client, db):
    heartbeat()
    body = client.get("/healthz").json()
    assert body["worker"]["status"] == "ok"
    assert body["worker"]["age_seconds"] <= 5
    # Scheduled messages would wait for the every-minute backstop: not healthy yet.
    assert (body["dispatcher"]["status"], body["status"]) == ("never", "degraded")
    stop = threading.Event()
    serve(stop, on_pass=lambda report: stop.set())  # one pass of the dispatcher process
    body = client.get("/healthz").json()
    assert (body["dispatcher"]["status"], body["status"]) == ("ok", "ok")
    assert body["dispatcher"]["age_seconds"] <= 5


def test_healthz_counts_the_conductor_only_while_a_session_is_live(client, school):
    heartbeat()
    WorkerHeartbeat.beat(WorkerHeartbeat.dispatcher_cluster())
    body = client.get("/healthz").json()
    assert body["conductor"] == {
        "status": "never",
        "last_heartbeat": None,
        "age_seconds": None,
        "live_sessions": False,
    }
    assert body["status"] == "ok"
    session_start(school_class=school.school_class, topic="Fractions", by=school.teacher)
    assert client.get("/healthz").json()["status"] == "degraded"
    call_command("run_conductor", "--once")
    assert client.get("/healthz").json()["status"] == "degraded"  # --once does not beat: a loop does
    stop = threading.Event()
    conductor_serve(stop, holder="test", on_tick=lambda ticked: stop.set())
    body = client.get("/healthz").json()
    assert (body["conductor"]["status"], body["status"]) == ("ok", "ok")


def test_healthz_reports_a_stale_worker(client, db, settings):
    factories.WorkerHeartbeatFactory(
        beat_at=timezone.now() - timedelta(seconds=settings.WORKER_HEARTBEAT_STALE_SECONDS + 60)
    )
    body = client.get("/healthz").json()
    assert body["worker"]["status"] == "stale"
    assert body["status"] == "degraded"


def test_heartbeat_is_an_upsert(db):
    heartbeat()
    heartbeat()
    assert WorkerHeartbeat.objects.count() == 1


def test_install_schedules_is_idempotent(db):
    call_command("install_schedules")
    call_command("install_schedules")
    assert set(Schedule.objects.values_list("name", flat=True)) == {
        "heartbeat",
        "recompute-alerts",
        "sync-platform-nightly",
        "audit-notify",
        "audit-retention",
        "audit-checkpoint",
        "plan-drafts-expiry",
        "workflow-recommendations",
        "proactive-dispatch",
        "orchestrator-prepare",
        "live-events-retention",
    }
    assert Schedule.objects.get(name="recompute-alerts").func == "classroom.tasks.recompute_all_alerts"
    assert ActivityEvent.objects.filter(verb="schedules.installed", source="command").count() == 2


def test_recompute_task_runs_for_every_organisation(school):
    from classroom.tasks import recompute_all_alerts

    factories.AssignmentFactory(student=school.student, due_at=timezone.now() - timedelta(days=4))
    results = recompute_all_alerts()
    assert results[school.organisation.pk]["opened"] == 1
