"""The one write path into the activity log, and what the admin may do with it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit import context
from audit.models import ActivityEvent
from audit.services import record
from classroom.models import Alert, User
from tests import factories
from tests.conftest import login


def test_record_takes_organisation_and_student_from_the_target(school):
    alert = factories.AlertFactory(student=school.student)
    with context.bind(source="worker") as ctx:
        event = record(verb="alert.opened", actor_name="system:alerts", target=alert, why="2 overdue")
    assert event.target_type == "classroom.alert"
    assert event.target_id == str(alert.pk)
    assert event.organisation_id == school.organisation.pk
    assert event.student_id == school.student.pk
    assert event.source == "worker"
    assert event.correlation_id == ctx.correlation_id
    assert event.status == "succeeded"


def test_record_needs_someone_responsible(db):
    with pytest.raises(ValueError, match="an event needs an actor"):
        record(verb="something.happened")
    assert not ActivityEvent.objects.exists()


def test_record_rejects_an_unknown_status(db):
    with pytest.raises(ValueError, match="unknown status 'done'"):
        record(verb="x.y", actor_name="system:test", status="done")


def test_events_of_one_request_share_its_correlation_id(client, school, settings):
    settings.AUDIT_TRUST_CORRELATION_HEADER = True
    alert = factories.AlertFactory(student=school.student)
    login(client, school.teacher)
    response = client.post(
        reverse("classroom:alert_resolve", args=[alert.pk]), HTTP_X_CORRELATION_ID="req-1234567890"
    )
    assert response["X-Correlation-ID"] == "req-1234567890"
    assert ActivityEvent.objects.get(verb="alert.resolved").correlation_id == "req-1234567890"


def test_a_client_cannot_file_its_events_under_another_jobs_id(client, school):
    alert = factories.AlertFactory(student=school.student)
    login(client, school.teacher)
    response = client.post(
        reverse("classroom:alert_resolve", args=[alert.pk]), HTTP_X_CORRELATION_ID="job-of-someone-else"
    )
    chosen = ActivityEvent.objects.get(verb="alert.resolved").correlation_id
    assert chosen != "job-of-someone-else"
    assert response["X-Correlation-ID"] == chosen


def test_admin_edits_are_recorded(client, school):
    admin = factories.UserFactory(
        organisation=school.organisation, role=User.Role.ORG_ADMIN, is_staff=True, is_superuser=True
    )
    login(client, admin)
    url = reverse("admin:classroom_schoolclass_change", args=[school.school_class.pk])
    response = client.post(
        url,
        {
            "organisation": school.organisation.pk,
            "name": "Renamed class",
            "subject": "Maths",
            "platform_id": school.school_class.platform_id,
            "is_active": "on",
            "teacher_assignments-TOTAL_FORMS": "0",
            "teacher_assignments-INITIAL_FORMS": "0",
            "enrollments-TOTAL_FORMS": "0",
            "enrollments-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    event = ActivityEvent.objects.get(verb="schoolclass.changed")
    assert event.actor == admin
    assert event.source == "admin"
    assert "name" in event.details["changed_fields"]


def test_admin_cannot_change_or_delete_events(client, school):
    admin = factories.UserFactory(is_staff=True, is_superuser=True)
    event = factories.ActivityEventFactory()
    login(client, admin)
    assert client.get(reverse("admin:audit_activityevent_changelist")).status_code == 200
    assert (
        client.post(reverse("admin:audit_activityevent_delete", args=[event.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert client.get(reverse("admin:audit_activityevent_add")).status_code == 403
    assert ActivityEvent.objects.filter(pk=event.pk).exists()


def test_admin_alert_action_goes_through_the_service(client, school):
    admin = factories.UserFactory(organisation=school.organisation, is_staff=True, is_superuser=True)
    alert = factories.AlertFactory(student=school.student)
    login(client, admin)
    client.post(
        reverse("admin:classroom_alert_changelist"), {"action": "acknowledge", "_selected_action": [alert.pk]}
    )
    alert.refresh_from_db()
    assert alert.state == Alert.State.ACKNOWLEDGED
    assert ActivityEvent.objects.get(verb="alert.acknowledged").actor == admin


@pytest.mark.parametrize(
    "model",
    [
        "organisation",
        "user",
        "schoolclass",
        "student",
        "enrollment",
        "teacherassignment",
        "dailyperformance",
        "studyplanprogress",
        "assignment",
        "dispatchlog",
        "studentsyncstate",
        "alert",
        "syncrun",
    ],
)
def test_every_classroom_model_has_a_working_admin_list(client, school, model):
    factories.AlertFactory(student=school.student)
    factories.DailyPerformanceFactory(student=school.student)
    factories.DispatchLogFactory(student=school.student)
    failed = factories.SyncRunStudentFactory(run__school_class=school.school_class, status="failed")
    admin = factories.UserFactory(is_staff=True, is_superuser=True)
    login(client, admin)
    response = client.get(reverse(f"admin:classroom_{model}_changelist"), {"q": "a"})
    assert response.status_code == 200
    if model == "syncrun":
        detail = client.get(reverse("admin:classroom_syncrun_change", args=[failed.run.pk]))
        assert failed.student.last_name in detail.content.decode()


def test_sign_in_sign_out_and_failed_sign_in_are_recorded(client, school):
    from tests.factories import PASSWORD

    # Through the login form: the sign-in throttle needs the request that client.login() lacks.
    for password, status in [("hunter2-typo", 200), (PASSWORD, 302)]:
        response = client.post(
            "/accounts/login/", {"username": school.teacher.username, "password": password}
        )
        assert response.status_code == status
    client.post("/accounts/logout/")
    verbs = list(
        ActivityEvent.objects.filter(verb__startswith="user.log")
        .order_by("id")
        .values_list("verb", "status", "actor_name")
    )
    assert verbs == [
        ("user.login_failed", "failed", school.teacher.username),
        ("user.logged_in", "succeeded", school.teacher.username),
        ("user.logged_out", "succeeded", school.teacher.username),
    ]
    assert "hunter2-typo" not in str(list(ActivityEvent.objects.values_list("details", "why")))
