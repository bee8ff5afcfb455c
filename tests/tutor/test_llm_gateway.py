"""The LLM gateway, driven through the real anthropic SDK against the fake Messages API on loopback."""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

import anthropic
import pytest

from audit import chain
from audit.models import ActivityEvent, Failure
from tests.fake_anthropic import delay, raw, status, text, tool_use
from tutor.llm import safety
from tutor.llm.gateway import (
    Ask,
    FallbackAnswer,
    Reply,
    Tool,
    assistant_turn,
    complete,
    complete_many,
    tool_results_turn,
)
from tutor.llm.pseudonyms import Pseudonyms

pytestmark = pytest.mark.django_db

PLAN_TOOL = Tool(
    name="save_study_plan_draft",
    description="Save a study plan draft for the teacher to review.",
    input_schema={
        "type": "object",
        "properties": {
            "student": {"type": "string", "minLength": 1},
            "weeks": {"type": "integer", "minimum": 1, "maximum": 12},
            "focus": {"type": "string", "enum": ["fractions", "algebra", "geometry"]},
        },
        "required": ["student", "weeks"],
        "additionalProperties": False,
    },
)
PROMPT = "Draft a two-week plan on fractions for the student."
FALLBACK_TEXT = "Rule-based suggestion: review fractions for two weeks."


def ask(school: Any, **overrides: Any) -> Reply:
    call: dict[str, Any] = {
        "purpose": "draft a study plan",
        "system": "You are a patient maths tutor helping a teacher.",
        "messages": [{"role": "user", "content": PROMPT}],
        "tools": [PLAN_TOOL],
        "fallback": lambda: FallbackAnswer(FALLBACK_TEXT),
        "actor": school.teacher,
        "organisation_id": school.organisation.id,
        "student_id": school.student.id,
        "class_id": school.school_class.id,
    }
    return complete(**{**call, **overrides})


def event_of(reply: Reply) -> ActivityEvent:
    return ActivityEvent.objects.get(pk=reply.event_id)


def test_text_answer_is_audited_with_tokens_latency_hash_and_parameters(school, fake_llm, settings):
    fake_llm.script(text("Start with equivalent fractions.", input_tokens=42, output_tokens=7))

    reply = ask(school)

    assert (reply.source, reply.fallback_reason, reply.text) == (
        "model",
        "",
        "Start with equivalent fractions.",
    )
    assert (reply.model, reply.input_tokens, reply.output_tokens) == (settings.LLM_MODEL, 42, 7)
    [received] = fake_llm.requests
    assert received.headers["authorization"] == f"Bearer {fake_llm.api_key}"
    body = received.body
    assert body["model"] == settings.LLM_MODEL
    assert body["max_tokens"] == settings.LLM_MAX_TOKENS
    assert "temperature" not in body  # API version 2026-10-21 refuses it
    assert body["system"] == "You are a patient maths tutor helping a teacher."
    assert body["messages"] == [{"role": "user", "content": PROMPT}]
    assert body["tools"] == [PLAN_TOOL.as_param()]

    event = event_of(reply)
    assert (event.verb, event.status, event.why) == ("llm.call", "succeeded", "draft a study plan")
    assert (event.actor_id, event.organisation_id) == (school.teacher.id, school.organisation.id)
    assert (event.student_id, event.class_id) == (school.student.id, school.school_class.id)
    details = event.details
    assert details["source"] == "model"
    assert (details["input_tokens"], details["output_tokens"]) == (42, 7)
    assert details["latency_ms"] == reply.latency_ms >= 0
    assert details["parameters"] == {
        "max_tokens": settings.LLM_MAX_TOKENS,
        "timeout": 1.0,
        "max_retries": 1,
        "sdk": f"anthropic {anthropic.__version__}",
    }
    # The hash is of exactly what the service received.
    assert details["prompt_sha256"] == hashlib.sha256(chain.canonical(body)).hexdigest()
    assert details["tools_offered"] == ["save_study_plan_draft"]
    assert details["tools_called"] == []
    assert PROMPT not in json.dumps(details)


