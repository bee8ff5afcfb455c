"""The dispatcher sends once, whatever happens between us and the platform."""

from __future__ import annotations

import pytest

from audit.models import ActivityEvent, Failure
from classroom.models import DispatchLog
from classroom.platform.dispatch import DispatchError, Outgoing, dispatch_many, dispatch_send
from tests.platform_fixtures import demo_class, report

NUDGE = {"message": "You have a quiz due Friday: 20 minutes today keeps you on track."}


@pytest.fixture
def learner(school):
    return demo_class(school, size=1).students[0]


def test_a_dispatch_is_sent_logged_and_recorded(learner, platform, school):
    log = dispatch_send(student=learner, kind="nudge", payload=NUDGE, reference="alert:1", by=school.teacher)
    assert (log.status, log.attempt, log.response_code) == ("sent", 1, 201)
    sent = report(platform)["dispatches"]
    assert len(sent) == 1
    assert (sent[0]["student"], sent[0]["kind"], sent[0]["payload"]) == (learner.platform_id, "nudge", NUDGE)
    assert sent[0]["key"] == log.idempotency_key
    event = ActivityEvent.objects.get(verb="dispatch.sent")
    assert (event.actor, event.student_id, event.details["attempts"]) == (school.teacher, learner.pk, 1)


def test_a_retry_after_a_timeout_does_not_send_twice(learner, platform, settings):
    settings.PLATFORM_TIMEOUT = 0.3
    platform.state.config.update({"dispatch_delay_first_ms": 900})
    log = dispatch_send(student=learner, kind="nudge", payload=NUDGE, reference="alert:1")
    attempts = list(DispatchLog.objects.order_by("attempt").values_list("attempt", "status", "response_code"))
    assert attempts == [(1, "failed", None), (2, "sent", 200)]
    assert "timed out" in DispatchLog.objects.get(attempt=1).error
    platform_view = report(platform)
    assert len(platform_view["dispatches"]) == 1
    assert platform_view["replays"] == 1
    assert ActivityEvent.objects.get(verb="dispatch.sent").details["replayed"] is True
    assert log.attempt == 2


def test_sending_the_same_thing_again_is_not_a_second_send(learner, platform):
    first = dispatch_send(student=learner, kind="nudge", payload=NUDGE, reference="alert:1")
    requests = report(platform)["requests"]
    again = dispatch_send(student=learner, kind="nudge", payload=NUDGE, reference="alert:1")
    assert again.pk == first.pk
    assert report(platform)["requests"] == requests
    assert ActivityEvent.objects.filter(verb="dispatch.deduplicated").count() == 1
    dispatch_send(student=learner, kind="nudge", payload=NUDGE, reference="alert:2")
    assert len(report(platform)["dispatches"]) == 2


def test_a_failed_dispatch_is_recorded_with_every_attempt_and_a_hint(learner, platform, settings):
    settings.PLATFORM_MAX_ATTEMPTS = 3
    platform.state.config.update({"fail_first": 10})
    with pytest.raises(DispatchError) as error:
        dispatch_send(student=learner, kind="assignment", payload={"title": "Quiz 4"}, reference="plan:7")
    assert error.value.hint.startswith("the platform answered 503 (temporary failure, try again)")
    assert DispatchLog.objects.filter(status="failed").count() == 3
    event = ActivityEvent.objects.get(verb="dispatch.failed")
    assert (event.status, event.details["attempts"]) == ("failed", 3)
    assert report(platform)["dispatches"] == []
    failure = Failure.objects.get(state="open")
    assert (failure.verb, failure.student_id) == ("dispatch.failed", learner.pk)
    # The platform recovers: the next send of that kind goes through and closes the failure.
    platform.state.config.update({"fail_first": 0})
    dispatch_send(student=learner, kind="assignment", payload={"title": "Quiz 4"}, reference="plan:7")
    failure.refresh_from_db()
    assert failure.state == "resolved"
    assert ActivityEvent.objects.get(verb="failure.resolved").actor_name == "system:dispatcher"


def test_bad_dispatch_input_is_refused_before_anything_is_sent(learner, platform):
    with pytest.raises(ValueError, match="kind must be one of assignment, nudge; got 'sms'"):
        dispatch_send(student=learner, kind="sms", payload=NUDGE, reference="alert:1")
    with pytest.raises(ValueError, match="reference must say what this dispatch is for"):
        dispatch_send(student=learner, kind="nudge", payload=NUDGE, reference=" ")
    assert report(platform)["requests"] == 0
    assert not DispatchLog.objects.exists()


def test_a_batch_is_sent_once_each_and_one_failure_fails_only_its_item(school, platform, settings):
    settings.PLATFORM_MAX_ATTEMPTS = 2
    students = demo_class(school, size=3).students
    platform.state.config.update({"failing_students": [students[1].platform_id]})
    sent = dispatch_many(
        [
            Outgoing(student=s, kind="nudge", payload=NUDGE, reference=f"alert:{n}")
            for n, s in enumerate(students)
        ]
    )
    assert [bool(s.error) for s in sent] == [False, True, False]
    assert sent[1].error.hint and sent[1].log.attempt == 2  # every attempt logged, the last returned
    assert (sent[0].log.status, sent[2].log.status) == ("sent", "sent")
    assert {d["student"] for d in report(platform)["dispatches"]} == {
        students[0].platform_id,
        students[2].platform_id,
    }
    assert ActivityEvent.objects.filter(verb="dispatch.sent").count() == 2
    failed = ActivityEvent.objects.get(verb="dispatch.failed")
    assert (failed.student_id, failed.details["attempts"]) == (students[1].pk, 2)
    assert Failure.objects.get(state="open").student_id == students[1].pk


def test_a_batch_sends_a_repeated_or_already_sent_item_once(learner, platform):
    first = dispatch_send(student=learner, kind="nudge", payload=NUDGE, reference="alert:1")
    again, new, repeat = dispatch_many(
        [
            Outgoing(student=learner, kind="nudge", payload=NUDGE, reference="alert:1"),
            Outgoing(student=learner, kind="nudge", payload=NUDGE, reference="alert:2"),
            Outgoing(student=learner, kind="nudge", payload=NUDGE, reference="alert:2"),
        ]
    )
    assert (again.deduplicated, again.log.pk) == (True, first.pk)
    assert repeat.log.pk == new.log.pk and not new.deduplicated
    assert len(report(platform)["dispatches"]) == 2
    assert report(platform)["replays"] == 0
    assert DispatchLog.objects.count() == 2


def test_a_batch_with_one_bad_item_sends_nothing(learner, platform):
    with pytest.raises(ValueError, match="kind must be one of assignment, nudge; got 'sms'"):
        dispatch_many(
            [
                Outgoing(student=learner, kind="nudge", payload=NUDGE, reference="alert:1"),
                Outgoing(student=learner, kind="sms", payload=NUDGE, reference="alert:2"),
            ]
        )
    assert report(platform)["requests"] == 0
    assert not DispatchLog.objects.exists()
