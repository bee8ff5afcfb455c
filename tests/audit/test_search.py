"""The audit pages and the CSV export: who sees what, filters, pages, and a safe, streamed export."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from django.http import StreamingHttpResponse

from audit import context
from audit.models import ActivityEvent
from audit.services import record, record_failure
from classroom.models import Enrollment, Student, User
from tests import factories
from tests.conftest import login

# The export's columns as README.md documents them ("CSV columns (stable)"): changing them breaks
# compliance staff's spreadsheets, so this list is written out here, not imported.
DOCUMENTED_COLUMNS = [
    "id",
    "occurred_at",
    "organisation_id",
    "seq",
    "actor_id",
    "actor_name",
    "verb",
    "target_type",
    "target_id",
    "student_id",
    "class_id",
    "status",
    "source",
    "correlation_id",
    "why",
    "details",
    "redacted_at",
    "hash",
]


@pytest.fixture
def logged(school):
    """Events about each of the three teachers' students, and a compliance officer."""

    def event(student, verb, status="succeeded", why="", actor=None, **extra):
        return record(
            verb=verb,
            actor=actor,
            actor_name="" if actor else "system:sync",
            organisation_id=student.organisation_id,
            student_id=student.pk,
            status=status,
            why=why,
            **extra,
        )

    with context.bind(source="worker", correlation_id="job-00000001"):
        mine = event(school.student, "sync.student_failed", "failed", "platform returned 503")
        mine_ok = event(school.student, "sync.finished", why="synced 40 rows")
    colleague = event(
        school.colleague_student, "alert.acknowledged", actor=school.colleague, why="called home"
    )
    outsider = event(school.outsider_student, "sync.finished", why="other school")
    compliance = factories.UserFactory(organisation=school.organisation, role=User.Role.COMPLIANCE)
    return {
        "mine": mine,
        "mine_ok": mine_ok,
        "colleague": colleague,
        "outsider": outsider,
        "compliance": compliance,
    }


def _ids(response):
    return [int(row["id"]) for row in csv.DictReader(io.StringIO(_body(response)))]


def _body(response):
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode()


def test_anonymous_users_are_sent_to_login(client, db):
    for url in ("/audit/", "/audit/export.csv", "/audit/failures/"):
        assert client.get(url)["Location"].startswith("/accounts/login/")


def test_a_teacher_sees_only_their_own_classes(client, school, logged):
    login(client, school.teacher)
    page = client.get("/audit/").content.decode()
    assert "platform returned 503" in page
    assert "called home" not in page and "other school" not in page
    assert client.get(f"/audit/events/{logged['colleague'].pk}/").status_code == 404
    assert client.get(f"/audit/students/{school.colleague_student.pk}/").status_code == 404
    exported = _ids(client.get("/audit/export.csv"))
    assert logged["mine"].pk in exported and logged["colleague"].pk not in exported


def test_compliance_sees_and_exports_the_whole_organisation_and_nothing_else(client, school, logged):
    login(client, logged["compliance"])
    exported = _ids(client.get("/audit/export.csv"))
    assert {logged["mine"].pk, logged["colleague"].pk} <= set(exported)
    assert logged["outsider"].pk not in exported
    assert client.get(f"/audit/events/{logged['outsider'].pk}/").status_code == 404


def test_learners_have_no_audit_pages(client, school):
    learner = factories.UserFactory(organisation=school.organisation, role=User.Role.LEARNER)
    login(client, learner)
    assert client.get("/audit/").status_code == 404
    assert client.get("/audit/export.csv").status_code == 404


def test_filters_combine(client, school, logged):
    login(client, logged["compliance"])
    response = client.get(
        "/audit/export.csv",
        {"student": school.student.last_name, "action": "sync", "status": "failed", "q": "503"},
    )
    assert _ids(response) == [logged["mine"].pk]
    assert _ids(client.get("/audit/export.csv", {"action": "sync", "status": "succeeded"})) == [
        logged["mine_ok"].pk
    ]
    assert _ids(client.get("/audit/export.csv", {"actor": school.colleague.username})) == [
        logged["colleague"].pk
    ]
    assert _ids(client.get("/audit/export.csv", {"q": "no such words"})) == []


def test_a_name_shared_by_hundreds_of_students_finds_every_one(client, school, logged):
    org = school.organisation
    namesakes = Student.objects.bulk_create(
        Student(organisation=org, first_name=f"Ana {n:03d}", last_name="Moreno", platform_id=f"mor-{n}")
        for n in range(600)
    )
    # The one whose name sorts last, beyond any cap on how many matching students are looked at.
    last = factories.StudentFactory(organisation=org, first_name="Zoe", last_name="Moreno")
    Enrollment.objects.bulk_create(
        Enrollment(school_class=school.school_class, student=student, enrolled_on=date(2026, 9, 1))
        for student in [*namesakes, last]
    )
    event = record(verb="note.added", actor_name="system:test", organisation_id=org.pk, student_id=last.pk)
    login(client, logged["compliance"])
    assert _ids(client.get("/audit/export.csv", {"student": "moreno", "action": "note"})) == [event.pk]
    assert _ids(client.get("/audit/export.csv", {"student": "zoe moreno", "action": "note"})) == [event.pk]
    assert _ids(client.get("/audit/export.csv", {"student": "ana moreno", "action": "note"})) == []


