"""Live sessions over the API: teachers start, end and read them; the platform opens them and
sends signed, replay-safe signal batches; bad input is refused by name and nothing is stored
twice; the tick's score against a hand-computed window; the conductors' leases."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.core.management import call_command
from django.db import connection
from django.test import Client

from audit.models import ActivityEvent
from classroom.live.leases import leases_claim, leases_release
from classroom.live.models import (
    ConductorLease,
    LiveAnomaly,
    LiveEvent,
    LiveParticipant,
    LiveSession,
    LiveTick,
)
from classroom.live.services import events_expire, session_end, session_start, tick
from tests import factories
from tests.classroom.live_fixtures import SECRET, START, post_signed
from tests.conftest import login


def _start(client: Client, school_class, topic: str = "Fractions"):
    return client.post(
        "/api/live/sessions", {"class_id": school_class.pk, "topic": topic}, content_type="application/json"
    )


@pytest.fixture
def session(live_school) -> LiveSession:
    return session_start(
        school_class=live_school.school_class, topic="Fractions", by=live_school.teacher, now=START
    )


def _event(n: int, type_: str = "chat", *, second: int = 1, who: str = "p1", **extra) -> dict:
    at = (START + timedelta(seconds=second)).isoformat()
    return {"id": f"e{n}", "type": type_, "at": at, "participant": who, **extra}


def _signals(client: Client, session: LiveSession, events: list[dict], **options):
    return post_signed(client, f"/api/live/sessions/{session.pk}/signals", {"events": events}, **options)


# Starting, ending, reading


def test_a_teacher_starts_reads_and_ends_a_session_of_their_class(client, live_school):
    login(client, live_school.teacher)
    started = _start(client, live_school.school_class)
    assert started.status_code == 201, started.content
    body = started.json()
    assert body["class_id"] == live_school.school_class.pk
    assert body["status"] == "live"
    session_id = body["session_id"]

    live = client.get(f"/api/live/sessions/{session_id}").json()
    assert set(live) >= {
        "session_id",
        "class_id",
        "status",
        "score",
        "category",
        "signals",
        "history",
        "anomalies",
    }
    assert live["score"] is None  # not ticked yet
    assert set(live["signals"]) == {"chat_per_min", "active_users", "poll_participation", "reactions_per_min"}

    ended = client.post(f"/api/live/sessions/{session_id}/end")
    assert ended.status_code == 200
    assert ended.json()["status"] == "ended"
    assert client.post(f"/api/live/sessions/{session_id}/end").json()["status"] == "ended"
    verbs = list(
        ActivityEvent.objects.filter(verb__startswith="live.").order_by("pk").values_list("verb", flat=True)
    )
    assert verbs == ["live.session_started", "live.session_ended"]


def test_a_class_has_one_live_session_at_a_time(client, live_school):
    login(client, live_school.teacher)
    assert _start(client, live_school.school_class).status_code == 201
    again = _start(client, live_school.school_class)
    assert again.status_code == 409
    assert again.json()["error"] == "session_live"
    assert LiveSession.objects.count() == 1


def test_another_teachers_class_and_session_are_404(client, live_school, session):
    login(client, live_school.outsider)
    assert _start(client, live_school.school_class).status_code == 404
    assert client.get(f"/api/live/sessions/{session.pk}").status_code == 404
    assert client.post(f"/api/live/sessions/{session.pk}/end").status_code == 404
    login(client, live_school.colleague)
    assert client.get(f"/api/live/sessions/{session.pk}").status_code == 404
    assert LiveSession.objects.get().is_live


def test_compliance_reads_but_does_not_start(client, live_school, session):
    reviewer = factories.UserFactory(role="compliance", organisation=live_school.organisation)
    login(client, reviewer)
    assert client.get(f"/api/live/sessions/{session.pk}").status_code == 200
    assert _start(client, live_school.colleague_class).status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"topic": "x"}, "class_id"),
        ({"class_id": 1, "topic": " "}, "topic"),
        ({"class_id": 1, "topic": "x" * 201}, "topic"),
    ],
)
def test_a_bad_start_names_the_field(client, live_school, body, field):
    login(client, live_school.teacher)
    response = client.post("/api/live/sessions", body, content_type="application/json")
    assert response.status_code == 400
    assert any(field in name for name in response.json()["fields"]), response.json()


def _platform_start(client: Client, organisation, body: dict, **options):
    return post_signed(
        client, "/api/live/platform/sessions", body, HTTP_X_PLATFORM_ORGANISATION=organisation.slug, **options
    )


def test_the_platform_opens_a_session_with_a_signed_request(client, live_school):
    body = {"class_id": live_school.school_class.platform_id, "topic": "Poll day"}
    response = _platform_start(client, live_school.organisation, body)
    assert response.status_code == 201, response.content
    session = LiveSession.objects.get()
    assert session.opened_by_platform
    assert ActivityEvent.objects.get(verb="live.session_started").actor_name == "system:platform"


def test_the_platform_is_refused_without_its_signature_or_organisation(client, live_school):
    body = {"class_id": live_school.school_class.platform_id, "topic": "Poll day"}
    assert _platform_start(client, live_school.organisation, body, secret="wrong").status_code == 401
    unnamed = post_signed(client, "/api/live/platform/sessions", body)
    assert unnamed.status_code == 401
    odd = post_signed(client, "/api/live/platform/sessions", body, HTTP_X_PLATFORM_ORGANISATION="a\x00b")
    assert odd.status_code == 401
    assert not LiveSession.objects.exists()


def test_the_platform_checks_the_signature_before_the_body(client, live_school):
    response = _platform_start(client, live_school.organisation, None, raw=b"{not json", secret="wrong")
    assert response.status_code == 401
    response = _platform_start(client, live_school.organisation, None, raw=b"{not json")
    assert response.status_code == 400
    assert _platform_start(client, live_school.organisation, {"topic": "x"}).json()["fields"] == {
        "class_id": ["is required, as a non-empty string"]
    }


def test_the_platform_cannot_open_a_session_for_another_organisations_class(client, live_school):
    body = {"class_id": live_school.outsider_class.platform_id, "topic": "x"}
    assert _platform_start(client, live_school.organisation, body).status_code == 404
    assert not LiveSession.objects.exists()


# Signals


def test_a_signed_batch_is_stored_and_a_replay_is_not_stored_again(client, session):
    events = [_event(1), _event(2, "join", who="p2"), _event(3, "reaction", kind="clap")]
    first = _signals(client, session, events)
    assert first.status_code == 200, first.content
    assert first.json() == {"accepted": 3, "duplicates": 0}
    again = _signals(client, session, [*events, _event(4, "poll_vote", poll_id="q1", option="B")])
    assert again.json() == {"accepted": 1, "duplicates": 3}
    assert LiveEvent.objects.count() == 4
    assert set(LiveParticipant.objects.values_list("participant", flat=True)) == {"p1", "p2"}


def test_an_event_repeated_within_one_batch_is_stored_once(client, session):
    assert _signals(client, session, [_event(1), _event(1)]).json() == {"accepted": 1, "duplicates": 1}


@pytest.mark.parametrize("secret", ["wrong-secret", ""])
def test_a_bad_signature_is_401_and_stores_nothing(client, session, secret):
    response = _signals(client, session, [_event(1)], secret=secret)
    assert response.status_code == 401
    assert response.json()["error"] == "bad_signature"
    assert not LiveEvent.objects.exists()


def test_a_missing_signature_is_401(client, session):
    response = client.post(
        f"/api/live/sessions/{session.pk}/signals", {"events": [_event(1)]}, content_type="application/json"
    )
    assert response.status_code == 401


def test_the_signature_works_only_for_its_own_organisation(client, live_school, session):
    other = live_school.outsider_class.organisation
    other.live_secret = "their-secret"
    other.save(update_fields=["live_secret"])
    theirs = session_start(school_class=live_school.outsider_class, topic="x", by=None, now=START)
    assert _signals(client, theirs, [_event(1)]).status_code == 401  # our secret, their session
    assert _signals(client, theirs, [_event(1)], secret="their-secret").status_code == 200
    assert _signals(client, session, [_event(2)], secret="their-secret").status_code == 401


def test_an_organisation_without_a_secret_takes_no_signals(client, live_school, session):
    live_school.organisation.live_secret = ""
    live_school.organisation.save(update_fields=["live_secret"])
    assert _signals(client, session, [_event(1)], secret="").status_code == 401


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"type": "chat", "at": "2026-12-04T10:00:01Z", "participant": "p1"}, "events[1].id"),
        ({"id": "x", "type": "shout", "at": "2026-12-04T10:00:01Z", "participant": "p1"}, "events[1].type"),
        ({"id": "x", "type": "chat", "at": "yesterday", "participant": "p1"}, "events[1].at"),
        ({"id": "x", "type": "chat", "at": "2026-12-04T10:00:01", "participant": "p1"}, "events[1].at"),
        ({"id": "x", "type": "chat", "at": "2099-01-01T00:00:00Z", "participant": "p1"}, "events[1].at"),
        ({"id": "x", "type": "chat", "at": "2026-12-04T10:00:01Z"}, "events[1].participant"),
        (
            {"id": "x", "type": "poll_vote", "at": "2026-12-04T10:00:01Z", "participant": "p1"},
            "events[1].poll_id",
        ),
        (
            {
                "id": "x",
                "type": "leave",
                "at": "2026-12-04T10:00:01Z",
                "participant": "p1",
                "reason": "bored",
            },
            "events[1].reason",
        ),
        (
            {"id": "x" * 101, "type": "chat", "at": "2026-12-04T10:00:01Z", "participant": "p1"},
            "events[1].id",
        ),
        ("not an object", "events[1]"),
    ],
)
def test_a_malformed_event_is_400_naming_it_and_the_batch_is_not_stored(client, session, event, field):
    response = _signals(client, session, [_event(1), event])
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"], response.json()
    assert not LiveEvent.objects.exists()


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b'{"events": {}}'])
def test_a_body_that_is_not_a_batch_is_400(client, session, raw):
    response = post_signed(client, f"/api/live/sessions/{session.pk}/signals", None, raw=raw)
    assert response.status_code == 400


def test_an_oversized_batch_is_413(client, session, settings):
    settings.LIVE_MAX_BATCH_EVENTS = 5
    assert _signals(client, session, [_event(n) for n in range(6)]).status_code == 413
    settings.LIVE_MAX_BATCH_BYTES = 2000
    too_big = _signals(client, session, [_event(1, text="x" * 3000)])
    assert too_big.status_code == 413
    assert too_big.json()["error"] == "too_large"
    assert not LiveEvent.objects.exists()


def test_an_ended_session_refuses_signals_with_409(client, session):
    session_end(session=session, by=None)
    response = _signals(client, session, [_event(1)])
    assert response.status_code == 409
    assert not LiveEvent.objects.exists()


def test_signals_for_an_unknown_session_are_401_like_a_bad_signature(client, session):
    response = post_signed(client, "/api/live/sessions/999999/signals", {"events": []})
    assert response.status_code == 401


def test_a_form_instead_of_json_is_refused_not_a_server_error(client, session):
    response = client.post(f"/api/live/sessions/{session.pk}/signals", {"events": "x"})
    assert response.status_code == 400
    assert response.json()["detail"] == "send the body as application/json"


def test_raw_events_expire_after_the_retention(session, settings):
    settings.LIVE_SIGNAL_RETENTION_HOURS = 24
    LiveEvent.objects.create(
        session=session, event_id="old", type="chat", at=START, participant="p", received_at=START
    )
    LiveEvent.objects.create(
        session=session,
        event_id="new",
        type="chat",
        at=START,
        participant="p",
        received_at=START + timedelta(hours=23),
    )
    assert events_expire(now=START + timedelta(hours=25)) == 1
    assert list(LiveEvent.objects.values_list("event_id", flat=True)) == ["new"]
    assert ActivityEvent.objects.get(verb="live.events_expired").details["deleted"] == 1
    assert events_expire(now=START + timedelta(hours=25)) == 0
    assert ActivityEvent.objects.filter(verb="live.events_expired").count() == 1


# The tick


def test_the_score_of_a_hand_computed_window(client, session, settings):
    """Ten present, 40 s into the session (the window is scaled to 40 s): 4 chats (by p0 and p1),
    1 reaction (p0), 6 of 10 voted in poll q1 (p0 to p5), so 6 active; nobody left.
    chat 4/(40/60) = 6/min against 0.2 x 10 = 2: 1.0 (capped); reactions 1.5/min against 1: 1.0;
    active 6/10; polls 6/10; leaves 1.0. 100 x (0.3 + 0.25 x 0.6 + 0.25 x 0.6 + 0.1 + 0.1) = 80."""
    joins = [_event(n, "join", second=0, who=f"p{n}") for n in range(10)]
    chats = [_event(100 + n, "chat", second=10 + n, who=f"p{n % 2}") for n in range(4)]
    reaction = [_event(200, "reaction", second=20, who="p0")]
    votes = [
        _event(300 + n, "poll_vote", second=5 + n, who=f"p{n}", poll_id="q1", option="A") for n in range(6)
    ]
    assert _signals(client, session, joins + chats + reaction + votes).status_code == 200

    [ticked] = tick([session.pk], now=START + timedelta(seconds=40))

    assert ticked.tick.score == 80.0
    assert ticked.tick.category == "high"
    assert ticked.tick.components == {
        "chat": 1.0,
        "reactions": 1.0,
        "active_users": 0.6,
        "polls": 0.6,
        "leaves": 1.0,
    }
    assert ticked.tick.signals["chat_per_min"] == 6.0
    assert ticked.tick.signals["poll_participation"] == 0.6


def test_without_a_recent_poll_its_weight_is_shared_by_the_other_parts(client, session):
    """Two present, both chatting: chat, active users, reactions (none: 0) and leaves.
    (0.3 x 1 + 0.25 x 1 + 0.1 x 0 + 0.1 x 1) / 0.75 = 86.7."""
    events = [_event(1, "join", second=0, who="a"), _event(2, "join", second=0, who="b")]
    events += [_event(3, second=5, who="a"), _event(4, second=6, who="b")]
    _signals(client, session, events)
    [ticked] = tick([session.pk], now=START + timedelta(seconds=60))
    assert ticked.tick.score == 86.7
    assert "polls" not in ticked.tick.components


def test_an_organisation_overrides_the_weights(client, live_school, session):
    live_school.organisation.live_settings = {"weights": {"chat": 0.0, "reactions": 0.0}}
    live_school.organisation.save(update_fields=["live_settings"])
    events = [_event(1, "join", second=0, who="a"), _event(3, second=5, who="a")]
    _signals(client, session, events)
    [ticked] = tick([session.pk], now=START + timedelta(seconds=60))
    assert ticked.tick.score == 100.0  # active users and leaves only


def test_an_empty_room_scores_empty_and_raises_nothing(session):
    ticks = [tick([session.pk], now=START + timedelta(seconds=s)) for s in range(5, 300, 5)]
    assert {t[0].tick.category for t in ticks} == {"empty"}
    assert not LiveAnomaly.objects.exists()


def test_a_tick_takes_a_fixed_number_of_queries_whatever_the_sessions(live_school, django_assert_num_queries):
    """Six reads and writes (and the savepoint of its transaction), for one session as for six."""
    classes = [factories.SchoolClassFactory(organisation=live_school.organisation) for _ in range(6)]
    sessions = [session_start(school_class=c, topic="t", by=None, now=START) for c in classes]
    for s in sessions:
        LiveParticipant.objects.create(session=s, participant="p", joined_at=START, last_event_at=START)
    with django_assert_num_queries(8):
        assert len(tick([sessions[0].pk], now=START + timedelta(seconds=30))) == 1
    with django_assert_num_queries(8):
        assert len(tick([s.pk for s in sessions], now=START + timedelta(seconds=35))) == 6
    assert LiveTick.objects.count() == 7


def test_one_tick_per_slot_whoever_ticks(session):
    now = START + timedelta(seconds=32)
    tick([session.pk], now=now)
    tick([session.pk], now=now + timedelta(seconds=1))  # the same 5-second slot
    assert LiveTick.objects.count() == 1
    assert LiveTick.objects.get().at == START + timedelta(seconds=30)


def test_an_anomaly_is_an_audit_event_and_in_the_live_view(client, live_school, replay):
    from classroom.platform.live_class import Phase

    played = replay(Phase(120), Phase(60, leave=15))
    [exit_] = [a for a in played.run() if a.type == "MASS_EXIT"]
    event = ActivityEvent.objects.get(verb="live.anomaly_detected")
    assert event.details["type"] == "MASS_EXIT"
    assert event.details["left"] == 15
    login(client, live_school.teacher)
    live = client.get(f"/api/live/sessions/{played.session.pk}").json()
    assert live["anomalies"][0]["id"] == exit_.pk
    assert live["anomalies"][0]["description"] == "15 of 30 participants left in the last 30 seconds."
    assert live["history"][-1]["score"] == live["score"]
    assert live["signals"]["active_users"] > 0


def test_the_live_view_names_no_student(client, live_school, replay):
    from classroom.platform.live_class import Phase

    played = replay(Phase(90))
    played.run()
    login(client, live_school.teacher)
    text = client.get(f"/api/live/sessions/{played.session.pk}").content.decode()
    assert "p1-0" not in text  # no participant id
    assert "a message" not in text  # no chat text


# Conductors


def test_one_conductor_takes_the_live_sessions_and_another_gets_none_until_its_lease_lapses(
    session, settings
):
    settings.LIVE_LEASE_SECONDS = 15
    assert leases_claim("a", now=START) == [session.pk]
    assert leases_claim("b", now=START + timedelta(seconds=5)) == []
    assert leases_claim("a", now=START + timedelta(seconds=10)) == [session.pk]  # renewed to +25 s
    assert leases_claim("b", now=START + timedelta(seconds=20)) == []
    # a dies: nobody renews; after the lease lapses b takes over
    assert leases_claim("b", now=START + timedelta(seconds=26)) == [session.pk]
    assert leases_claim("a", now=START + timedelta(seconds=27)) == []


def test_a_stopping_conductor_hands_its_sessions_on_at_once(session):
    assert leases_claim("a", now=START) == [session.pk]
    leases_release("a", now=START + timedelta(seconds=1))
    assert leases_claim("b", now=START + timedelta(seconds=2)) == [session.pk]


def test_an_ended_session_is_nobodys(session):
    leases_claim("a", now=START)
    session_end(session=session, by=None, now=START + timedelta(seconds=3))
    assert leases_claim("a", now=START + timedelta(seconds=5)) == []
    assert not ConductorLease.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_conductors_claiming_at_once_never_share_a_session(live_school):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent claims need PostgreSQL (SQLite serialises every write)")
    classes = [factories.SchoolClassFactory(organisation=live_school.organisation) for _ in range(40)]
    for c in classes:
        session_start(school_class=c, topic="t", by=None)
    got: dict[str, list[int]] = {}
    barrier = threading.Barrier(2)

    def claim(name: str) -> None:
        try:
            barrier.wait()
            got[name] = leases_claim(name)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not set(got["a"]) & set(got["b"])
    assert len(got["a"]) + len(got["b"]) == 40


def test_run_conductor_once_ticks_the_live_sessions(session, capsys):
    call_command("run_conductor", "--once")
    assert "1 live sessions ticked" in capsys.readouterr().out
    assert LiveTick.objects.filter(session=session).count() == 1


def test_the_batch_answer_is_json_even_for_a_wrong_method(client, session):
    response = client.get(f"/api/live/sessions/{session.pk}/signals")
    assert response.status_code == 405
    assert json.loads(response.content)["error"]


def test_the_organisations_history_masks_its_live_secret(live_school):
    entry = LogEntry.objects.get_for_object(live_school.organisation).order_by("-pk").first()
    assert SECRET not in json.dumps(entry.changes)
    assert "live_secret" in json.dumps(entry.changes)
