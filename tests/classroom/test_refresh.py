"""Refreshing from the page: queued in the background, progress polled, never waiting on the platform."""

from __future__ import annotations

import time

from django.urls import reverse
from django_q.models import OrmQ

from classroom.models import SyncRun, User
from classroom.tasks import sync_run
from tests import factories
from tests.conftest import login
from tests.platform_fixtures import demo_class


def test_refresh_button_queues_a_job_and_the_page_polls_it_to_the_end(
    client, school, platform, django_capture_on_commit_callbacks
):
    demo = demo_class(school, size=3)
    login(client, school.teacher)
    url = reverse("classroom:class_refresh", args=[demo.school_class.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    run = SyncRun.objects.get()
    assert (run.status, run.trigger, run.requested_by) == ("queued", "button", school.teacher)
    assert OrmQ.objects.count() == 1
    assert "Refresh queued" in html
    assert f'hx-get="/sync-runs/{run.pk}/"' in html
    assert 'hx-trigger="every 1s"' in html
    # A second click while it is queued joins the same run.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, HTTP_HX_REQUEST="true")
    assert SyncRun.objects.count() == 1
    assert OrmQ.objects.count() == 1

    assert sync_run(run.pk) == "succeeded"
    done = client.get(reverse("classroom:sync_run_status", args=[run.pk])).content.decode()
    assert "Synced 3 students from the platform" in done
    assert "hx-trigger" not in done
    assert "Synced 3 students" in client.get(f"/classes/{demo.school_class.pk}/").content.decode()


def test_a_failed_refresh_ends_with_the_reason_and_what_to_do(client, school, platform, settings):
    settings.PLATFORM_TOKEN = "revoked"
    demo = demo_class(school, size=1)
    login(client, school.teacher)
    client.post(reverse("classroom:class_refresh", args=[demo.school_class.pk]))
    run = SyncRun.objects.get()
    sync_run(run.pk)
    html = client.get(reverse("classroom:sync_run_status", args=[run.pk])).content.decode()
    assert "Sync failed" in html
    assert "renew PLATFORM_TOKEN" in html
    assert "Nothing already stored was changed." in html


def test_refresh_and_its_progress_are_scoped(client, school, platform):
    demo = demo_class(school, size=1)
    login(client, school.colleague)
    assert client.post(reverse("classroom:class_refresh", args=[demo.school_class.pk])).status_code == 404
    assert not SyncRun.objects.exists()
    login(client, school.teacher)
    client.post(reverse("classroom:class_refresh", args=[demo.school_class.pk]))
    run = SyncRun.objects.get()
    login(client, school.outsider)
    assert client.get(reverse("classroom:sync_run_status", args=[run.pk])).status_code == 404
    compliance = factories.UserFactory(organisation=school.organisation, role=User.Role.COMPLIANCE)
    login(client, compliance)
    assert client.get(reverse("classroom:sync_run_status", args=[run.pk])).status_code == 200
    assert client.post(reverse("classroom:class_refresh", args=[demo.school_class.pk])).status_code == 403


def test_anonymous_refresh_and_progress_go_to_login(client, school):
    assert client.post(f"/classes/{school.school_class.pk}/refresh/")["Location"].startswith(
        "/accounts/login/"
    )
    assert client.get("/sync-runs/1/")["Location"].startswith("/accounts/login/")


def test_a_stale_student_page_queues_a_refresh_and_answers_at_once(client, school, platform):
    platform.state.config.update({"latency_ms": 3000})
    student = demo_class(school, size=1).students[0]
    login(client, school.teacher)
    started = time.monotonic()
    html = client.get(reverse("classroom:student_detail", args=[student.pk])).content.decode()
    assert time.monotonic() - started < 1.0
    assert "a refresh was requested" in html
    run = SyncRun.objects.get()
    assert (run.scope, run.student, run.trigger) == ("student", student, "stale")
    client.get(reverse("classroom:student_detail", args=[student.pk]))
    assert SyncRun.objects.count() == 1


def test_a_fresh_student_page_does_not_refresh(client, school, platform):
    factories.StudentSyncStateFactory(student=school.student)
    login(client, school.teacher)
    html = client.get(reverse("classroom:student_detail", args=[school.student.pk])).content.decode()
    assert "a refresh was requested" not in html
    assert not SyncRun.objects.exists()
