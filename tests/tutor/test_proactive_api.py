"""`/api/schedules` and `/api/proactive/*` with bearer tokens: create, list, runs, settings and the
profile; cron errors that name the field with croniter's reason; who reaches what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from audit.models import ActivityEvent
from classroom.api_auth import api_token_create
from classroom.models import User
from tests import factories
from tutor.models import ScheduledTask
from tutor.proactive import services
from tutor.proactive.dispatcher import run_due_tasks


def _auth(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.fixture
def token(school) -> str:
    return api_token_create(user=school.teacher)


@pytest.fixture
def learner(school) -> User:
    """The school's student's own login: a learner linked through Student.user."""
    user = factories.UserFactory(organisation=school.organisation, role=User.Role.LEARNER)
    school.student.user = user
    school.student.save(update_fields=["user"])
    return user


def _schedule(school, student=None, by=None, **fields) -> ScheduledTask:
    fields = {"kind": "nudge", "intent": "Ten minutes on fractions", "cron": "30 16 * * 1-5", **fields}
    return services.schedule_create(by=by or school.teacher, student=student or school.student, **fields)


def _post(client, token: str, **body):
    return client.post("/api/schedules", body, content_type="application/json", **_auth(token))


def test_create_answers_201_with_the_schedule_and_records_it(client, school, token):
    response = _post(
        client,
        token,
        student_id=school.student.pk,
        kind="reminder",
        intent="Bring the worksheet to class",
        cron="30 16 * * 1-5",
        time_zone="Europe/London",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    task = ScheduledTask.objects.get(pk=body["id"])
    assert (task.owner, task.student, task.kind, task.status) == (
        school.teacher,
        school.student,
        "reminder",
        "active",
    )
    assert body["cron"] == "30 16 * * 1-5" and body["time_zone"] == "Europe/London"
    assert body["owner"] == school.teacher.username and body["pattern"] is None
    due = datetime.fromisoformat(body["next_run_at"]).astimezone(task.next_run_at.tzinfo)
    assert due == task.next_run_at > timezone.now()
    assert ActivityEvent.objects.get(verb="schedule.created").target_id == str(task.pk)


def test_a_one_off_time_without_offset_is_read_in_the_tasks_time_zone(client, school, token):
    response = _post(
        client,
        token,
        student_id=school.student.pk,
        kind="check_in",
        intent="How did the quiz go?",
        run_at="2031-01-15T09:30:00",
        time_zone="America/New_York",
    )
    assert response.status_code == 201, response.content
    task = ScheduledTask.objects.get(pk=response.json()["id"])
    assert task.next_run_at == datetime(2031, 1, 15, 14, 30, tzinfo=UTC)
    assert response.json()["cron"] is None


def test_a_cron_error_is_400_naming_cron_with_croniters_reason(client, school, token):
    base = {"student_id": school.student.pk, "kind": "nudge", "intent": "practise"}
    response = _post(client, token, **base, cron="61 * * * *")
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_schedule",
        "detail": "cron: '61 * * * *': [61 * * * *] is not acceptable, out of range",
        "fields": {"cron": ["'61 * * * *': [61 * * * *] is not acceptable, out of range"]},
    }
    fields = _post(client, token, **base, cron="every day").json()["fields"]
    assert fields == {"cron": ["'every day' needs five fields: minute hour day month weekday"]}
    zone = _post(client, token, **base, cron="0 9 * * *", time_zone="Mars/Olympus").json()
    assert zone["fields"] == {"time_zone": ["'Mars/Olympus' is not a time zone such as Europe/London"]}
    both = _post(client, token, **base, cron="0 9 * * *", run_at="2031-01-01T09:00:00Z").json()
    assert both["fields"] == {"cron": ["give either cron (recurring) or run_at (once), not both or neither"]}
    past = _post(client, token, **base, run_at="2020-01-01T09:00:00Z").json()
    assert past["fields"] == {"run_at": ["is in the past"]}
    kind = _post(client, token, **{**base, "kind": "poem"}, cron="0 9 * * *").json()
    assert list(kind["fields"]) == ["kind"] and "got 'poem'" in kind["fields"]["kind"][0]
    missing = _post(client, token, student_id=school.student.pk, cron="0 9 * * *")
    assert missing.status_code == 400 and set(missing.json()["fields"]) == {"kind", "intent"}
    assert not ScheduledTask.objects.exists()


def test_the_list_is_scoped_and_filtered(client, school, token):
    mine = _schedule(school)
    paused = _schedule(school, kind="reminder", cron="0 9 * * 1")
    services.schedule_manage(task=paused, by=school.teacher, action="pause")
    _schedule(school, student=school.colleague_student, by=school.colleague)
    body = client.get("/api/schedules", **_auth(token)).json()
    assert body["count"] == 2 and {row["id"] for row in body["items"]} == {mine.pk, paused.pk}
    assert (body["limit"], body["offset"]) == (50, 0)
    only = client.get("/api/schedules?status=paused", **_auth(token)).json()
    assert [row["id"] for row in only["items"]] == [paused.pk]
    by_student = client.get(f"/api/schedules?student_id={school.student.pk}", **_auth(token)).json()
    assert by_student["count"] == 2
    other = client.get(f"/api/schedules?student_id={school.colleague_student.pk}", **_auth(token))
    assert other.status_code == 404
    bad = client.get("/api/schedules?status=sleeping", **_auth(token))
    assert bad.status_code == 400 and list(bad.json()["fields"]) == ["status"]


def test_one_schedule_and_its_runs_newest_first_a_page_at_a_time(client, school, token):
    task = _schedule(school)
    services.student_pause(student=school.student, by=school.teacher, paused=True)  # runs, sends nothing
    for hours in (3, 2, 1):
        due = timezone.now() - timedelta(hours=hours)
        ScheduledTask.objects.filter(pk=task.pk).update(next_run_at=due)
        run_due_tasks(now=due + timedelta(seconds=1))
    one = client.get(f"/api/schedules/{task.pk}", **_auth(token))
    assert one.status_code == 200 and one.json()["intent"] == "Ten minutes on fractions"
    first = client.get(f"/api/schedules/{task.pk}/runs?limit=2", **_auth(token)).json()
    assert (first["schedule_id"], first["count"], first["limit"]) == (task.pk, 3, 2)
    times = [datetime.fromisoformat(run["scheduled_for"]) for run in first["items"]]
    assert times == sorted(times, reverse=True)
    assert first["items"][0]["status"] == "skipped"
    assert first["items"][0]["rationale"] == "proactive messages are paused for this learner"
    rest = client.get(f"/api/schedules/{task.pk}/runs?limit=2&offset=2", **_auth(token)).json()
    assert len(rest["items"]) == 1 and datetime.fromisoformat(rest["items"][0]["scheduled_for"]) < times[1]
    assert client.get(f"/api/schedules/{task.pk}/runs", **_auth(token)).json()["limit"] == 50
    too_many = client.get(f"/api/schedules/{task.pk}/runs?limit=201", **_auth(token))
    assert too_many.status_code == 400 and list(too_many.json()["fields"]) == ["limit"]


def test_settings_and_profile_for_a_student_in_your_classes(client, school, token):
    pattern = services.pattern_record(
        student=school.student,
        kind="skipped_weekdays",
        description="Does not study on Wednesday",
        evidence={"weekdays": ["Wednesday"], "weeks_observed": 4},
        confidence=1.0,
    )
    _schedule(school, pattern=pattern)
    services.proactiveness_adjust(student=school.student, by=school.teacher, level="low")
    url = f"?student_id={school.student.pk}"
    settings = client.get(f"/api/proactive/settings{url}", **_auth(token)).json()
    assert settings["student_id"] == school.student.pk
    assert (settings["level"], settings["paused"], settings["suppressed_types"]) == ("low", False, [])
    profile = client.get(f"/api/proactive/profile{url}", **_auth(token)).json()
    [seen] = profile["patterns"]
    assert seen["evidence"] == {"weekdays": ["Wednesday"], "weeks_observed": 4} and seen["confidence"] == 1.0
    assert profile["settings"]["level"] == "low"
    assert [s["pattern"] for s in profile["schedules"]] == ["Does not study on Wednesday"]
    missing = client.get("/api/proactive/settings", **_auth(token))
    assert missing.status_code == 400 and missing.json()["fields"] == {
        "student_id": ["pass ?student_id= with a student in your classes"]
    }


def test_a_learner_reads_only_their_own_and_cannot_create(client, school, learner):
    own = _schedule(school)
    theirs = _schedule(school, student=school.colleague_student, by=school.colleague)
    token = api_token_create(user=learner)
    profile = client.get("/api/proactive/profile", **_auth(token))
    assert profile.status_code == 200 and profile.json()["student_id"] == school.student.pk
    assert [s["id"] for s in profile.json()["schedules"]] == [own.pk]
    mine = client.get(f"/api/proactive/profile?student_id={school.student.pk}", **_auth(token))
    assert mine.status_code == 200
    other = f"?student_id={school.colleague_student.pk}"
    assert client.get(f"/api/proactive/profile{other}", **_auth(token)).status_code == 404
    assert client.get(f"/api/proactive/settings{other}", **_auth(token)).status_code == 404
    assert client.get("/api/proactive/settings", **_auth(token)).json()["student_id"] == school.student.pk
    listed = client.get("/api/schedules", **_auth(token)).json()
    assert [row["id"] for row in listed["items"]] == [own.pk]
    assert client.get(f"/api/schedules/{theirs.pk}", **_auth(token)).status_code == 404
    assert client.get(f"/api/schedules/{theirs.pk}/runs", **_auth(token)).status_code == 404
    refused = _post(
        client, token, student_id=school.student.pk, kind="nudge", intent="me me me", cron="0 9 * * *"
    )
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert ScheduledTask.objects.count() == 2


def test_a_learner_without_a_student_record_finds_nothing(client, school):
    token = api_token_create(user=factories.UserFactory(role=User.Role.LEARNER))
    assert client.get("/api/proactive/profile", **_auth(token)).status_code == 404
    assert client.get("/api/schedules", **_auth(token)).json() == {
        "count": 0,
        "limit": 50,
        "offset": 0,
        "items": [],
    }


def test_compliance_reads_but_cannot_create(client, school):
    compliance = factories.UserFactory(organisation=school.organisation, role=User.Role.COMPLIANCE)
    token = api_token_create(user=compliance)
    task = _schedule(school)
    assert client.get(f"/api/schedules/{task.pk}", **_auth(token)).status_code == 200
    refused = _post(
        client, token, student_id=school.student.pk, kind="nudge", intent="x y z", cron="0 9 * * *"
    )
    assert refused.status_code == 403


def test_outsiders_get_404_everywhere(client, school):
    task = _schedule(school)
    token = api_token_create(user=school.colleague)
    student = f"?student_id={school.student.pk}"
    for url in (
        f"/api/schedules/{task.pk}",
        f"/api/schedules/{task.pk}/runs",
        f"/api/schedules{student}",
        f"/api/proactive/settings{student}",
        f"/api/proactive/profile{student}",
    ):
        response = client.get(url, **_auth(token))
        assert response.status_code == 404, url
        assert response.json() == {
            "error": "not_found",
            "detail": "no such object within your classes",
            "fields": {},
        }
    assert client.get("/api/schedules", **_auth(token)).json()["count"] == 0
    created = _post(
        client, token, student_id=school.student.pk, kind="nudge", intent="hello", cron="0 9 * * *"
    )
    assert created.status_code == 404
    assert ScheduledTask.objects.count() == 1


def test_anonymous_callers_get_401(client, school):
    task = _schedule(school)
    for url in (
        "/api/schedules",
        f"/api/schedules/{task.pk}",
        f"/api/schedules/{task.pk}/runs",
        f"/api/proactive/settings?student_id={school.student.pk}",
        f"/api/proactive/profile?student_id={school.student.pk}",
    ):
        response = client.get(url)
        assert response.status_code == 401, url
        assert response.json()["error"] == "unauthorized"
    assert client.get("/api/schedules", HTTP_AUTHORIZATION="Bearer pt_wrong").status_code == 401
    posted = client.post("/api/schedules", {}, content_type="application/json")
    assert posted.status_code == 401


def test_the_session_works_too(client, school):
    task = _schedule(school)
    client.force_login(school.teacher)
    assert client.get(f"/api/schedules/{task.pk}").json()["id"] == task.pk


def test_every_endpoint_is_in_the_openapi_document(client):
    document = client.get("/api/openapi.json").json()
    paths = document["paths"]
    assert set(paths["/api/schedules"]) == {"get", "post"}
    for path in (
        "/api/schedules/{schedule_id}",
        "/api/schedules/{schedule_id}/runs",
        "/api/proactive/settings",
        "/api/proactive/profile",
    ):
        assert "get" in paths[path], path
    schema = document["components"]["schemas"]["ScheduleIn"]
    assert schema["properties"]["kind"]["enum"] == list(ScheduledTask.Kind.values)
    assert {"student_id", "kind", "intent"} <= set(schema["required"])
    runs = {p["name"]: p for p in paths["/api/schedules/{schedule_id}/runs"]["get"]["parameters"]}
    assert runs["limit"]["schema"]["maximum"] == 200 and runs["limit"]["schema"]["default"] == 50
