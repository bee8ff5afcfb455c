"""What the live pages and `GET /api/live/sessions/<id>` read: class-level figures only."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from classroom.live.models import LiveAnomaly, LiveSession, LiveTick
from classroom.live.score import category_of

# The dashboard's chart: the last five minutes of ticks.
HISTORY = timedelta(minutes=5)
# The class page lists this many of the class's latest live sessions, each with its report.
CLASS_SESSIONS = 10


def moment(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def class_sessions(school_class_id: int) -> list[LiveSession]:
    """The class's latest live sessions, newest first, each with `anomaly_count`: one query (a
    class has at most one live, which is then the first)."""
    return list(
        LiveSession.objects.filter(school_class_id=school_class_id)
        .annotate(anomaly_count=Count("anomalies"))
        .order_by("-started_at")[:CLASS_SESSIONS]
    )


def session_json(session: LiveSession) -> dict[str, Any]:
    return {
        "session_id": session.pk,
        "class_id": session.school_class_id,
        "topic": session.topic,
        "status": session.status,
        "started_at": moment(session.started_at),
        "ended_at": moment(session.ended_at),
    }


def anomaly_json(anomaly: LiveAnomaly) -> dict[str, Any]:
    return {
        "id": anomaly.pk,
        "type": anomaly.type,
        "severity": anomaly.severity,
        "at": moment(anomaly.at),
        "description": anomaly.description,
        "evidence": anomaly.evidence,
    }


def live_json(session: LiveSession) -> dict[str, Any]:
    """The session now: its latest tick, the five minutes before it, and its anomalies (newest
    first). Three queries."""
    latest = LiveTick.objects.filter(session=session).order_by("-at").first()
    history = []
    if latest is not None:
        history = [
            {"at": moment(at), "score": score}
            for at, score in LiveTick.objects.filter(session=session, at__gt=latest.at - HISTORY)
            .order_by("at")
            .values_list("at", "score")
        ]
    anomalies = [anomaly_json(a) for a in LiveAnomaly.objects.filter(session=session).order_by("-at")[:50]]
    signals = latest.signals if latest else {}
    return {
        **session_json(session),
        "score": latest.score if latest else None,
        "category": latest.category if latest else None,
        "signals": {
            "chat_per_min": signals.get("chat_per_min", 0.0),
            "active_users": signals.get("active_users", 0),
            "poll_participation": signals.get("poll_participation"),
            "reactions_per_min": signals.get("reactions_per_min", 0.0),
        },
        "history": history,
        "anomalies": anomalies,
    }


# The charts (the live page's last five minutes, the session report's whole session): an inline
# SVG drawn on the server.
CHART_WIDTH, CHART_HEIGHT = 600, 160
CRITICAL_LINE = 30


def dashboard(session: LiveSession, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything the live page shows, ready to render: the score and its category, the four
    signal cards, the chart (segments coloured by level, the critical line, the anomalies marked)
    and the latest ten anomaly alerts. The three queries of `live_json`."""
    state = live_json(session)
    ticks = [(datetime.fromisoformat(point["at"]), point["score"]) for point in state["history"]]
    end = ticks[-1][0] if ticks else (now or session.started_at)
    start = end - HISTORY
    anomalies = [
        {**a, "at": datetime.fromisoformat(a["at"]), "label": LiveAnomaly.Type(a["type"]).label}
        for a in state["anomalies"][:10]
    ]
    return {
        "session": session,
        "score": state["score"],
        "category": state["category"],
        "signals": state["signals"],
        "chart": score_chart(ticks, anomalies, start=start, span=HISTORY),
        "anomalies": anomalies,
        "last_tick": end if ticks else None,
    }


def _x(at: datetime, start: datetime, span: timedelta) -> float:
    return round((at - start).total_seconds() / span.total_seconds() * CHART_WIDTH, 1)


def _y(score: float) -> float:
    return round(CHART_HEIGHT - score / 100 * CHART_HEIGHT, 1)


def score_chart(
    ticks: list[tuple[datetime, float]],
    anomalies: list[dict[str, Any]],
    *,
    start: datetime,
    span: timedelta,
) -> dict[str, Any]:
    """An inline SVG's parts for the scores `ticks` (time, score) from `start` over `span`: the
    area under the line in segments coloured by level, the line, the critical line, and a mark per
    anomaly (a dict with `at`, `severity` and `label`) on the score nearest its time. The live
    page draws the last five minutes; the session report the whole session."""
    categories = settings.LIVE_SCORE["categories"]
    segments = []
    for (at_a, score_a), (at_b, score_b) in zip(ticks, ticks[1:], strict=False):
        xa, xb = _x(at_a, start, span), _x(at_b, start, span)
        points = f"{xa},{CHART_HEIGHT} {xa},{_y(score_a)} {xb},{_y(score_b)} {xb},{CHART_HEIGHT}"
        segments.append({"points": points, "level": category_of(score_b, categories)})
    line = " ".join(f"{_x(at, start, span)},{_y(score)}" for at, score in ticks)
    marks = []
    for anomaly in anomalies:
        at, severity = anomaly["at"], anomaly["severity"].lower()
        if at < start:
            continue
        nearest = min(ticks, key=lambda tick: abs((tick[0] - at).total_seconds()), default=None)
        marks.append(
            {
                "x": _x(at, start, span),
                "y": _y(nearest[1]) if nearest else CHART_HEIGHT / 2,
                "severity": severity,
                "title": f"{anomaly['label']} ({severity}) at {timezone.localtime(at):%H:%M:%S}",
            }
        )
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "segments": segments,
        "line": line,
        "critical_y": _y(CRITICAL_LINE),
        "marks": marks,
        "empty": len(ticks) < 2,
    }