def test_tool_use_round_trip_returns_the_call_and_sends_its_result_back(school, fake_llm):
    draft = {"student": "Student A", "weeks": 2, "focus": "fractions"}
    fake_llm.script(
        tool_use("save_study_plan_draft", draft, preface="I will save a draft."),
        text("Saved a two-week fractions draft for your review."),
    )
    messages = [{"role": "user", "content": PROMPT}]

    asked = ask(school, messages=messages)

    [call] = asked.tool_calls
    assert (call.name, call.input) == ("save_study_plan_draft", draft)
    assert call.id.startswith("toolu_")
    assert asked.text == "I will save a draft."
    assert event_of(asked).details["tools_called"] == ["save_study_plan_draft"]
    assert event_of(asked).details["stop_reason"] == "tool_use"

    messages += [assistant_turn(asked), tool_results_turn([(call, {"draft_id": 17}, False)])]
    answered = ask(school, messages=messages)

    assert (answered.source, answered.tool_calls) == ("model", [])
    assert answered.text == "Saved a two-week fractions draft for your review."
    sent = fake_llm.requests[1].body["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "I will save a draft."},
            {"type": "tool_use", "id": call.id, "name": "save_study_plan_draft", "input": draft},
        ],
    }
    assert sent[2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call.id, "content": '{"draft_id": 17}'}],
    }


def test_a_failed_tool_is_sent_back_as_an_error_result(school, fake_llm):
    fake_llm.script(tool_use("save_study_plan_draft", {"student": "Student A", "weeks": 3}), "Understood.")
    asked = ask(school)
    [call] = asked.tool_calls

    ask(
        school,
        messages=[
            {"role": "user", "content": PROMPT},
            assistant_turn(asked),
            tool_results_turn([(call, "the plan is locked for publishing", True)]),
        ],
    )

    [result] = fake_llm.requests[1].body["messages"][2]["content"]
    assert result == {
        "type": "tool_result",
        "tool_use_id": call.id,
        "content": "the plan is locked for publishing",
        "is_error": True,
    }


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"student": "Student A"}, "input rejected: $.weeks: is required but missing"),
        (
            {"student": "Student A", "weeks": 2, "nickname": "x"},
            "input rejected: $.nickname: is not an allowed field",
        ),
        ({"student": "Student A", "weeks": "two"}, "input rejected: $.weeks: expected integer, got string"),
        ({"student": "Student A", "weeks": 40}, "input rejected: $.weeks: must be at most 12"),
        ({"student": "Student A", "weeks": 2, "focus": "poetry"}, "input rejected: $.focus: must be one of"),
    ],
)
def test_an_invalid_tool_input_is_rejected_and_not_returned(school, fake_llm, given, problem):
    fake_llm.script(tool_use("save_study_plan_draft", given))

    reply = ask(school)

    assert reply.source == "model"
    assert reply.tool_calls == []
    [note] = reply.filtered
    assert note.startswith(f"tool save_study_plan_draft: {problem}")
    details = event_of(reply).details
    assert details["filtered"] == [note]
    assert details["tools_called"] == []
    with pytest.raises(ValueError, match="nothing|no text"):
        assistant_turn(reply)  # nothing ran, so there is no turn to send back


def test_a_tool_that_was_not_offered_is_dropped(school, fake_llm):
    fake_llm.script(tool_use("delete_student", {"id": 1}))

    reply = ask(school)

    assert reply.tool_calls == []
    assert reply.filtered == ["tool delete_student: not offered, call dropped"]


def test_a_timeout_falls_back_after_the_sdk_retries(school, fake_llm, settings):
    settings.LLM_TIMEOUT = 0.3
    fake_llm.script(*[delay(3)] * fake_llm.attempts)

    reply = ask(school)

    assert (reply.source, reply.model, reply.text) == ("fallback", "rules", FALLBACK_TEXT)
    assert reply.fallback_reason == "the model timed out after 0.3 s"
    assert len(fake_llm.requests) == fake_llm.attempts == 2
    event = event_of(reply)
    assert event.status == "succeeded"
    assert event.details["source"] == "fallback"
    assert event.details["fallback_reason"] == "the model timed out after 0.3 s"
    assert event.details["attempts"] == 2
    assert (event.details["input_tokens"], event.details["output_tokens"]) == (0, 0)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (529, "the model service answered 529 (overloaded)"),
        (500, "the model service answered 500 (internal error)"),
        (429, "the model service answered 429 (rate limited)"),
    ],
)
def test_a_server_error_that_outlasts_the_retries_falls_back(school, fake_llm, code, reason):
    fake_llm.script(*[status(code)] * fake_llm.attempts)

    reply = ask(school)

    assert (reply.source, reply.fallback_reason) == ("fallback", reason)
    assert len(fake_llm.requests) == fake_llm.attempts
    event = event_of(reply)
    assert (event.status, event.details["http_status"], event.details["attempts"]) == ("succeeded", code, 2)
    assert not Failure.objects.exists()


