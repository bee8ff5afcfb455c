"""Notifications of high-severity failures and long-pending approvals, by email and Slack, once each.

Sent through Django's SMTP backend to a real SMTP server and over HTTP to a webhook receiver, both
on loopback (tests/notify_fixtures.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from audit import tasks
from audit.models import ActivityEvent, Failure, NotificationDelivery, NotificationSettings
from audit.notify import PendingApproval, notify
from audit.services import failure_resolve, record_failure
from tests import factories
from tests.notify_fixtures import WEBHOOK_SECRET, free_port

SITE = "https://tutor.example.org"
REMEDIATION = "ask the platform administrator for a new API token and set PLATFORM_TOKEN"

# The approvals the registered test source reports (see the `approvals` fixture).
PENDING: list[PendingApproval] = []


def waiting_drafts(older_than: datetime) -> Iterable[PendingApproval]:
    """An approval source, as plans or workflow would register one in AUDIT_APPROVAL_SOURCES."""
    return [approval for approval in PENDING if approval.requested_at <= older_than]


def draft(number: int, organisation, summary: str, *, waiting: timedelta) -> PendingApproval:
    return PendingApproval(
        key=f"plans.draft:{number}",
        organisation_id=organisation.pk,
        summary=summary,
        requested_at=timezone.now() - waiting,
        url=f"/plans/drafts/{number}/",
    )


@pytest.fixture
def approvals(settings) -> Iterator[list[PendingApproval]]:
    settings.AUDIT_APPROVAL_SOURCES = [f"{__name__}.waiting_drafts"]
    yield PENDING
    PENDING.clear()


@pytest.fixture(autouse=True)
def _site(settings) -> None:
    settings.SITE_URL = SITE


def configure(organisation, *, email: str = "", webhook_url: str = "", **flags: bool) -> NotificationSettings:
    return NotificationSettings.objects.create(
        organisation_id=organisation.pk, email_recipients=email, slack_webhook_url=webhook_url, **flags
    )


def fail_sync(organisation, *, severity: str = "high", target_id: int = 7) -> Failure:
    record_failure(
        verb="sync.failed",
        actor_name="system:sync",
        organisation_id=organisation.pk,
        target_type="classroom.syncrun",
        target_id=target_id,
        severity=severity,
        why="the platform refused our token (401)",
        remediation=REMEDIATION,
    )
    return Failure.objects.get(organisation_id=organisation.pk, target_id=str(target_id), state="open")


def notification_events(verb: str) -> list[ActivityEvent]:
    return list(ActivityEvent.objects.filter(verb=verb).order_by("seq"))


def assert_webhook_url_never_written() -> None:
    written = [
        *(
            json.dumps([e.actor_name, e.why, e.target_type, e.target_id, e.details])
            for e in ActivityEvent.objects.all()
        ),
        *(f"{f.fingerprint} {f.summary} {f.remediation}" for f in Failure.objects.all()),
        *(d.last_error for d in NotificationDelivery.objects.all()),
    ]
    assert written
    secrets = [*WEBHOOK_SECRET.split("/"), "/services/"]
    assert not [text for text in written if any(secret in text for secret in secrets)]


def test_a_high_severity_failure_is_emailed_and_posted_once(db, smtp_server, webhook):
    org = factories.OrganisationFactory()
    configure(org, email="head@school.example, it@school.example", webhook_url=webhook.url)
    failure = fail_sync(org)

    report = notify()

    assert (report.sent, report.failed, report.skipped) == (2, 0, 0)
    [email] = smtp_server.messages
    assert email["Subject"] == "[Proactive Tutor] High-severity failure: the platform refused our token (401)"
    assert smtp_server.recipients == [["head@school.example", "it@school.example"]]
    body = email.get_content()
    assert "What failed: the platform refused our token (401)" in body
    assert f"What to do: {REMEDIATION}" in body
    assert "If that does not work: If the remediation does not work" in body
    assert "Occurred: 1 time, first seen" in body
    assert f"{SITE}/audit/events/{failure.last_event_id}/" in body
    assert f"{SITE}/audit/failures/" in body
    [text] = webhook.texts
    assert "High-severity failure:* the platform refused our token (401)" in text
    assert f"<{SITE}/audit/events/{failure.last_event_id}/|The failed event>" in text

    assert tasks.notify() == "notifications: 0 sent, 0 failed, 2 skipped"
    assert len(smtp_server.messages) == 1
    assert len(webhook.bodies) == 1
    sent = notification_events("notification.sent")
    assert [(e.details["channel"], e.details["attempt"], e.status) for e in sent] == [
        ("email", 1, "succeeded"),
        ("slack", 1, "succeeded"),
    ]
    assert {(e.organisation_id, e.actor_name, e.details["item_key"]) for e in sent} == {
        (org.pk, "system:notify", f"failure:{failure.pk}")
    }
    assert {e.target_type for e in sent} == {"audit.notificationdelivery"}
    assert_webhook_url_never_written()


def test_normal_severity_and_resolved_failures_are_not_sent(db, smtp_server, webhook):
    org = factories.OrganisationFactory()
    configure(org, email="head@school.example", webhook_url=webhook.url)
    fail_sync(org, severity="normal", target_id=1)
    failure_resolve(fail_sync(org, target_id=2), by=factories.UserFactory(organisation=org), note="new token")

    assert notify().sent == 0
    assert smtp_server.messages == []
    assert webhook.bodies == []
    assert not NotificationDelivery.objects.exists()


def test_an_organisation_without_settings_or_with_failures_turned_off_gets_nothing(db, smtp_server, webhook):
    silent = factories.OrganisationFactory()
    fail_sync(silent)
    turned_off = factories.OrganisationFactory()
    configure(turned_off, email="head@school.example", webhook_url=webhook.url, notify_high_failures=False)
    fail_sync(turned_off)
    configure(factories.OrganisationFactory(), email="other@school.example", webhook_url=webhook.url)

    assert notify().sent == 0
    assert smtp_server.messages == []
    assert webhook.bodies == []


def test_a_webhook_that_fails_once_is_sent_on_the_next_run_exactly_once(db, webhook):
    org = factories.OrganisationFactory()
    configure(org, webhook_url=webhook.url)
    failure = fail_sync(org)
    webhook.fail(1, status=500)

    report = notify()

    assert (report.sent, report.failed) == (0, 1)
    delivery = NotificationDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.last_error.startswith("Slack answered 500")
    [failed] = notification_events("notification.failed")
    assert failed.status == "failed"
    assert failed.organisation_id == org.pk
    assert failed.details["item_key"] == f"failure:{failure.pk}"
    assert (failed.details["channel"], failed.details["attempt"]) == ("slack", 1)
    assert failed.details["error"].startswith("Slack answered 500")
    assert "retried on the next run" in failed.details["remediation"]
    notice = Failure.objects.get(verb="notification.failed")
    assert (notice.severity, notice.state, notice.organisation_id) == ("normal", "open", org.pk)

    assert notify().sent == 1
    assert notify().sent == 0
    assert len(webhook.refused) == 1
    assert len(webhook.bodies) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 2, "")
    [sent] = notification_events("notification.sent")
    assert (sent.status, sent.details["attempt"]) == ("succeeded", 2)
    # The delivery went through, so its failure closed itself: nobody has to resolve it by hand.
    notice.refresh_from_db()
    assert (notice.state, notice.resolved_by) == ("resolved", None)
    assert notice.resolution_note == "cleared: attempt 2 went through"
    cleared = ActivityEvent.objects.get(verb="failure.resolved")
    assert (cleared.actor_name, cleared.target_id) == ("system:notify", str(notice.pk))
    assert_webhook_url_never_written()


def test_three_refusals_leave_it_failed_and_it_stops_trying(db, webhook):
    org = factories.OrganisationFactory()
    configure(org, webhook_url=webhook.url)
    fail_sync(org)
    webhook.fail(10, status=404)

    reports = [notify() for _ in range(4)]

    assert [r.failed for r in reports] == [1, 1, 1, 0]
    assert reports[-1].skipped == 1
    assert len(webhook.refused) == 3
    delivery = NotificationDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    failed = notification_events("notification.failed")
    assert [(e.details["attempt"], e.details["final"], e.status) for e in failed] == [
        (1, False, "failed"),
        (2, False, "failed"),
        (3, True, "failed"),
    ]
    assert failed[-1].details["error"] == "Slack answered 404: no_service"
    assert failed[-1].details["remediation"] == (
        "the webhook was revoked; paste a new incoming-webhook URL in Admin → Notification settings"
    )
    assert "attempt 3 of 3, no more attempts" in failed[-1].why
    assert Failure.objects.get(verb="notification.failed").occurrences == 3
    assert not notification_events("notification.sent")
    assert_webhook_url_never_written()


def test_an_error_page_echoing_the_webhook_url_is_not_written_down(db, webhook):
    org = factories.OrganisationFactory()
    configure(org, webhook_url=webhook.url)
    fail_sync(org)
    webhook.fail(1, status=502)

    notify()

    [failed] = notification_events("notification.failed")
    assert failed.details["error"] == "Slack answered 502: bad gateway for [webhook]"
    assert_webhook_url_never_written()


def test_approvals_pending_longer_than_24_hours_are_sent_once(db, smtp_server, approvals):
    org = factories.OrganisationFactory()
    configure(org, email="head@school.example")
    approvals += [
        draft(7, org, "Plan draft 'Algebra catch-up' for 7B", waiting=timedelta(hours=31, minutes=5)),
        draft(8, org, "Plan draft 'Fractions' for 7C", waiting=timedelta(hours=2)),
        draft(9, factories.OrganisationFactory(), "Elsewhere", waiting=timedelta(days=3)),
    ]

    now = timezone.now()
    assert notify(now=now).sent == 1
    [email] = smtp_server.messages
    assert email["Subject"] == "[Proactive Tutor] Approval waiting 31 h: Plan draft 'Algebra catch-up' for 7B"
    assert f"Review it: {SITE}/plans/drafts/7/" in email.get_content()

    assert notify(now=now + timedelta(hours=23)).sent == 1
    assert smtp_server.subjects[1:] == [
        "[Proactive Tutor] Approval waiting 25 h: Plan draft 'Fractions' for 7C"
    ]
    assert notify(now=now + timedelta(hours=24)).sent == 0
    assert [e.details["item_key"] for e in notification_events("notification.sent")] == [
        "approval:plans.draft:7",
        "approval:plans.draft:8",
    ]


def test_approvals_turned_off_are_not_sent(db, smtp_server, approvals):
    org = factories.OrganisationFactory()
    configure(org, email="head@school.example", notify_pending_approvals=False)
    approvals.append(
        PendingApproval("plans.draft:7", org.pk, "Draft", timezone.now() - timedelta(days=2), "/")
    )

    assert notify().sent == 0
    assert smtp_server.messages == []


def test_an_unreachable_smtp_server_is_recorded_with_what_to_check(db, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens there
    org = factories.OrganisationFactory()
    configure(org, email="head@school.example")
    fail_sync(org)

    assert notify().failed == 1

    [failed] = notification_events("notification.failed")
    assert failed.details["channel"] == "email"
    assert failed.details["error"].startswith("the SMTP server refused the connection")
    assert "check EMAIL_HOST/EMAIL_PORT" in failed.details["remediation"]
    assert NotificationDelivery.objects.get().status == "failed"


def test_a_claim_left_by_a_dead_worker_is_taken_over_after_15_minutes(db, webhook):
    org = factories.OrganisationFactory()
    configure(org, webhook_url=webhook.url)
    failure = fail_sync(org)
    # Another worker claimed this delivery and has not finished yet.
    delivery = NotificationDelivery.objects.create(
        organisation_id=org.pk,
        item_key=f"failure:{failure.pk}",
        channel="slack",
        status="sending",
        attempts=1,
        claimed_at=timezone.now() - timedelta(minutes=5),
    )

    assert notify().skipped == 1
    assert webhook.bodies == []

    assert notify(now=timezone.now() + timedelta(minutes=11)).sent == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert len(webhook.bodies) == 1


def test_a_last_attempt_lost_with_its_worker_is_given_up(db, webhook):
    org = factories.OrganisationFactory()
    configure(org, webhook_url=webhook.url)
    failure = fail_sync(org)
    NotificationDelivery.objects.create(
        organisation_id=org.pk,
        item_key=f"failure:{failure.pk}",
        channel="slack",
        status="sending",
        attempts=3,
        claimed_at=timezone.now() - timedelta(minutes=20),
    )

    report = notify()

    assert (report.sent, report.skipped) == (0, 1)
    assert webhook.bodies == []
    assert NotificationDelivery.objects.get().status == "failed"
    [failed] = notification_events("notification.failed")
    assert (failed.details["attempt"], failed.details["final"]) == (3, True)
    assert "worker stopped" in failed.details["error"]


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_send_each_item_once(smtp_server, webhook):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises every write)")
    org = factories.OrganisationFactory()
    configure(org, email="head@school.example", webhook_url=webhook.url)
    fail_sync(org, target_id=1)
    fail_sync(org, target_id=2)
    webhook.delay = 0.2
    start = threading.Barrier(2)
    reports, errors = [], []

    def worker() -> None:
        try:
            start.wait(timeout=10)
            reports.append(notify())
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors
    assert sorted((r.sent + r.skipped, r.failed) for r in reports) == [(4, 0), (4, 0)]
    assert sum(r.sent for r in reports) == 4
    assert len(smtp_server.messages) == 2
    assert len(webhook.bodies) == 2
    assert NotificationDelivery.objects.filter(status="sent", attempts=1).count() == 4
    assert ActivityEvent.objects.filter(verb="notification.sent").count() == 4


def test_the_admin_lists_settings_without_the_webhook_url_and_deliveries_read_only(client, db, webhook):
    org = factories.OrganisationFactory()
    configure(org, email="head@school.example", webhook_url=webhook.url)
    fail_sync(org)
    notify()
    client.force_login(factories.UserFactory(organisation=org, is_staff=True, is_superuser=True))

    listing = client.get(reverse("admin:audit_notificationsettings_changelist"))
    assert listing.status_code == 200
    assert "head@school.example" in listing.content.decode()
    assert WEBHOOK_SECRET.split("/")[-1] not in listing.content.decode()
    for model in ("notificationdelivery", "failure"):
        assert client.get(reverse(f"admin:audit_{model}_changelist")).status_code == 200
        assert client.get(reverse(f"admin:audit_{model}_add")).status_code == 403
    delivery = NotificationDelivery.objects.get(channel="slack")
    assert (
        client.post(reverse("admin:audit_notificationdelivery_delete", args=[delivery.pk])).status_code == 403
    )
    assert (
        client.get(reverse("admin:audit_notificationdelivery_change", args=[delivery.pk])).status_code == 200
    )
    assert client.get(reverse("admin:audit_notificationsettings_change", args=[org.pk])).status_code == 200


def unavailable_source(older_than: datetime) -> Iterable[PendingApproval]:
    raise RuntimeError("the drafts table is locked")


def test_a_broken_approval_source_is_recorded_and_the_others_still_sent(db, settings, smtp_server, approvals):
    settings.AUDIT_APPROVAL_SOURCES = [f"{__name__}.unavailable_source", f"{__name__}.waiting_drafts"]
    org = factories.OrganisationFactory()
    configure(org, email="head@school.example")
    approvals.append(draft(7, org, "Plan draft 'Algebra catch-up' for 7B", waiting=timedelta(days=2)))

    assert notify().sent == 1
    assert len(smtp_server.messages) == 1
    [failed] = notification_events("notification.source_failed")
    assert failed.status == "failed"
    assert failed.details["error"] == "RuntimeError: the drafts table is locked"
    assert f"{__name__}.unavailable_source in AUDIT_APPROVAL_SOURCES" in failed.details["remediation"]
