"""`/api/live/...`: live class sessions for their teachers, and the platform's signal batches.

- `POST /sessions` `{class_id, topic}` (a teacher of the class, or an org admin) starts one;
  `POST /sessions/<id>/end` ends it; `GET /sessions/<id>` is its live state for whoever sees
  the class.
- `POST /platform/sessions` (`X-Platform-Organisation: <slug>`, `{class_id: the platform's class
  id, topic}`) is the platform opening one, and `POST /sessions/<id>/signals` `{"events": [...]}`
  its batches; both signed with `X-Platform-Signature: sha256=<hex HMAC-SHA256 of the raw body>`
  under the organisation's `live_secret`, not with a token, and the signature is checked before
  anything in the body is read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.http.request import RawPostDataException
from django.utils import timezone
from ninja import Field, Router, Schema, Status
from pydantic import field_validator

from classroom.access import get_class_for_user, get_live_session_for_user
from classroom.inputs import Id, InputInvalid, refused_value
from classroom.live import selectors
from classroom.live.models import LiveEvent, LiveSession
from classroom.live.services import Event, LiveError, session_end, session_start, signals_ingest
from classroom.models import Organisation, SchoolClass

router = Router(tags=["live sessions"])
TYPES = frozenset(LiveEvent.Type.values)
# How far ahead of our clock an event's time may be (the platform's clock drifts a little).
FUTURE_SLACK = timedelta(minutes=5)
CHAT_STORED = 500
_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,50}")


class ErrorOut(Schema):
    error: str
    detail: str
    fields: dict[str, list[str]] = {}


ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 413: ErrorOut}


class StartIn(Schema):
    class_id: Id
    topic: str = Field(min_length=1, max_length=200)

    @field_validator("topic")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class SessionOut(Schema):
    session_id: int
    class_id: int
    topic: str
    status: str
    started_at: str
    ended_at: str | None


class IngestOut(Schema):
    accepted: int
    duplicates: int


class LiveOut(Schema):
    session_id: int
    class_id: int
    topic: str
    status: str
    score: float | None
    category: str | None
    signals: dict[str, Any]
    history: list[dict[str, Any]]
    anomalies: list[dict[str, Any]]


def _may_run(request: HttpRequest) -> None:
    if not request.auth.can_act_on_alerts:
        raise PermissionDenied("only the class's teachers and org admins start and end live sessions")


@router.post("/sessions", response={201: SessionOut, **ERRORS})
def start(request: HttpRequest, body: StartIn) -> Status:
    """Start a live session for one of your classes; 409 while the class has one live."""
    _may_run(request)
    school_class = get_class_for_user(request.auth, body.class_id)
    session = session_start(school_class=school_class, topic=body.topic, by=request.auth)
    return Status(201, selectors.session_json(session))


@router.post("/sessions/{session_id}/end", response={200: SessionOut, **ERRORS})
def end(request: HttpRequest, session_id: Id) -> dict[str, Any]:
    """End the live session (an ended one is answered as it is)."""
    _may_run(request)
    return selectors.session_json(
        session_end(session=get_live_session_for_user(request.auth, session_id), by=request.auth)
    )


@router.get("/sessions/{session_id}", response={200: LiveOut, **ERRORS})
def live(request: HttpRequest, session_id: Id) -> dict[str, Any]:
    """The score now, its category and signals, the last 5 minutes of scores and the anomalies."""
    return selectors.live_json(get_live_session_for_user(request.auth, session_id))


# The platform's side: signed requests, no token.


def _verify(request: HttpRequest, organisation: Organisation | None) -> None:
    """The body signed with the organisation's live secret, compared in constant time; no
    organisation (or one without a secret) verifies nothing."""
    given = request.headers.get("X-Platform-Signature", "")
    secret = organisation.live_secret if organisation is not None else ""
    expected = (
        "sha256=" + hmac.new(secret.encode(), _raw(request), hashlib.sha256).hexdigest() if secret else ""
    )
    if not secret or not hmac.compare_digest(given.encode(), expected.encode()):
        raise LiveError(
            401,
            "bad_signature",
            "X-Platform-Signature must be sha256=<hex HMAC-SHA256 of the raw body> under the "
            "organisation's live secret",
        )


def _raw(request: HttpRequest) -> bytes:
    """The raw body; a form the framework read already (not JSON) is refused."""
    try:
        return request.body
    except RawPostDataException:
        raise LiveError(400, "bad_request", "send the body as application/json") from None


def _check_size(request: HttpRequest) -> None:
    """413 past LIVE_MAX_BATCH_BYTES, before the body is hashed or parsed."""
    limit = settings.LIVE_MAX_BATCH_BYTES
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if (declared.isdigit() and int(declared) > limit) or len(_raw(request)) > limit:
        raise LiveError(413, "too_large", f"a batch is at most {limit:,} bytes; send smaller batches")


def _json(request: HttpRequest) -> Any:
    try:
        data = json.loads(_raw(request))
    except ValueError as error:
        raise InputInvalid("body", f"is not a JSON document ({error})") from None
    refused = refused_value(data)
    if refused is not None:
        raise refused
    return data


_EVENT_SCHEMA = {
    "type": "object",
    "required": ["id", "type", "at"],
    "properties": {
        "id": {"type": "string", "maxLength": 100},
        "type": {"type": "string", "enum": sorted(TYPES)},
        "at": {"type": "string", "format": "date-time"},
        "participant": {"type": "string", "maxLength": 64},
        "poll_id": {"type": "string", "maxLength": 64},
        "option": {"type": "string", "maxLength": 64},
        "reason": {"type": "string", "enum": ["left", "disconnect"]},
        "text": {"type": "string", "maxLength": 4000},
        "kind": {"type": "string", "maxLength": 32},
    },
}
_SIGNED = {
    "security": [],
    "parameters": [
        {
            "in": "header",
            "name": "X-Platform-Signature",
            "required": True,
            "schema": {"type": "string"},
            "description": "sha256=<hex HMAC-SHA256 of the raw body> under the organisation's live secret",
        }
    ],
}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


@router.post(
    "/platform/sessions",
    auth=None,
    response={201: SessionOut, **ERRORS},
    openapi_extra={
        **_SIGNED,
        "parameters": [
            *_SIGNED["parameters"],
            {
                "in": "header",
                "name": "X-Platform-Organisation",
                "required": True,
                "schema": {"type": "string"},
            },
        ],
        **_json_body(
            {
                "type": "object",
                "required": ["class_id", "topic"],
                "properties": {
                    "class_id": {"type": "string", "maxLength": 64, "description": "the platform's class id"},
                    "topic": {"type": "string", "minLength": 1, "maxLength": 200},
                },
            }
        ),
    },
)
def platform_start(request: HttpRequest) -> Status:
    """The platform opens a live session: `X-Platform-Organisation: <slug>`, the body
    `{class_id: the platform's class id, topic}`, signed with that organisation's secret."""
    slug = request.headers.get("X-Platform-Organisation", "")
    organisation = Organisation.objects.filter(slug=slug).first() if _SLUG.fullmatch(slug) else None
    _check_size(request)
    _verify(request, organisation)
    data = _json(request)
    if not isinstance(data, dict):
        raise InputInvalid("body", "must be a JSON object with class_id and topic")
    for name in ("class_id", "topic"):
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise InputInvalid(name, "is required, as a non-empty string")
    school_class = SchoolClass.objects.filter(organisation=organisation, platform_id=data["class_id"]).first()
    if school_class is None:
        raise Http404
    session = session_start(school_class=school_class, topic=data["topic"].strip()[:200], by=None)
    return Status(201, selectors.session_json(session))


