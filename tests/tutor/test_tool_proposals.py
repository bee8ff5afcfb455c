"""A tool call of the tutor model that changes what a learner receives is a proposal: nothing
changes until a teacher confirms it in the chat (one click, in place with htmx, a plain form
without it); a confirmation runs the service as that teacher, a dismissal changes nothing, and
both are audited. Through the real SDK against the fake Messages API on loopback."""

from __future__ import annotations

import json

import pytest
from django.utils.html import escape

from audit.models import ActivityEvent
from classroom.models import User
from tests import factories
from tests.conftest import login
from tests.fake_anthropic import tool_use
from tutor import models as tutor_models
from tutor.models import EngagementEvent, ProactivenessSettings, ScheduledTask
from tutor.proactive import services

HTMX = {"HTTP_HX_REQUEST": "true"}
EVERY_MINUTE = {"kind": "nudge", "intent": "Practise now", "cron": "* * * * *"}


def _ask(client, school, fake_llm, call, answer="Proposed; confirm it below."):
    fake_llm.script(tool_use(*call), answer)
    login(client, school.teacher)
    return client.post(f"/students/{school.student.pk}/chat/", {"message": "please do it"}, **HTMX)


def _tool_result(fake_llm) -> dict:
    block = fake_llm.requests[-1].body["messages"][-1]["content"][0]
    assert block["type"] == "tool_result" and not block.get("is_error")
    content = block["content"]
    return json.loads(content[content.index("{") : content.rindex("}") + 1])


def _schedule(school, **fields):
    fields = {"kind": "reminder", "intent": "Read chapter 4", "cron": "0 17 * * *"} | fields
    return services.schedule_create(by=school.teacher, student=school.student, **fields)


def _dismissed_twice(school):
    for _ in range(2):
        services.engagement_record(student=school.student, suggestion_type="check_in", response="dismissed")


CASES = {
    "create_schedule": (lambda school: None, lambda school: ("create_schedule", EVERY_MINUTE)),
    "cancel": (
        _schedule,
        lambda school: (
            "manage_schedule",
            {"schedule_id": ScheduledTask.objects.get().pk, "action": "cancel"},
        ),
    ),
    "proactiveness": (lambda school: None, lambda school: ("adjust_proactiveness", {"level": "high"})),
    "dismissal": (
        _dismissed_twice,
        lambda school: ("record_engagement", {"suggestion_type": "check_in", "response": "dismissed"}),
    ),
}


def _what_the_learner_receives(school) -> dict:
    prefs = services.settings_peek(school.student)
    return {
        "schedules": list(ScheduledTask.objects.values_list("kind", "cron", "status")),
        "level": prefs.level,
        "suppressed": list(prefs.suppressed_types),
        "engagement": EngagementEvent.objects.count(),
    }


@pytest.mark.parametrize("case", list(CASES))
def test_a_tool_call_that_changes_what_the_learner_receives_is_only_proposed(
    client, school, planned, fake_llm, case
):
    prepare, call = CASES[case]
    prepare(school)
    before = _what_the_learner_receives(school)
    page = _ask(client, school, fake_llm, call(school)).content.decode()
    assert _what_the_learner_receives(school) == before  # nothing changed yet
    result = _tool_result(fake_llm)
    assert result["status"] == "proposed" and "confirm" in result["next"]
    assert "done" not in json.dumps(result).lower().replace("not done", "")
    proposal = tutor_models.ToolProposal.objects.get()
    assert (proposal.tool, proposal.status, proposal.student) == (call(school)[0], "pending", school.student)
    assert proposal.message.role == "tutor" and proposal.description
    assert escape(proposal.description) in page
    assert f'action="/chat/proposals/{proposal.pk}/confirm/"' in page
    assert f'action="/chat/proposals/{proposal.pk}/dismiss/"' in page
    assert ActivityEvent.objects.filter(verb="proposal.made", actor_name="agent:tutor").count() == 1


def test_the_descriptions_say_what_confirming_will_do(client, school, planned, fake_llm):
    _dismissed_twice(school)
    _ask(client, school, fake_llm, ("create_schedule", EVERY_MINUTE))
    _ask(client, school, fake_llm, CASES["dismissal"][1](school))
    _ask(client, school, fake_llm, ("adjust_proactiveness", {"level": "high"}))
    made, dismissal, level = tutor_models.ToolProposal.objects.order_by("pk")
    name = school.student.first_name
    assert made.description.startswith(f"Schedule a nudge for {name} on cron * * * * * (UTC): first ")
    first, then = made.description.split(": first ")[1].split(";")[0].split(", then ")
    assert first[-5:] != then[-5:]  # two times a minute apart: the teacher sees how often
    assert "active as soon as you confirm" in made.description
    assert f"suppresses check-ins for {name}" in dismissal.description
    assert level.description == f"Set {name}'s proactiveness to high (now normal)."


