"""The inputs that answered 500 (issue 13) are 400s or form errors naming the field, store nothing,
and leave every page working; the API answers every error in its documented JSON, and signed-in
pages carry the security headers."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.test import Client

from classroom.api_auth import api_token_create
from classroom.models import User
from tests import factories
from tests.workflow_fixtures import auth
from tutor.models import ScheduledTask
from tutor.proactive import services as proactive

HTMX = {"HTTP_HX_REQUEST": "true"}
THIRTY_DIGITS = "9" * 30
BEYOND_INT64 = "9223372036854775808"


def _rows() -> dict[str, int]:
    return {model._meta.label: model._default_manager.count() for model in apps.get_models()}


@pytest.fixture
def token(school) -> str:
    return api_token_create(user=school.teacher)


@pytest.fixture
def admin(school) -> User:
    return factories.UserFactory(organisation=school.organisation, role=User.Role.ORG_ADMIN)


def _api(client: Client, token: str, path: str, body: dict | None = None, method: str = "post"):
    if method == "get":
        return client.get(path, **auth(token))
    return client.post(path, body or {}, content_type="application/json", **auth(token))


def _refused(response, field: str) -> str:
    body = response.content.decode()
    assert response.status_code == 400, (response.status_code, body[:400])
    assert field in body, body[:400]
    return body


# Schedules ------------------------------------------------------------------------------------------


SCHEDULE_CASES = {
    "a one-off at the end of the calendar, in a zone ahead of UTC": (
        "run_at",
        {"run_at": "9999-12-31T23:59+00:00", "time_zone": "Pacific/Kiritimati"},
    ),
    "a cron that never fires": ("cron", {"cron": "0 9 31 2 *"}),
    "a 5,000-character time zone": ("time_zone", {"cron": "0 9 * * *", "time_zone": "Europe/" + "x" * 5000}),
    "a time zone that is a path": ("time_zone", {"cron": "0 9 * * *", "time_zone": "../../etc/passwd"}),
}


@pytest.mark.parametrize("case", SCHEDULE_CASES)
def test_a_bad_schedule_through_the_api_is_a_400_and_is_not_stored(client, school, token, case):
    field, fields = SCHEDULE_CASES[case]
    body = {"student_id": school.student.pk, "kind": "nudge", "intent": "Ten minutes of revision", **fields}
    before = _rows()
    answer = _api(client, token, "/api/schedules", body)
    _refused(answer, field)
    assert field in answer.json()["fields"]
    assert _rows() == before
    client.force_login(school.teacher)
    assert client.get(f"/students/{school.student.pk}/schedules/").status_code == 200
    assert client.get(f"/classes/{school.school_class.pk}/schedules/").status_code == 200


@pytest.mark.parametrize("case", SCHEDULE_CASES)
def test_a_bad_schedule_from_the_page_is_named_in_place(client, school, case):
    field, fields = SCHEDULE_CASES[case]
    client.force_login(school.teacher)
    before = _rows()
    form = {"kind": "nudge", "intent": "Ten minutes of revision", **fields}
    _refused(client.post(f"/students/{school.student.pk}/schedules/new/", form, **HTMX), field)
    assert _rows() == before
    assert ScheduledTask.objects.count() == 0


def test_offsets_beyond_64_bits_are_400s(client, school, token):
    task = proactive.schedule_create(
        by=school.teacher, student=school.student, kind="nudge", intent="Ten minutes", cron="0 9 * * *"
    )
    for path in ("/api/schedules", f"/api/schedules/{task.pk}/runs"):
        answer = _api(client, token, f"{path}?offset={BEYOND_INT64}", method="get")
        _refused(answer, "offset")
        assert answer.json()["error"] == "bad_request"


# The audit log's time window -------------------------------------------------------------------------


def test_a_time_window_past_the_calendar_is_a_form_error(client, school):
    client.force_login(factories.UserFactory(organisation=school.organisation, role=User.Role.COMPLIANCE))
    for path in ("/audit/", "/audit/export.csv", f"/audit/students/{school.student.pk}/"):
        for params in ({"until": "9999-12-31"}, {"since": "0001-01-01"}):
            _refused(client.get(path, params), next(iter(params)))


# Ids no row can have ---------------------------------------------------------------------------------


def test_ids_too_large_for_the_database_are_refused_by_name(client, school, token):
    client.force_login(school.teacher)
    class_id = school.school_class.pk
    _refused(client.get("/dashboard/", {"class": THIRTY_DIGITS}), "class")
    _refused(client.get("/dashboard/", {"class": "x"}), "class")
    _refused(
        client.get(f"/classes/{class_id}/workflow/activation-review/", {"student": THIRTY_DIGITS}), "student"
    )
    _refused(
        client.post(
            f"/classes/{class_id}/workflow/smart-grouping/membership/",
            {"student": THIRTY_DIGITS, "override_code": "OVR_GROUP_EXCLUDE"},
            **HTMX,
        ),
        "student",
    )
    answer = _api(
        client, token, "/api/workflow/activate", {"classId": class_id, "studentIds": [int(THIRTY_DIGITS)]}
    )
    _refused(answer, "studentIds")
    answer = _api(client, token, f"/api/plans/{THIRTY_DIGITS}", method="get")
    _refused(answer, "student_id")


def test_a_page_for_an_id_no_row_can_have_is_not_found(client, school):
    client.force_login(school.teacher)
    for path in (
        f"/students/{THIRTY_DIGITS}/",
        f"/classes/{THIRTY_DIGITS}/",
        f"/audit/events/{THIRTY_DIGITS}/",
    ):
        assert client.get(path).status_code == 404


# NUL characters (PostgreSQL cannot store them) ---------------------------------------------------------


def test_nul_characters_in_any_form_field_are_refused_before_anything_is_stored(client, school, admin):
    alert = factories.AlertFactory(student=school.student)
    student = school.student.pk
    cases = [
        (school.teacher, f"/alerts/{alert.pk}/resolve/", {"note": "done\x00"}, "note"),
        (
            school.teacher,
            f"/students/{student}/plan/drafts/",
            {"plan": "{}", "rationale": "why\x00"},
            "rationale",
        ),
        (
            school.teacher,
            f"/students/{student}/schedules/new/",
            {"kind": "nudge", "cron": "0 9 * * *", "intent": "Revise\x00"},
            "intent",
        ),
        (school.teacher, f"/students/{student}/chat/", {"message": "hello\x00"}, "message"),
        (admin, "/automation/kill_switch/", {"on": "1", "reason": "outage\x00"}, "reason"),
    ]
    for user, path, form, field in cases:
        client.force_login(user)
        before = _rows()
        _refused(client.post(path, form, **HTMX), field)
        assert _rows() == before, path
    client.force_login(school.teacher)
    _refused(client.get("/dashboard/", {"q": "Ma\x00"}), "q")


def test_nul_characters_anywhere_in_an_api_body_are_refused_by_path(client, school, token, planned):
    student = school.student.pk
    cases = [
        (f"/api/plans/{student}/drafts", {"text": "add 10 minutes\x00", "rationale": "more"}, "text"),
        (
            f"/api/plans/{student}/drafts",
            {"plan": {**planned, "objectives": [{"text": "Graph\x00"}]}, "rationale": "new"},
            "plan.objectives[0].text",
        ),
        (
            "/api/workflow/save-draft",
            {"classId": school.school_class.pk, "step": "TAW_01", "state": {"notes": ["a", "b\x00"]}},
            "state.notes[1]",
        ),
        (
            "/api/schedules",
            {"student_id": student, "kind": "nudge", "cron": "0 9 * * *", "intent": "Revise\x00"},
            "intent",
        ),
    ]
    for path, body, field in cases:
        before = _rows()
        answer = _api(client, token, path, body)
        _refused(answer, field)
        assert answer.json()["fields"] == {field: ["contains a NUL character, which cannot be stored"]}
        assert _rows() == before, path


# The API's errors are always its JSON ------------------------------------------------------------------


def test_an_unreadable_json_body_is_the_documented_error(client, school, token):
    answer = client.post(
        "/api/workflow/save-draft", "{not json", content_type="application/json", **auth(token)
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_request"
    assert list(answer.json()["fields"]) == ["body"]


@pytest.mark.parametrize("debug", [False, True], ids=["DEBUG=0", "DEBUG=1"])
def test_api_errors_are_json_whatever_produced_them(client, school, token, settings, debug):
    settings.DEBUG = debug
    unknown = _api(client, token, "/api/no-such-endpoint", method="get")
    wrong_method = client.delete("/api/workflow/steps", **auth(token))
    csrf = Client(enforce_csrf_checks=True)
    csrf.force_login(school.teacher)
    no_token = csrf.post("/api/workflow/save-draft", {}, content_type="application/json")
    for answer, status in ((unknown, 404), (wrong_method, 405), (no_token, 403)):
        assert answer.status_code == status
        assert answer["Content-Type"].startswith("application/json"), answer.content[:200]
        assert set(answer.json()) == {"error", "detail", "fields"}


# Authorise before interpreting -------------------------------------------------------------------------


def test_compliance_staff_cannot_propose_plans_even_as_a_dry_run(client, school, planned, fake_llm, settings):
    compliance = factories.UserFactory(organisation=school.organisation, role=User.Role.COMPLIANCE)
    token = api_token_create(user=compliance)
    path = f"/api/plans/{school.student.pk}/drafts"
    dry = _api(client, token, path, {"text": "add 10 minutes a week", "rationale": "more", "dry_run": True})
    text = _api(client, token, path, {"text": "add 10 minutes a week", "rationale": "more"})
    assert dry.status_code == text.status_code == 403
    assert fake_llm.requests == [], "the model was asked before the refusal"


# Headers -------------------------------------------------------------------------------------------


def test_signed_in_pages_are_private_and_every_page_has_the_policies(client, school, token):
    anonymous = client.get("/accounts/login/")
    assert "default-src 'self'" in anonymous["Content-Security-Policy"]
    assert "camera=()" in anonymous["Permissions-Policy"]
    client.force_login(school.teacher)
    page = client.get("/dashboard/")
    assert {"private", "no-store"} <= {part.strip() for part in page["Cache-Control"].split(",")}
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    client.logout()
    api = _api(client, token, "/api/workflow/steps", method="get")
    assert "no-store" in api["Cache-Control"]
