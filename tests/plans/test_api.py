"""`/api/plans/...` with bearer tokens: the plan, its drafts, new drafts, errors that name the field."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from audit.models import ActivityEvent
from classroom.api_auth import api_token_create
from classroom.models import ApiToken
from plans.models import PlanDraft
from tests.plan_fixtures import changed


@pytest.fixture
def token(school):
    return api_token_create(user=school.teacher)


def _auth(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_get_answers_the_published_version_and_open_drafts(client, school, planned, token):
    client.post(
        f"/api/plans/{school.student.pk}/drafts",
        {"plan": changed(planned, weekly_minutes=165), "rationale": "more practice"},
        content_type="application/json",
        **_auth(token),
    )
    response = client.get(f"/api/plans/{school.student.pk}", **_auth(token))
    assert response.status_code == 200
    body = response.json()
    assert body["version"]["number"] == 1
    assert body["version"]["plan"]["pacing"] == {"weekly_minutes": 150, "sessions_per_week": 3}
    [draft] = body["drafts"]
    assert draft["summary"] == ["Weekly minutes: 150 → 165 (+15)"]
    assert (draft["rationale"], draft["source"], draft["state"]) == ("more practice", "api", "open")


def test_a_plan_document_becomes_a_stored_draft_with_its_diff(client, school, planned, token):
    plan = changed(planned, sessions_per_week=4)
    plan["objectives"].append({"text": "Factor quadratics"})
    response = client.post(
        f"/api/plans/{school.student.pk}/drafts",
        {"plan": plan, "rationale": "ready for the next unit"},
        content_type="application/json",
        **_auth(token),
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["proposal"]["summary"] == [
        "Objective added: Factor quadratics",
        "Sessions per week: 3 → 4 (+1)",
    ]
    assert body["proposal"]["plan"]["objectives"][2] == {"id": "o3", "text": "Factor quadratics"}
    draft = PlanDraft.objects.get(pk=body["draft"]["id"])
    assert (draft.author, draft.source) == (school.teacher, "api")
    assert ActivityEvent.objects.get(verb="plan.draft_saved", target_id=str(draft.pk)).source == "api"


def test_a_dry_run_validates_and_stores_nothing(client, school, planned, token):
    response = client.post(
        f"/api/plans/{school.student.pk}/drafts",
        {"plan": changed(planned, weekly_minutes=170), "rationale": "x" * 5, "dry_run": True},
        content_type="application/json",
        **_auth(token),
    )
    assert response.status_code == 200
    assert response.json()["draft"] is None
    assert not PlanDraft.objects.filter(state="open").exists()


def test_bad_input_is_a_400_naming_each_field(client, school, planned, token):
    plan = changed(planned, weekly_minutes="lots")
    plan["milestones"][1]["due"] = "2020-01-01"
    url = f"/api/plans/{school.student.pk}/drafts"
    response = client.post(
        url, {"plan": plan, "rationale": "why"}, content_type="application/json", **_auth(token)
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_plan"
    assert body["fields"] == {"pacing.weekly_minutes": ["must be a whole number"]}
    plan["pacing"]["weekly_minutes"] = 150
    body = client.post(
        url, {"plan": plan, "rationale": "why"}, content_type="application/json", **_auth(token)
    ).json()
    assert body["fields"] == {"milestones[1].due": ["date is before the plan starts"]}
    assert "milestones[1].due: date is before the plan starts" in body["detail"]
    neither = client.post(url, {"rationale": "why"}, content_type="application/json", **_auth(token))
    assert neither.status_code == 400
    assert neither.json()["fields"] == {"text": ["give either text or plan, not both or neither"]}
    typed = client.post(
        url, {"plan": "nope", "rationale": 1}, content_type="application/json", **_auth(token)
    )
    assert typed.status_code == 400 and typed.json()["error"] == "bad_request"
    broken = client.post(url, "{not json", content_type="application/json", **_auth(token))
    assert broken.status_code == 400
    assert not PlanDraft.objects.filter(state="open").exists()


def test_authentication_and_scoping(client, school, planned, token):
    url = f"/api/plans/{school.student.pk}"
    assert client.get(url).status_code == 401
    assert client.get(url, HTTP_AUTHORIZATION="Bearer pt_wrong").json()["error"] == "unauthorized"
    colleague = api_token_create(user=school.colleague)
    response = client.get(url, **_auth(colleague))
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "detail": "no such object within your classes",
        "fields": {},
    }
    assert client.get(f"/api/plans/{school.outsider_student.pk}", **_auth(token)).status_code == 404
    ApiToken.objects.update(revoked_at="2026-01-01T00:00:00Z")
    assert client.get(url, **_auth(token)).status_code == 401


def test_create_api_token_prints_a_token_and_keeps_only_its_digest(school, capsys):
    call_command("create_api_token", school.teacher.username, "--name", "learner app")
    token = capsys.readouterr().out.strip()
    assert token.startswith("pt_")
    row = ApiToken.objects.get()
    assert row.key_hash != token and token not in row.key_hash and row.prefix == token[:10]
    assert ActivityEvent.objects.filter(verb="api_token.created").count() == 1
    with pytest.raises(CommandError, match="no active user 'ghost'"):
        call_command("create_api_token", "ghost")


def test_the_openapi_document_lists_the_plan_endpoints(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    assert {"/api/plans/{student_id}", "/api/plans/{student_id}/drafts"} <= set(paths)