def test_confirm_runs_the_service_as_the_teacher_and_names_both_in_the_audit(
    client, school, planned, fake_llm
):
    _ask(client, school, fake_llm, ("create_schedule", EVERY_MINUTE))
    proposal = tutor_models.ToolProposal.objects.get()
    card = client.post(f"/chat/proposals/{proposal.pk}/confirm/", **HTMX)
    assert card.status_code == 200
    fragment = card.content.decode()
    assert "<html" not in fragment and f'id="proposal-{proposal.pk}"' in fragment
    assert "Confirmed by you" in fragment and "Confirm</button>" not in fragment
    task = ScheduledTask.objects.get()
    assert (task.owner, task.cron, task.status) == (school.teacher, "* * * * *", "active")
    proposal.refresh_from_db()
    assert (proposal.status, proposal.decided_by, proposal.result["id"]) == (
        "confirmed",
        school.teacher,
        task.pk,
    )
    confirmed = ActivityEvent.objects.get(verb="proposal.confirmed")
    assert confirmed.actor == school.teacher
    assert confirmed.details["proposed_by"] == "agent:tutor"
    assert confirmed.details["tool"] == "create_schedule"
    created = ActivityEvent.objects.get(verb="schedule.created")
    assert created.actor == school.teacher and created.correlation_id == confirmed.correlation_id


def test_without_javascript_confirm_and_dismiss_redirect_back_to_the_chat(client, school, planned, fake_llm):
    _ask(client, school, fake_llm, ("adjust_proactiveness", {"level": "high"}))
    _ask(client, school, fake_llm, ("adjust_proactiveness", {"level": "low"}))
    first, second = tutor_models.ToolProposal.objects.order_by("pk")
    response = client.post(f"/chat/proposals/{first.pk}/confirm/")
    assert response.status_code == 302
    assert response["Location"] == f"/students/{school.student.pk}/chat/#proposal-{first.pk}"
    assert services.settings_peek(school.student).level == "high"
    response = client.post(f"/chat/proposals/{second.pk}/dismiss/")
    assert response.status_code == 302
    assert services.settings_peek(school.student).level == "high"
    page = client.get(response["Location"]).content.decode()
    assert "Confirmed by you" in page and "Dismissed by you" in page


def test_dismiss_changes_nothing_is_audited_and_cannot_be_confirmed_after(client, school, planned, fake_llm):
    _ask(client, school, fake_llm, ("create_schedule", EVERY_MINUTE))
    proposal = tutor_models.ToolProposal.objects.get()
    assert client.post(f"/chat/proposals/{proposal.pk}/dismiss/", **HTMX).status_code == 200
    refused = client.post(f"/chat/proposals/{proposal.pk}/confirm/", **HTMX)
    assert refused.status_code == 409
    assert "already dismissed" in refused.content.decode()
    assert not ScheduledTask.objects.exists()
    dismissed = ActivityEvent.objects.get(verb="proposal.dismissed")
    assert dismissed.actor == school.teacher and dismissed.details["proposed_by"] == "agent:tutor"


def test_a_proposal_that_no_longer_applies_fails_and_nothing_changes(client, school, planned, fake_llm):
    task = _schedule(school)
    _ask(client, school, fake_llm, ("manage_schedule", {"schedule_id": task.pk, "action": "pause"}))
    proposal = tutor_models.ToolProposal.objects.get()
    services.schedule_manage(task=task, by=school.teacher, action="cancel")  # meanwhile, on the page
    refused = client.post(f"/chat/proposals/{proposal.pk}/confirm/", **HTMX)
    assert refused.status_code == 409
    assert "cannot pause a cancelled task" in refused.content.decode()
    task.refresh_from_db()
    proposal.refresh_from_db()
    assert task.status == "cancelled"
    assert (proposal.status, proposal.decided_by) == ("failed", school.teacher)
    assert "cannot pause a cancelled task" in proposal.error
    assert not ActivityEvent.objects.filter(verb="schedule.paused").exists()
    assert ActivityEvent.objects.get(verb="proposal.failed").status == "failed"
    again = client.post(f"/chat/proposals/{proposal.pk}/confirm/", **HTMX)
    assert again.status_code == 409 and "already failed" in again.content.decode()


def test_only_someone_who_may_act_for_the_student_decides(client, school, planned, fake_llm):
    _ask(client, school, fake_llm, ("adjust_proactiveness", {"level": "high"}))
    proposal = tutor_models.ToolProposal.objects.get()
    compliance = factories.UserFactory(organisation=school.organisation, role=User.Role.COMPLIANCE)
    for user, code in ((school.colleague, 404), (school.outsider, 404), (compliance, 403)):
        login(client, user)
        for action in ("confirm", "dismiss"):
            assert client.post(f"/chat/proposals/{proposal.pk}/{action}/").status_code == code, (user, action)
    client.logout()
    assert client.post(f"/chat/proposals/{proposal.pk}/confirm/").status_code == 302  # to log in
    assert client.get(f"/chat/proposals/{proposal.pk}/confirm/").status_code in (302, 405)
    proposal.refresh_from_db()
    assert proposal.status == "pending"
    assert ProactivenessSettings.objects.filter(level="high").count() == 0


def test_observations_and_reads_stay_direct(client, school, planned, fake_llm):
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
    login(client, school.teacher)
    client.post(f"/students/{school.student.pk}/chat/", {"message": "they study after dinner"}, **HTMX)
    assert school.student.patterns.get().description == "Studies after dinner"
    assert not tutor_models.ToolProposal.objects.exists()


def test_a_refused_input_is_refused_at_once_and_never_proposed(client, school, planned, fake_llm):
    fake_llm.script(
        tool_use("manage_schedule", {"schedule_id": 999999, "action": "cancel"}),
        "That schedule does not exist.",
    )
    login(client, school.teacher)
    client.post(f"/students/{school.student.pk}/chat/", {"message": "cancel it"}, **HTMX)
    block = fake_llm.requests[-1].body["messages"][-1]["content"][0]
    assert block["is_error"] is True and "is not one of this learner's schedules" in block["content"]
    assert not tutor_models.ToolProposal.objects.exists()
