"""Which conductor process ticks which live session: a lease per session in the database.

A conductor renews its own leases on every tick and takes those that are free (new sessions, or
leases past `expires_at`: their holder died or stalled), up to LIVE_CONDUCTOR_MAX_SESSIONS. Each
take is one conditional UPDATE, so two conductors asking at once never both get a session: the
second finds the row renewed and its WHERE no longer matches. Nothing else is held in memory: a
conductor that takes a session over reads its state (the score series, the anomalies raised)
from the database, as the one before it did.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from classroom.live.models import ConductorLease, LiveSession


def leases_claim(holder: str, *, now: datetime | None = None) -> list[int]:
    """The live sessions `holder` ticks until its next claim: the ones it held, renewed, and free
    ones taken, up to LIVE_CONDUCTOR_MAX_SESSIONS."""
    now = now or timezone.now()
    until = now + timedelta(seconds=settings.LIVE_LEASE_SECONDS)
    unleased = LiveSession.objects.filter(status=LiveSession.Status.LIVE, lease__isnull=True)
    ConductorLease.objects.bulk_create(
        [
            ConductorLease(session_id=pk, holder="", expires_at=now)
            for pk in unleased.values_list("pk", flat=True)
        ],
        ignore_conflicts=True,
    )
    held = ConductorLease.objects.filter(holder=holder, expires_at__gt=now).update(expires_at=until)
    room = settings.LIVE_CONDUCTOR_MAX_SESSIONS - held
    if room > 0:
        free = list(
            ConductorLease.objects.filter(expires_at__lte=now, session__status=LiveSession.Status.LIVE)
            .order_by("session_id")
            .values_list("session_id", flat=True)[:room]
        )
        ConductorLease.objects.filter(session_id__in=free, expires_at__lte=now).update(
            holder=holder, expires_at=until
        )
    return list(
        ConductorLease.objects.filter(
            holder=holder, expires_at__gt=now, session__status=LiveSession.Status.LIVE
        )
        .order_by("session_id")
        .values_list("session_id", flat=True)
    )


def leases_release(holder: str, *, now: datetime | None = None) -> int:
    """Give up `holder`'s leases at once (a conductor stopping), so others take them on their
    next tick instead of after LIVE_LEASE_SECONDS."""
    return ConductorLease.objects.filter(holder=holder).update(expires_at=now or timezone.now())
