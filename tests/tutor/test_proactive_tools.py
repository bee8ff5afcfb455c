"""The proactive engine's six tools, offered to the model in the tutor chat: a valid call runs its
service (once the teacher confirms it, for a change to what the learner receives); input the
schema refuses never runs; a service's refusal goes back to the model."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from tests.conftest import login
from tests.fake_anthropic import tool_use
from tutor.models import ObservedPattern, ProactivenessSettings, ScheduledTask, ToolProposal
from tutor.proactive.tools import TOOLS

HTMX = {"HTTP_HX_REQUEST": "true"}


def _ask(client, school, message: str):
    login(client, school.teacher)
    return client.post(f"/students/{school.student.pk}/chat/", {"message": message}, **HTMX)


def test_the_six_tools_are_offered_with_strict_schemas(client, school, planned, fake_llm):
    fake_llm.script("Hello.")
    _ask(client, school, "hi")
    offered = {tool["name"]: tool for tool in fake_llm.requests[-1].body["tools"]}
    assert (
        {t.name for t in TOOLS}
        == {
            "create_schedule",
            "manage_schedule",
            "record_pattern",
            "record_engagement",
            "adjust_proactiveness",
            "get_user_profile",
        }
        <= set(offered)
    )
    assert all(offered[t.name]["input_schema"]["additionalProperties"] is False for t in TOOLS)


def test_the_tutor_proposes_a_check_in_that_the_teacher_confirms(client, school, planned, fake_llm):
    fake_llm.script(
        tool_use(
            "create_schedule",
            {
                "kind": "check_in",
                "intent": "How did the quiz go?",
                "cron": "0 16 * * 5",
                "time_zone": "Europe/London",
            },
        ),
        "I proposed a Friday 4 pm check-in; confirm it below.",
    )
    page = _ask(client, school, "Check in with them every Friday at 4").content.decode()
    assert "I proposed a Friday 4 pm check-in; confirm it below." in page
    assert not ScheduledTask.objects.exists()  # a proposal until the teacher confirms it
    result = fake_llm.requests[-1].body["messages"][-1]["content"][0]
    assert result["type"] == "tool_result" and '"status": "proposed"' in result["content"]
    [proposal] = ToolProposal.objects.all()
    client.post(f"/chat/proposals/{proposal.pk}/confirm/", **HTMX)
    task = ScheduledTask.objects.get()
    assert (task.kind, task.cron, task.time_zone, task.owner) == (
        "check_in",
        "0 16 * * 5",
        "Europe/London",
        school.teacher,
    )
    local = task.next_run_at.astimezone(ZoneInfo("Europe/London"))
    assert (local.weekday(), local.hour, local.minute) == (4, 16, 0)  # Friday 16:00 in London


def test_a_bad_cron_is_refused_and_the_model_is_told_why(client, school, planned, fake_llm):
    fake_llm.script(
        tool_use("create_schedule", {"kind": "nudge", "intent": "practise", "cron": "61 * * * *"}),
        "That time does not exist; which time did you mean?",
    )
    _ask(client, school, "nudge them at minute 61")
    assert not ScheduledTask.objects.exists()
    result = fake_llm.requests[-1].body["messages"][-1]["content"][0]
    assert result["is_error"] is True and "cron: '61 * * * *'" in result["content"]


def test_input_outside_the_schema_never_runs(client, school, planned, fake_llm):
    fake_llm.script(
        tool_use("adjust_proactiveness", {"level": "maximum"}),
        tool_use("record_pattern", {"kind": "x", "description": "y", "confidence": 3}),
    )
    _ask(client, school, "be very proactive")
    assert not ProactivenessSettings.objects.filter(level="maximum").exists()
    assert not ObservedPattern.objects.exists()


def test_profile_engagement_and_patterns_through_the_tools(client, school, planned, fake_llm):
    fake_llm.script(
        tool_use(
            "record_pattern",
            {
                "kind": "evening_study",
                "description": "Studies after dinner",
                "evidence_summary": "5 of 7 sessions after 7 pm",
                "confidence": 0.7,
            },
        ),
        "Noted.",
    )
    _ask(client, school, "They mostly study after dinner")
    pattern = ObservedPattern.objects.get()
    assert pattern.evidence == {"summary": "5 of 7 sessions after 7 pm", "recorded_by": "agent:tutor"}
    fake_llm.script(tool_use("get_user_profile", {}), "Here is what I know.")
    _ask(client, school, "What do you know about them?")
    result = fake_llm.requests[-1].body["messages"][-1]["content"][0]["content"]
    assert "Studies after dinner" in result and '"level": "normal"' in result
