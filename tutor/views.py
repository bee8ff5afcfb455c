from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from tutor.models import WorkerHeartbeat


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Database reachable (else 503) and the age of the worker's last heartbeat.

    A stale or missing heartbeat reports "degraded" with 200: the web process still serves
    pages, but scheduled work is not running and an operator should look.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        beat = WorkerHeartbeat.objects.filter(cluster=settings.Q_CLUSTER["name"]).first()
    except DatabaseError as error:
        return JsonResponse(
            {"status": "error", "database": {"status": "error", "error": type(error).__name__}}, status=503
        )
    worker: dict[str, object] = {"status": "never", "last_heartbeat": None, "age_seconds": None}
    status = "degraded"
    if beat is not None:
        age = (timezone.now() - beat.beat_at).total_seconds()
        fresh = age <= settings.WORKER_HEARTBEAT_STALE_SECONDS
        worker = {
            "status": "ok" if fresh else "stale",
            "last_heartbeat": beat.beat_at.isoformat(),
            "age_seconds": int(age),
        }
        status = "ok" if fresh else "degraded"
    return JsonResponse({"status": status, "database": {"status": "ok"}, "worker": worker})
