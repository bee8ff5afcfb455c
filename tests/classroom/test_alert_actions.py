"""Teachers acknowledge and resolve alerts in place; each change is recorded."""

from __future__ import annotations

from django.urls import reverse

from audit.models import ActivityEvent
from classroom.models import Alert
from tests import factories
from tests.conftest import login


def test_acknowledge_with_htmx_swaps_the_alert_in_place(client, school):
    alert = factories.AlertFactory(student=school.student)
    login(client, school.teacher)
    response = client.post(reverse("classroom:alert_acknowledge", args=[alert.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="alert-{alert.pk}"' in html
    assert "acknowledged" in html
    assert "Acknowledge</button>" not in html
    alert.refresh_from_db()
    assert alert.state == Alert.State.ACKNOWLEDGED
    assert alert.acknowledged_by == school.teacher
    event = ActivityEvent.objects.get(verb="alert.acknowledged")
    assert event.actor == school.teacher
    assert event.student_id == school.student.pk
    assert event.source == "page"
    assert event.correlation_id == response["X-Correlation-ID"]


def test_acknowledge_without_javascript_redirects_back(client, school):
    alert = factories.AlertFactory(student=school.student)
    login(client, school.teacher)
    response = client.post(
        reverse("classroom:alert_acknowledge", args=[alert.pk]), {"next": "/dashboard/?status=at_risk"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/?status=at_risk"


def test_redirect_back_never_leaves_the_site(client, school):
    alert = factories.AlertFactory(student=school.student)
    login(client, school.teacher)
    response = client.post(
        reverse("classroom:alert_acknowledge", args=[alert.pk]), {"next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("classroom:student_detail", args=[school.student.pk])


def test_resolve_records_the_note_and_who(client, school):
    alert = factories.AlertFactory(student=school.student)
    login(client, school.teacher)
    client.post(
        reverse("classroom:alert_resolve", args=[alert.pk]), {"note": "Talked with family; work handed in."}
    )
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED
    assert alert.resolved_by == school.teacher
    assert alert.resolution_note == "Talked with family; work handed in."
    event = ActivityEvent.objects.get(verb="alert.resolved")
    assert event.why == "Talked with family; work handed in."


def test_acknowledging_twice_is_a_clear_conflict_not_a_second_event(client, school):
    alert = factories.AlertFactory(student=school.student)
    login(client, school.teacher)
    url = reverse("classroom:alert_acknowledge", args=[alert.pk])
    client.post(url, HTTP_HX_REQUEST="true")
    response = client.post(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 409
    assert "only an open alert can be acknowledged" in response.content.decode()
    assert ActivityEvent.objects.filter(verb="alert.acknowledged").count() == 1


def test_resolving_a_resolved_alert_changes_nothing(client, school):
    alert = factories.AlertFactory(student=school.student, state=Alert.State.RESOLVED)
    login(client, school.teacher)
    response = client.post(reverse("classroom:alert_resolve", args=[alert.pk]), follow=True)
    assert "Nothing changed: this alert is already resolved." in response.content.decode()
    assert not ActivityEvent.objects.filter(verb="alert.resolved").exists()


def test_alert_actions_only_accept_post(client, school):
    alert = factories.AlertFactory(student=school.student)
    login(client, school.teacher)
    assert client.get(reverse("classroom:alert_acknowledge", args=[alert.pk])).status_code == 405
