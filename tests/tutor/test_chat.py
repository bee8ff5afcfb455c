"""Plain-text plan edits and the tutor chat, through the real anthropic SDK against the fake
Messages API on loopback, and through the rule-based fallback when the model fails."""

from __future__ import annotations

import copy

import pytest

from audit.models import ActivityEvent
from plans.models import PlanDraft
from tests.conftest import login
from tests.fake_anthropic import delay, status, tool_use
from tutor.models import ChatMessage

HTMX = {"HTTP_HX_REQUEST": "true"}


def _with_minutes(plan: dict, minutes: int) -> dict:
    proposed = copy.deepcopy(plan)
    proposed["pacing"]["weekly_minutes"] = minutes
    return proposed


def _preview(client, school, text: str) -> str:
    url = f"/students/{school.student.pk}/plan/preview/"
    return client.post(url, {"mode": "text", "text": text}, **HTMX).content.decode()


def test_the_model_reads_plain_text_into_a_proposal_that_is_validated_and_diffed(
    client, school, planned, fake_llm
):
    fake_llm.script(
        tool_use(
            "propose_plan_edit",
            {
                "plan": _with_minutes(planned, 170),
                "understood": ["weekly minutes 150 → 170"],
                "not_understood": [],
            },
        )
    )
    login(client, school.teacher)
    preview = _preview(client, school, f"give {school.student.first_name} 20 more minutes a week")
    assert "Read by the tutor model" in preview
    assert "Weekly minutes: 150 → 170 (+20)" in preview
    sent = fake_llm.sent_text()
    assert school.student.first_name not in sent and school.student.last_name not in sent
    body = fake_llm.requests[-1].body
    assert body["tool_choice"] == {"type": "tool", "name": "propose_plan_edit"}
    assert body["tools"][0]["input_schema"]["properties"]["plan"]["properties"]["curricula"]["items"][
        "enum"
    ] == [
        "alg1-core",
        "alg1-plus",
        "geo-bridge",
    ]
    event = ActivityEvent.objects.filter(verb="llm.call").latest("seq")
    assert event.details["source"] == "model" and event.details["prompt_sha256"]


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(lambda fake: [delay(3.0)] * fake.attempts, id="timeout"),
        pytest.param(lambda fake: [status(529)] * fake.attempts, id="overloaded"),
        pytest.param(lambda fake: [status(500)] * fake.attempts, id="server-error"),
    ],
)
def test_a_failing_model_falls_back_to_the_rules_and_says_so(client, school, planned, fake_llm, failure):
    fake_llm.script(*failure(fake_llm))
    login(client, school.teacher)
    preview = _preview(client, school, "set weekly minutes to 180")
    assert "Read by the rule-based parser, not the AI model" in preview
    assert "Weekly minutes: 150 → 180 (+30)" in preview
    event = ActivityEvent.objects.filter(verb="llm.call").latest("seq")
    assert event.details["source"] == "fallback" and event.details["fallback_reason"]


def test_a_malformed_proposal_from_the_model_is_rejected_and_the_rules_read_the_text(
    client, school, planned, fake_llm
):
    bad = _with_minutes(planned, 170)
    bad["pacing"]["weekly_minutes"] = "lots"
    bad["colour"] = "blue"
    fake_llm.script(tool_use("propose_plan_edit", {"plan": bad, "understood": [], "not_understood": []}))
    login(client, school.teacher)
    preview = _preview(client, school, "set weekly minutes to 160")
    assert "Read by the rule-based parser" in preview
    assert "the model&#x27;s proposal could not be used" in preview
    assert "Weekly minutes: 150 → 160 (+10)" in preview
    event = ActivityEvent.objects.filter(verb="llm.call").latest("seq")
    assert any("input rejected" in note for note in event.details["filtered"])


def test_the_tutor_proposes_a_draft_through_the_tool_and_answers_after_the_round_trip(
    client, school, planned, fake_llm
):
    fake_llm.script(
        tool_use(
            "save_study_plan_draft",
            {"plan": _with_minutes(planned, 165), "rationale": "Quiz scores slipped two weeks in a row"},
            preface="I'll draft that.",
        ),
        "Saved a draft with 15 more minutes a week. Review and publish it in the plan panel.",
    )
    login(client, school.teacher)
    response = client.post(
        f"/students/{school.student.pk}/chat/", {"message": "Add 15 minutes a week please"}, **HTMX
    )
    assert response.status_code == 200
    assert response["HX-Trigger"] == "plan-changed"
    page = response.content.decode()
    assert "Saved a draft with 15 more minutes a week" in page and "AI model" in page
    draft = PlanDraft.objects.get(source="tutor")
    assert (draft.author, draft.rationale) == (school.teacher, "Quiz scores slipped two weeks in a row")
    assert draft.diff == {"pacing": {"weekly_minutes": {"from": 150, "to": 165}}}
    saved = ActivityEvent.objects.get(verb="plan.draft_saved", target_id=str(draft.pk))
    assert (saved.actor_name, saved.source, saved.details["on_behalf_of"]) == (
        "agent:tutor",
        "agent",
        school.teacher.username,
    )
    # The second request carried the tool result for the tool_use the model asked for.
    second = fake_llm.requests[-1].body["messages"]
    result = second[-1]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == second[-2]["content"][-1]["id"]
    assert [m.role for m in ChatMessage.objects.order_by("pk")] == ["teacher", "tutor"]
    assert ChatMessage.objects.get(role="tutor").draft == draft


def test_the_rule_based_tutor_answers_labelled_and_still_drafts(client, school, planned, settings):
    settings.ANTHROPIC_API_KEY = ""
    login(client, school.teacher)
    url = f"/students/{school.student.pk}/chat/"
    page = client.post(url, {"message": "How is this student doing?"}, **HTMX).content.decode()
    assert "Rule-based answer, not the AI model" in page
    assert "minutes of study" in page and "I am the rule-based assistant" in page
    page = client.post(url, {"message": "4 sessions a week"}, **HTMX).content.decode()
    draft = PlanDraft.objects.get(source="tutor_rules")
    assert draft.diff == {"pacing": {"sessions_per_week": {"from": 3, "to": 4}}}
    assert f"I saved draft {draft.pk}" in page
    assert draft.rationale == "Asked in the tutor chat: 4 sessions a week"


def test_chat_scoping_and_bad_input(client, school, planned):
    login(client, school.colleague)
    assert client.get(f"/students/{school.student.pk}/chat/").status_code == 404
    login(client, school.teacher)
    response = client.post(f"/students/{school.student.pk}/chat/", {"message": "  "}, **HTMX)
    assert response.status_code == 400
    assert "message: write something to ask the tutor" in response.content.decode()
    assert not ChatMessage.objects.exists()


def test_the_context_bundle_sits_beside_the_conversation(client, school, planned):
    login(client, school.teacher)
    page = client.get(f"/students/{school.student.pk}/chat/", **HTMX).content.decode()
    for heading in ("Plan", "Mastery", "Recent adjustments", "Upcoming milestones", "Last sync"):
        assert f"<h3>{heading}</h3>" in page
    assert "Version 1: 150 minutes a week in 3 sessions" in page
    assert "Unit 1 quiz" in page