def test_a_server_error_the_sdk_retries_away_is_a_model_answer(school, fake_llm):
    fake_llm.script(status(529), text("Second time lucky."))

    reply = ask(school)

    assert (reply.source, reply.text) == ("model", "Second time lucky.")
    assert len(fake_llm.requests) == 2


def test_a_refused_key_falls_back_and_opens_a_high_severity_failure(school, fake_llm, settings):
    settings.ANTHROPIC_API_KEY = "sk-ant-revoked"

    reply = ask(school)

    assert (reply.source, reply.text) == ("fallback", FALLBACK_TEXT)
    assert reply.fallback_reason == "the model service answered 401 (authentication failed)"
    assert len(fake_llm.requests) == 1  # a 401 is not retried
    event = event_of(reply)
    assert event.status == "failed"
    assert "ANTHROPIC_API_KEY" in event.details["remediation"]
    failure = Failure.objects.get()
    assert (failure.severity, failure.state, failure.verb) == ("high", "open", "llm.call")
    assert failure.remediation.startswith("the API key was refused: set ANTHROPIC_API_KEY")
    assert failure.first_event_id == event.pk

    settings.ANTHROPIC_API_KEY = fake_llm.api_key
    assert ask(school).source == "model"

    failure.refresh_from_db()
    assert failure.state == "resolved"


def test_a_bad_request_falls_back_with_a_normal_failure(school, fake_llm):
    fake_llm.script(status(400, "max_tokens: too large"))

    reply = ask(school)

    assert reply.fallback_reason == "the model service answered 400 (bad request)"
    failure = Failure.objects.get()
    assert failure.severity == "normal"
    assert "LLM_MAX_TOKENS" in failure.remediation


def test_without_a_key_the_fallback_answers_and_nothing_is_sent(school, fake_llm, settings):
    settings.ANTHROPIC_API_KEY = ""
    rules = FallbackAnswer(
        FALLBACK_TEXT, tool_calls=[("save_study_plan_draft", {"student": "S", "weeks": 2})]
    )

    reply = ask(school, fallback=lambda: rules)

    assert (reply.source, reply.fallback_reason, reply.model) == (
        "fallback",
        "no ANTHROPIC_API_KEY set",
        "rules",
    )
    assert [(c.id, c.name) for c in reply.tool_calls] == [("rules_1", "save_study_plan_draft")]
    assert fake_llm.requests == []
    event = event_of(reply)
    assert event.details["fallback_reason"] == "no ANTHROPIC_API_KEY set"
    assert event.details["tools_called"] == ["save_study_plan_draft"]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (raw("<html>502 Bad Gateway</html>", content_type="text/html"), "malformed: not a message"),
        (raw('{"type": "message", "content": '), "could not be read (JSONDecodeError)"),
        (raw('{"type": "message", "role": "assistant", "content": []}'), "the model's answer was empty"),
        (raw('{"type": "message", "content": [{"type": "image"}]}'), "an unreadable image block"),
    ],
)
def test_a_malformed_answer_falls_back(school, fake_llm, answer, reason):
    fake_llm.script(answer)

    reply = ask(school)

    assert reply.source == "fallback"
    assert reason in reply.fallback_reason
    assert event_of(reply).details["fallback_reason"] == reply.fallback_reason


