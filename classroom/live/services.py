"""Live sessions' writes: starting and ending a session, taking in the platform's signal batches,
and the tick that scores every live session and looks for anomalies.

Every start, end and anomaly is an audit event; signal batches are not (a class sends one every
few seconds; the events themselves are the record, kept LIVE_SIGNAL_RETENTION_HOURS).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import new_event, record, record_events
from classroom.live import detect
from classroom.live.models import (
    ConductorLease,
    LiveAnomaly,
    LiveEvent,
    LiveParticipant,
    LiveSession,
    LiveTick,
)
from classroom.live.score import WindowCounts, config_for, engagement
from classroom.models import SchoolClass, User

SYSTEM = "system:live"
ACTIVITY = frozenset({"chat", "poll_vote", "reaction"})
PRESENCE = frozenset({"join", "leave"})


class LiveError(Exception):
    """A live-session request the service refuses: `status` and `code` for the API, `field` when
    one input is to blame."""

    def __init__(self, status: int, code: str, detail: str, *, field: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field


@dataclass(frozen=True)
class Event:
    """One event of a batch, checked (`classroom.live.api` parses them)."""

    id: str
    type: str
    at: datetime
    participant: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Ingested:
    accepted: int
    duplicates: int


# Sessions


@transaction.atomic
def session_start(
    *, school_class: SchoolClass, topic: str, by: User | None, now: datetime | None = None
) -> LiveSession:
    """A live session for the class, by a teacher (`by`) or the platform (`by` None). A class has
    one live session at a time: a second start is a 409 naming the one that is live."""
    now = now or timezone.now()
    SchoolClass.objects.select_for_update().filter(pk=school_class.pk).first()
    live = LiveSession.objects.filter(school_class=school_class, status=LiveSession.Status.LIVE).first()
    if live is not None:
        raise LiveError(
            409, "session_live", f"{school_class} has a live session already ({live.pk}): end it first"
        )
    session = LiveSession.objects.create(
        organisation_id=school_class.organisation_id,
        school_class=school_class,
        topic=topic,
        started_by=by,
        opened_by_platform=by is None,
        started_at=now,
    )
    record(
        verb="live.session_started",
        **({"actor": by} if by is not None else {"actor_name": "system:platform"}),
        target=session,
        why=f"live session {topic!r} started for {school_class}",
        details={"topic": topic, "by_platform": by is None},
    )
    return session


@transaction.atomic
def session_end(*, session: LiveSession, by: User | None, now: datetime | None = None) -> LiveSession:
    """End a live session (idempotent: an ended one is answered as it is, nothing recorded)."""
    now = now or timezone.now()
    session = LiveSession.objects.select_for_update().get(pk=session.pk)
    if not session.is_live:
        return session
    session.status, session.ended_at = LiveSession.Status.ENDED, now
    session.save(update_fields=["status", "ended_at"])
    ConductorLease.objects.filter(session=session).delete()
    minutes = round((now - session.started_at).total_seconds() / 60, 1)
    anomalies = session.anomalies.count()
    record(
        verb="live.session_ended",
        **({"actor": by} if by is not None else {"actor_name": "system:platform"}),
        target=session,
        why=f"live session {session.topic!r} ended after {minutes} minutes, {anomalies} anomalies",
        details={"minutes": minutes, "anomalies": anomalies},
    )
    return session


# Signals


@transaction.atomic
def signals_ingest(*, session: LiveSession, events: list[Event], now: datetime | None = None) -> Ingested:
    """Store the batch's new events (an event id already stored, in this batch or before, is
    skipped) and bring the participants up to date. One batch at a time per session (the
    session's row is locked), so two batches never race on who is present."""
    now = now or timezone.now()
    session = LiveSession.objects.select_for_update().get(pk=session.pk)
    if not session.is_live:
        raise LiveError(409, "session_ended", f"the live session {session.pk} has ended; signals are refused")
    unique: dict[str, Event] = {}
    for event in events:
        unique.setdefault(event.id, event)
    known = set(
        LiveEvent.objects.filter(session=session, event_id__in=list(unique)).values_list(
            "event_id", flat=True
        )
    )
    fresh = sorted((e for e in unique.values() if e.id not in known), key=lambda e: e.at)
    LiveEvent.objects.bulk_create(
        [
            LiveEvent(
                session=session,
                event_id=e.id,
                type=e.type,
                at=e.at,
                participant=e.participant,
                data=e.data,
                received_at=now,
            )
            for e in fresh
        ],
        ignore_conflicts=True,
    )
    _presence(session, fresh)
    return Ingested(accepted=len(fresh), duplicates=len(events) - len(fresh))


def _presence(session: LiveSession, events: list[Event]) -> None:
    """Joins, leaves and activity, in time order, onto the participants' rows. A presence change
    older than the row's last one (a batch that arrived late) is left out."""
    names = {e.participant for e in events if e.participant}
    rows = {p.participant: p for p in LiveParticipant.objects.filter(session=session, participant__in=names)}
    new: dict[str, LiveParticipant] = {}
    changed: set[str] = set()
    for event in events:
        if not event.participant:
            continue
        row = rows.get(event.participant) or new.get(event.participant)
        if row is None:
            if event.type == "leave":
                continue
            row = new[event.participant] = LiveParticipant(
                session=session, participant=event.participant, joined_at=event.at, last_event_at=event.at
            )
            continue
        last_change = max(row.joined_at, row.left_at or row.joined_at)
        if event.type == "leave" and row.present and event.at >= last_change:
            row.present, row.left_at = False, event.at
            row.left_reason = str(event.data.get("reason", "left"))
        elif event.type != "leave" and not row.present and event.at >= last_change:
            row.present, row.joined_at, row.left_at, row.left_reason = True, event.at, None, ""
        row.last_event_at = max(row.last_event_at, event.at)
        if row.pk is not None:
            changed.add(event.participant)
    LiveParticipant.objects.bulk_create(new.values())
    LiveParticipant.objects.bulk_update(
        [rows[name] for name in changed],
        ["present", "joined_at", "left_at", "left_reason", "last_event_at"],
    )


def events_expire(*, now: datetime | None = None) -> int:
    """Delete raw events past LIVE_SIGNAL_RETENTION_HOURS (the ticks keep the class figures), and
    say how many in the audit log."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.LIVE_SIGNAL_RETENTION_HOURS)
    with transaction.atomic():
        deleted, _ = LiveEvent.objects.filter(received_at__lt=cutoff).delete()
        if deleted:
            record(
                verb="live.events_expired",
                actor_name=SYSTEM,
                why=f"{deleted} raw live-session events past LIVE_SIGNAL_RETENTION_HOURS deleted",
                details={"deleted": deleted, "before": cutoff.isoformat()},
            )
    return deleted


# The tick


@dataclass(frozen=True)
class Ticked:
    session_id: int
    tick: LiveTick
    anomalies: list[LiveAnomaly]


def tick_time(now: datetime) -> datetime:
    """`now` down to the tick grid (every LIVE_TICK_SECONDS from the epoch), so that a tick's time
    is the same whichever conductor makes it, and a session has at most one tick per slot."""
    period = settings.LIVE_TICK_SECONDS
    stamp = now.timestamp()
    return datetime.fromtimestamp(stamp - stamp % period, tz=now.tzinfo)


def tick(session_ids: list[int], *, now: datetime | None = None) -> list[Ticked]:
    """Score each live session of `session_ids` at the current tick, close the open anomalies the
    class has come back from, and raise what the rules find. A fixed number of queries whatever
    the number of sessions (plus one to close anomalies and one audit append, when there are any)."""
    at = tick_time(now or timezone.now())
    sessions = list(
        LiveSession.objects.filter(pk__in=session_ids, status=LiveSession.Status.LIVE).select_related(
            "organisation"
        )
    )
    if not sessions:
        return []
    ids = [s.pk for s in sessions]
    score_config = settings.LIVE_SCORE
    rules = settings.LIVE_ANOMALY
    window = settings.LIVE_WINDOW_SECONDS
    look_back = max(window, score_config["poll_recent_seconds"], score_config["active_window_seconds"])
    events_by: dict[int, list[tuple[str, str, dict[str, Any], datetime]]] = defaultdict(list)
    for session_id, type_, participant, data, when in LiveEvent.objects.filter(
        session_id__in=ids, at__gt=at - timedelta(seconds=look_back), at__lte=at
    ).values_list("session_id", "type", "participant", "data", "at"):
        events_by[session_id].append((type_, participant, data, when))
    people_by: dict[int, list[tuple[bool, datetime | None, str]]] = defaultdict(list)
    for session_id, present, left_at, reason in LiveParticipant.objects.filter(
        session_id__in=ids
    ).values_list("session_id", "present", "left_at", "left_reason"):
        people_by[session_id].append((present, left_at, reason))
    series_by: dict[int, list[detect.Point]] = defaultdict(list)
    history = max(
        rules["decline_window_seconds"],
        window + rules["sudden_drop_baseline_seconds"],
        rules["low_for_seconds"],
    )
    for session_id, when, score, present in (
        LiveTick.objects.filter(session_id__in=ids, at__gte=at - timedelta(seconds=history + 5), at__lt=at)
        .order_by("at")
        .values_list("session_id", "at", "score", "present")
    ):
        series_by[session_id].append(detect.Point(when, score, present))
    open_by: dict[int, dict[str, tuple[datetime, str]]] = defaultdict(dict)
    open_ids: dict[tuple[int, str], list[int]] = defaultdict(list)
    for pk, session_id, type_, when, severity in (
        LiveAnomaly.objects.filter(session_id__in=ids, cleared_at__isnull=True)
        .order_by("at")
        .values_list("pk", "session_id", "type", "at", "severity")
    ):
        open_by[session_id][type_] = (when, severity)
        open_ids[session_id, type_].append(pk)

    ticks, found, to_clear = [], [], []
    for session in sessions:
        config = config_for(session.organisation.live_settings)
        counts, exits = _counts(session, at, events_by[session.pk], people_by[session.pk], config)
        result = engagement(counts, config)
        new_tick = LiveTick(
            session=session,
            at=at,
            score=result.score,
            category=result.category,
            present=counts.present,
            signals=result.signals,
            components=result.components,
        )
        ticks.append(new_tick)
        series = [*series_by[session.pk], detect.Point(at, result.score, counts.present)]
        still_open = open_by[session.pk]
        for kind in detect.cleared(series, still_open, rules):
            to_clear += open_ids[session.pk, kind]
            del still_open[kind]
        for finding in detect.detect(
            series, exits=exits, started_at=session.started_at, last_raised=still_open, config=rules
        ):
            found.append(
                LiveAnomaly(
                    session=session,
                    type=finding.type,
                    severity=finding.severity,
                    at=at,
                    description=finding.description,
                    evidence=finding.evidence,
                )
            )
    with transaction.atomic():
        LiveTick.objects.bulk_create(ticks, ignore_conflicts=True)
        if to_clear:
            LiveAnomaly.objects.filter(pk__in=to_clear).update(cleared_at=at)
        stored = LiveAnomaly.objects.bulk_create(found)
        if stored:
            record_events([_anomaly_event(a) for a in stored])
    by_session: dict[int, list[LiveAnomaly]] = defaultdict(list)
    for anomaly in stored:
        by_session[anomaly.session_id].append(anomaly)
    return [Ticked(t.session_id, t, by_session[t.session_id]) for t in ticks]


def _counts(
    session: LiveSession,
    at: datetime,
    events: list[tuple[str, str, dict[str, Any], datetime]],
    people: list[tuple[bool, datetime | None, str]],
    config: dict[str, Any],
) -> tuple[WindowCounts, detect.Exits]:
    window_start = at - timedelta(seconds=settings.LIVE_WINDOW_SECONDS)
    seconds = (at - max(window_start, session.started_at)).total_seconds()
    in_window = [e for e in events if e[3] > window_start]
    chats = sum(1 for e in in_window if e[0] == "chat")
    reactions = sum(1 for e in in_window if e[0] == "reaction")
    active_start = at - timedelta(seconds=config["active_window_seconds"])
    active = len({e[1] for e in events if e[0] in ACTIVITY and e[1] and e[3] > active_start})
    poll_voters = _poll_voters(
        [e for e in events if e[0] == "poll_vote" and e[2].get("poll_id")],
        at - timedelta(seconds=config["poll_settle_seconds"]),
    )
    grace = timedelta(seconds=settings.LIVE_DISCONNECT_GRACE_SECONDS)
    # Who lost their connection a moment ago is still counted in: most come back (a blip, a deploy).
    present = sum(
        1
        for here, left_at, reason in people
        if here or (reason == "disconnect" and left_at is not None and at - left_at < grace)
    )
    exit_times = [
        left_at + grace if reason == "disconnect" else left_at
        for here, left_at, reason in people
        if not here and left_at is not None
    ]
    exits_in_window = sum(1 for t in exit_times if window_start < t <= at)
    burst_start = at - timedelta(seconds=settings.LIVE_ANOMALY["mass_exit_window_seconds"])
    exits_in_burst = sum(1 for t in exit_times if burst_start < t <= at)
    counts = WindowCounts(
        seconds=seconds,
        present=present,
        present_at_start=present + exits_in_window,
        chats=chats,
        reactions=reactions,
        active=active,
        exits=exits_in_window,
        poll_voters=poll_voters,
    )
    return counts, detect.Exits(count=exits_in_burst, present_before=present + exits_in_burst)


def _poll_voters(votes: list[tuple[str, str, dict[str, Any], datetime]], settled: datetime) -> int | None:
    """Distinct voters of the poll that counts now: the newest whose first vote came before
    `settled` (a poll still collecting its first votes would read as a class that stopped
    voting), else the newest; None without a recent vote."""
    if not votes:
        return None
    first_vote: dict[str, datetime] = {}
    for _, _, data, when in votes:
        poll = data["poll_id"]
        first_vote[poll] = min(first_vote.get(poll, when), when)
    ready = [poll for poll, when in first_vote.items() if when <= settled]
    poll = max(ready or first_vote, key=lambda name: first_vote[name])
    return len({who for _, who, data, _ in votes if data["poll_id"] == poll})


def _anomaly_event(anomaly: LiveAnomaly) -> Any:
    return new_event(
        verb="live.anomaly_detected",
        actor_name=SYSTEM,
        target=anomaly.session,
        why=f"{anomaly.get_type_display()} ({anomaly.severity.lower()}): {anomaly.description}",
        details={
            "anomaly_id": anomaly.pk,
            "type": anomaly.type,
            "severity": anomaly.severity,
            **anomaly.evidence,
        },
    )