@router.post(
    "/sessions/{session_id}/signals",
    auth=None,
    response={200: IngestOut, **ERRORS},
    openapi_extra={
        **_SIGNED,
        **_json_body(
            {
                "type": "object",
                "required": ["events"],
                "properties": {"events": {"type": "array", "items": _EVENT_SCHEMA}},
            }
        ),
    },
)
def signals(request: HttpRequest, session_id: Id) -> dict[str, int]:
    """A batch of the session's events, signed. An event id already stored is skipped (the answer
    counts it as a duplicate); 400 names the first bad event; 409 once the session has ended. A
    session that does not exist is a 401 like a bad signature: who cannot sign learns nothing."""
    session = LiveSession.objects.filter(pk=session_id).select_related("organisation").first()
    _check_size(request)
    _verify(request, session.organisation if session else None)
    events = parse_events(_json(request))
    done = signals_ingest(session=session, events=events)
    return {"accepted": done.accepted, "duplicates": done.duplicates}


def parse_events(data: Any, *, now: datetime | None = None) -> list[Event]:
    """The batch's events, checked; the first bad one is refused by its place (`events[3].at`)."""
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise InputInvalid("events", 'the body must be {"events": [...]}')
    raw = data["events"]
    limit = settings.LIVE_MAX_BATCH_EVENTS
    if len(raw) > limit:
        raise LiveError(413, "too_large", f"a batch is at most {limit:,} events; this one has {len(raw):,}")
    latest = (now or timezone.now()) + FUTURE_SLACK
    return [_event(item, f"events[{n}]", latest) for n, item in enumerate(raw)]


def _event(item: Any, place: str, latest: datetime) -> Event:
    if not isinstance(item, dict):
        raise InputInvalid(place, "must be an object with id, type, at and participant")
    event_id = _text(item, "id", place, 100, required=True)
    type_ = item.get("type")
    if type_ not in TYPES:
        raise InputInvalid(f"{place}.type", f"must be one of {', '.join(sorted(TYPES))}")
    at = _moment(item.get("at"), f"{place}.at", latest)
    participant = _text(item, "participant", place, 64, required=type_ != "poll_closed")
    data: dict[str, Any] = {}
    if type_ in ("poll_vote", "poll_closed"):
        data["poll_id"] = _text(item, "poll_id", place, 64, required=True)
    if type_ == "poll_vote":
        data["option"] = _text(item, "option", place, 64, required=True)
    if type_ == "leave":
        reason = item.get("reason", "left")
        if reason not in ("left", "disconnect"):
            raise InputInvalid(f"{place}.reason", 'must be "left" or "disconnect"')
        data["reason"] = reason
    if type_ == "chat":
        data["text"] = _text(item, "text", place, 4000, required=False)[:CHAT_STORED]
    if type_ == "reaction":
        data["kind"] = _text(item, "kind", place, 32, required=False)
    return Event(id=event_id, type=type_, at=at, participant=participant, data=data)


def _text(item: dict[str, Any], name: str, place: str, limit: int, *, required: bool) -> str:
    value = item.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InputInvalid(
            f"{place}.{name}", "is required, as a non-empty string" if required else "must be a string"
        )
    if len(value) > limit:
        raise InputInvalid(f"{place}.{name}", f"is {len(value):,} characters long; the limit is {limit:,}")
    return value.strip()


def _moment(value: Any, place: str, latest: datetime) -> datetime:
    if not isinstance(value, str):
        raise InputInvalid(place, "is required, as an ISO 8601 time with its zone")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InputInvalid(place, f"{value[:40]!r} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise InputInvalid(place, "must carry its zone (Z or +01:00)")
    if at > latest:
        raise InputInvalid(place, f"is more than {FUTURE_SLACK.seconds // 60} minutes ahead of our clock")
    return at