def test_the_model_never_sees_a_students_name_or_email(school, fake_llm):
    student = school.student
    student.first_name, student.last_name = "Marisol", "Quennell"
    student.email = "marisol.quennell@example.org"
    student.save(update_fields=["first_name", "last_name", "email"])
    pseudonyms = Pseudonyms.for_students([(student.id, student.first_name, student.last_name, student.email)])
    fake_llm.script(
        tool_use("save_study_plan_draft", {"student": "Student A", "weeks": 2}), "Student A is on track."
    )
    first = ask(
        school,
        system="You are tutoring Marisol Quennell.",
        messages=[
            {
                "role": "user",
                "content": "How is marisol doing? Write to marisol.quennell@example.org or mq@home.net.",
            }
        ],
        pseudonyms=pseudonyms,
    )
    [call] = first.tool_calls

    second = ask(
        school,
        messages=[
            {"role": "user", "content": "Plan for QUENNELL, please."},
            assistant_turn(first),
            tool_results_turn([(call, {"saved_for": "Marisol Quennell", "contact": student.email}, False)]),
        ],
        pseudonyms=pseudonyms,
    )

    sent = fake_llm.sent_text()
    for secret in ("marisol", "quennell", "example.org", "mq@home.net"):
        assert not re.search(re.escape(secret), sent, re.IGNORECASE), secret
    assert "You are tutoring Student A." in sent
    assert "[email]" in sent
    assert pseudonyms.student_id_for(call.input["student"]) == student.id
    assert pseudonyms.unmask(second.text) == "Marisol Quennell is on track."
    for reply in (first, second):
        event = event_of(reply)
        recorded = json.dumps([event.details, event.why]).lower()
        assert "marisol" not in recorded and "quennell" not in recorded
        assert event.details["pseudonymised"] is True


def test_an_abusive_reply_is_blocked_and_noted(school, fake_llm):
    fake_llm.script("Honestly, you are so stupid. Try again.")

    reply = ask(school)

    assert reply.text == safety.WITHHELD
    assert reply.filtered == ["blocked: insult"]
    details = event_of(reply).details
    assert (details["blocked"], details["filtered"]) == (True, ["blocked: insult"])


def test_contact_details_in_a_reply_are_redacted(school, fake_llm):
    fake_llm.script("Write to tutor@example.com or call +1 555-123-4567 before 2026-11-03.")

    reply = ask(school)

    assert reply.text == "Write to [email removed] or call [phone removed] before 2026-11-03."
    assert reply.filtered == ["redacted 1 email address", "redacted 1 phone number"]
    assert event_of(reply).details["blocked"] is False


def test_a_fallback_reply_passes_the_filter_too(school, fake_llm, settings):
    settings.ANTHROPIC_API_KEY = ""

    reply = ask(school, fallback=lambda: "Ring the office on 020 7946 0958 about the plan.")

    assert reply.source == "fallback"
    assert reply.text == "Ring the office on [phone removed] about the plan."
    assert event_of(reply).details["filtered"] == ["redacted 1 phone number"]


def test_automation_records_its_component_as_the_actor(school, fake_llm):
    reply = ask(school, actor="system:proactive")

    event = event_of(reply)
    assert (event.actor_id, event.actor_name) == (None, "system:proactive")
    assert reply.text == "Fake answer."


def _asks(school, n):
    return [
        Ask(
            purpose=f"compose message {i}",
            system="You write one short message to a learner.",
            messages=[{"role": "user", "content": f"Message number {i}"}],
            fallback=lambda i=i: FallbackAnswer(f"Rule-based message {i}"),
            actor="system:proactive",
            organisation_id=school.organisation.id,
            student_id=school.student.id,
        )
        for i in range(n)
    ]


def test_many_calls_are_in_flight_at_once_and_each_is_audited_in_order(school, fake_llm):
    fake_llm.script(*[delay(0.4, then=text("Keep going."))] * 4)
    started = time.monotonic()
    replies = complete_many(_asks(school, 4), concurrency=4)
    elapsed = time.monotonic() - started
    assert elapsed < 1.2, elapsed  # one after the other would take 1.6 s
    assert [r.source for r in replies] == ["model"] * 4 and len(fake_llm.requests) == 4
    events = [ActivityEvent.objects.get(pk=r.event_id) for r in replies]
    assert [e.why for e in events] == [f"compose message {i}" for i in range(4)]
    assert [e.details["latency_ms"] >= 400 for e in events] == [True] * 4


def test_many_calls_without_a_key_are_each_their_own_fallback(school, fake_llm, settings):
    settings.ANTHROPIC_API_KEY = ""
    replies = complete_many(_asks(school, 3), concurrency=4)
    assert [r.text for r in replies] == [f"Rule-based message {i}" for i in range(3)]
    assert {r.source for r in replies} == {"fallback"} and fake_llm.requests == []
    assert len({r.event_id for r in replies}) == 3
