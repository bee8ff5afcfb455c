"""The scoping rule, URL by URL: a teacher reaches their own classes and students only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from classroom.models import Alert, Enrollment, User
from tests import factories
from tests.conftest import login


def _pages(school) -> dict[str, tuple[str, str]]:
    """(own url, someone else's url) for every page with an id in it."""
    return {
        "class": (
            reverse("classroom:class_detail", args=[school.school_class.pk]),
            reverse("classroom:class_detail", args=[school.colleague_class.pk]),
        ),
        "student": (
            reverse("classroom:student_detail", args=[school.student.pk]),
            reverse("classroom:student_detail", args=[school.colleague_student.pk]),
        ),
    }


@pytest.mark.parametrize(
    "url",
    ["/", "/dashboard/", "/classes/1/", "/students/1/"],
)
def test_anonymous_is_sent_to_login(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("action", ["alert_acknowledge", "alert_resolve"])
def test_anonymous_alert_actions_are_sent_to_login_and_change_nothing(client, school, action):
    alert = factories.AlertFactory(student=school.student)
    response = client.post(reverse(f"classroom:{action}", args=[alert.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    alert.refresh_from_db()
    assert alert.state == Alert.State.OPEN


def test_teacher_reaches_own_class_and_student(client, school):
    login(client, school.teacher)
    for own, _ in _pages(school).values():
        assert client.get(own).status_code == 200


@pytest.mark.parametrize("who", ["colleague", "outsider"])
def test_other_teachers_get_404_for_class_and_student(client, school, who):
    login(client, getattr(school, who))
    for own, _ in _pages(school).values():
        assert client.get(own).status_code == 404


def test_teacher_gets_404_for_colleagues_and_other_schools_pages(client, school):
    login(client, school.teacher)
    assert client.get(reverse("classroom:class_detail", args=[school.outsider_class.pk])).status_code == 404
    assert (
        client.get(reverse("classroom:student_detail", args=[school.outsider_student.pk])).status_code == 404
    )
    for _, theirs in _pages(school).values():
        assert client.get(theirs).status_code == 404


@pytest.mark.parametrize("action", ["alert_acknowledge", "alert_resolve"])
def test_alert_of_another_teachers_student_is_404_and_unchanged(client, school, action):
    alert = factories.AlertFactory(student=school.colleague_student)
    login(client, school.teacher)
    response = client.post(reverse(f"classroom:{action}", args=[alert.pk]))
    assert response.status_code == 404
    alert.refresh_from_db()
    assert alert.state == Alert.State.OPEN


def test_dashboard_lists_only_the_teachers_students_and_alerts(client, school):
    factories.AlertFactory(student=school.student, summary="mine overdue")
    factories.AlertFactory(student=school.colleague_student, summary="colleague overdue")
    factories.AlertFactory(student=school.outsider_student, summary="outsider overdue")
    login(client, school.teacher)
    page = client.get("/dashboard/").content.decode()
    assert school.student.full_name in page
    assert "mine overdue" in page
    assert school.colleague_student.full_name not in page
    assert "colleague overdue" not in page
    assert "outsider overdue" not in page


def test_class_filter_cannot_reach_a_class_outside_scope(client, school):
    login(client, school.teacher)
    page = client.get(f"/dashboard/?class={school.colleague_class.pk}").content.decode()
    assert school.colleague_student.full_name not in page
    assert "No students match these filters." in page


def test_withdrawn_student_is_no_longer_reachable(client, school):
    Enrollment.objects.filter(student=school.student).update(status=Enrollment.Status.WITHDRAWN)
    login(client, school.teacher)
    assert client.get(reverse("classroom:student_detail", args=[school.student.pk])).status_code == 404


def test_archived_class_is_no_longer_reachable(client, school):
    school.school_class.is_active = False
    school.school_class.save(update_fields=["is_active"])
    login(client, school.teacher)
    assert client.get(reverse("classroom:class_detail", args=[school.school_class.pk])).status_code == 404
    assert client.get(reverse("classroom:student_detail", args=[school.student.pk])).status_code == 404


def test_compliance_sees_the_whole_organisation_but_not_other_schools(client, school):
    compliance = factories.UserFactory(organisation=school.organisation, role=User.Role.COMPLIANCE)
    login(client, compliance)
    for own, theirs in _pages(school).values():
        assert client.get(own).status_code == 200
        assert client.get(theirs).status_code == 200
    assert (
        client.get(reverse("classroom:student_detail", args=[school.outsider_student.pk])).status_code == 404
    )


def test_compliance_cannot_change_alerts(client, school):
    compliance = factories.UserFactory(organisation=school.organisation, role=User.Role.COMPLIANCE)
    alert = factories.AlertFactory(student=school.student)
    login(client, compliance)
    response = client.post(reverse("classroom:alert_acknowledge", args=[alert.pk]))
    assert response.status_code == 403
    alert.refresh_from_db()
    assert alert.state == Alert.State.OPEN


def test_org_admin_can_act_on_any_alert_in_the_organisation(client, school):
    admin = factories.UserFactory(organisation=school.organisation, role=User.Role.ORG_ADMIN)
    alert = factories.AlertFactory(student=school.colleague_student)
    login(client, admin)
    response = client.post(reverse("classroom:alert_acknowledge", args=[alert.pk]))
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.state == Alert.State.ACKNOWLEDGED


def test_learner_is_refused_the_console(client, school):
    learner = factories.UserFactory(organisation=school.organisation, role=User.Role.LEARNER)
    login(client, learner)
    assert client.get("/dashboard/").status_code == 403
    assert client.get(reverse("classroom:student_detail", args=[school.student.pk])).status_code == 403
