from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from classroom.live.models import LiveSession
from tutor.conductor.process import conductor_cluster
from tutor.models import WorkerHeartbeat


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Database reachable (else 503), and the age of the last heartbeat of the django-q2 worker,
    of the proactive dispatcher process (`run_due_tasks`) and of the live-session conductor
    (`run_conductor`).

    A stale or missing heartbeat reports "degraded" with 200: the web process still serves
    pages, but scheduled work (or the sending of due messages) is not running and an operator
    should look. The conductor's counts only while a live session is on: without one, nothing
    needs it.
    """
    names = {
        "worker": settings.Q_CLUSTER["name"],
        "dispatcher": WorkerHeartbeat.dispatcher_cluster(),
        "conductor": conductor_cluster(),
    }
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        beats = dict(
            WorkerHeartbeat.objects.filter(cluster__in=names.values()).values_list("cluster", "beat_at")
        )
        live = LiveSession.objects.filter(status=LiveSession.Status.LIVE).exists()
    except DatabaseError as error:
        return JsonResponse(
            {"status": "error", "database": {"status": "error", "error": type(error).__name__}}, status=503
        )
    body: dict[str, object] = {"database": {"status": "ok"}}
    for part, name in names.items():
        beat_at = beats.get(name)
        if beat_at is None:
            body[part] = {"status": "never", "last_heartbeat": None, "age_seconds": None}
            continue
        age = (timezone.now() - beat_at).total_seconds()
        body[part] = {
            "status": "ok" if age <= settings.WORKER_HEARTBEAT_STALE_SECONDS else "stale",
            "last_heartbeat": beat_at.isoformat(),
            "age_seconds": int(age),
        }
    needed = [part for part in names if part != "conductor" or live]
    body["conductor"]["live_sessions"] = live
    healthy = all(body[part]["status"] == "ok" for part in needed)
    return JsonResponse({"status": "ok" if healthy else "degraded", **body})