def test_a_bad_filter_is_a_clear_error(client, school, logged):
    login(client, logged["compliance"])
    response = client.get("/audit/", {"since": "2026-02-30"})
    assert response.status_code == 400
    assert "since: Enter a valid date." in response.content.decode()
    response = client.get("/audit/export.csv", {"since": "2026-05-02", "until": "2026-05-01"})
    assert response.status_code == 400
    assert "until: The end of the time window is before its start." in response.content.decode()


def test_export_is_streamed_neutralises_formulas_and_is_itself_recorded(client, school):
    compliance = factories.UserFactory(organisation=school.organisation, role=User.Role.COMPLIANCE)
    for why in ('=HYPERLINK("http://evil")', "+1+2", "-3", "@SUM(A1)", "plain words"):
        record(verb="note.added", actor_name="system:test", organisation_id=school.organisation.pk, why=why)
    login(client, compliance)
    response = client.get("/audit/export.csv", {"action": "note"})
    assert response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(_body(response))))
    assert sorted(row["why"] for row in rows) == sorted(
        ['\'=HYPERLINK("http://evil")', "'+1+2", "'-3", "'@SUM(A1)", "plain words"]
    )
    assert list(rows[0]) == DOCUMENTED_COLUMNS
    export = ActivityEvent.objects.get(verb="audit.exported")
    assert export.actor_id == compliance.pk and export.details["filters"] == {"action": "note"}


def test_pages_follow_a_keyset_cursor_without_gaps_or_repeats(client, school, settings):
    settings.AUDIT_PAGE_SIZE = 4
    made = [
        record(
            verb="page.test", actor_name="system:test", organisation_id=school.organisation.pk, why=f"n{i}"
        )
        for i in range(10)
    ]
    login(client, school.teacher)
    compliance = factories.UserFactory(organisation=school.organisation, role=User.Role.COMPLIANCE)
    login(client, compliance)
    seen, query = [], {"action": "page"}
    while True:
        response = client.get("/audit/", query)
        seen += [e.pk for e in response.context["page"].events]
        cursor = response.context["page"].next_cursor
        if not cursor:
            break
        query = {"action": "page", "after": cursor}
    assert seen == [e.pk for e in reversed(made)]


def test_the_search_page_does_a_fixed_number_of_queries(client, school, django_assert_max_num_queries):
    compliance = factories.UserFactory(organisation=school.organisation, role=User.Role.COMPLIANCE)
    for i in range(60):
        record(
            verb="q.test",
            actor_name="system:test",
            organisation_id=school.organisation.pk,
            student_id=school.student.pk,
            class_id=school.school_class.pk,
            why=f"n{i}",
        )
    login(client, compliance)
    client.get("/audit/")
    with django_assert_max_num_queries(8):
        response = client.get("/audit/", {"q": "n", "student": school.student.last_name})
    assert len(response.context["page"].events) == 50


def test_an_htmx_search_swaps_only_the_results(client, school, logged):
    login(client, logged["compliance"])
    response = client.get("/audit/", {"status": "failed"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="results">') and "<html" not in body
    assert "platform returned 503" in body and "called home" not in body


def test_the_event_page_shows_the_whole_job(client, school, logged):
    login(client, school.teacher)
    page = client.get(f"/audit/events/{logged['mine'].pk}/").content.decode()
    assert "platform returned 503" in page and "synced 40 rows" in page  # same correlation id
    assert "job-00000001" in page


def test_failures_list_and_resolution(client, school):
    compliance = factories.UserFactory(organisation=school.organisation, role=User.Role.COMPLIANCE)
    for _ in range(2):
        record_failure(
            verb="dispatch.failed",
            remediation="renew PLATFORM_TOKEN",
            severity="high",
            why="platform returned 401",
            actor_name="system:dispatch",
            organisation_id=school.organisation.pk,
            class_id=school.school_class.pk,
            target_type="classroom.student",
            target_id=school.student.pk,
        )
    login(client, school.teacher)
    page = client.get("/audit/failures/").content.decode()
    assert "renew PLATFORM_TOKEN" in page and "2×" in page and "Resolve" not in page
    login(client, compliance)
    failure_id = client.get("/audit/failures/").context["failures"][0].pk
    client.post(f"/audit/failures/{failure_id}/resolve/", {"note": "token renewed"})
    assert "No open failures." in client.get("/audit/failures/").content.decode()
    resolved = ActivityEvent.objects.get(verb="failure.resolved")
    assert resolved.actor_id == compliance.pk and resolved.why == "token renewed"
