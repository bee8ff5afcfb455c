"""Notifications: high-severity failures and approvals waiting too long, by email and Slack, once each.

Every run (the "audit-notify" schedule, every 10 minutes) looks at each organisation with
`NotificationSettings`. Its items are its open high-severity failures and the approvals pending
longer than `AUDIT_APPROVAL_NOTIFY_HOURS`; each item goes to each configured channel at most once.
A `NotificationDelivery` row per (organisation, item, channel) is claimed before sending, so two
workers never send the same item twice: a `sent` row is never sent again, a `sending` row belongs
to the worker that claimed it for `CLAIM_TIMEOUT` (after that its worker is presumed dead and the
attempt counts as lost), and a `failed` one is retried on later runs until `MAX_ATTEMPTS`.

Checkpoints go the same way: the latest signed checkpoint of the organisation's chain head
(`audit.checkpoints`) is an item too, a JSON document attached to the email and quoted in the
Slack post, for the recipient to keep outside the database. The daily "audit-checkpoint" job sends
it as soon as it is taken (`send_checkpoints`); a failed attempt is retried here.

Every attempt is an activity event of the organisation: `notification.sent`, or
`notification.failed` with a hint naming what to fix. The Slack webhook URL is a secret: it
never appears in an event, a failure or a delivery's error.

Approvals belong to other apps (plans, workflow), which this app does not import. They register
a source in `settings.AUDIT_APPROVAL_SOURCES`: the dotted path of a callable
`source(older_than: datetime) -> Iterable[PendingApproval]` returning the approvals of every
organisation requested at or before `older_than`. None is registered yet.
"""

from __future__ import annotations

import json
import smtplib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from audit import checkpoints
from audit.models import Checkpoint, Failure, NotificationDelivery, NotificationSettings
from audit.services import failure_clear, record, record_failure

ACTOR = "system:notify"
CLAIM_TIMEOUT = timedelta(minutes=15)
MAX_ATTEMPTS = 3
SLACK_TIMEOUT = 10.0
SUBJECT_PREFIX = "[Proactive Tutor]"
SETTINGS_HINT = "Admin → Notification settings"


@dataclass(frozen=True)
class PendingApproval:
    """Something waiting for someone's approval, as an approval source reports it."""

    key: str  # unique per item across sources, e.g. "plans.draft:7"
    organisation_id: int
    summary: str
    requested_at: datetime
    url: str  # a path on the console, e.g. "/plans/drafts/7/"


@dataclass
class NotifyReport:
    """What one run did, counted per item and channel."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0  # already sent, being sent by another worker, or out of attempts


@dataclass(frozen=True)
class Message:
    subject: str
    email_body: str
    slack_text: str
    # Files attached to the email: (file name, content, MIME type).
    attachments: tuple[tuple[str, str, str], ...] = ()


class DeliveryError(Exception):
    """A channel refused a message: `error` says what happened, `remediation` what to do about it."""

    def __init__(self, error: str, remediation: str) -> None:
        super().__init__(error)
        self.error = error
        self.remediation = remediation


Sender = Callable[[NotificationSettings, Message], None]


@dataclass(frozen=True)
class _Item:
    key: str
    message: Message


def notify(*, now: datetime | None = None) -> NotifyReport:
    """Send every item not yet sent to every channel of every organisation that configured one."""
    now = now or timezone.now()
    report = NotifyReport()
    _give_up_abandoned(now=now)
    approvals = _pending_approvals(now=now)
    for config, channels in _configured():
        items = []
        if config.notify_high_failures:
            items += [_failure_item(f) for f in _open_high_failures(config.organisation_id)]
        if config.notify_pending_approvals:
            items += [_approval_item(a, now=now) for a in approvals.get(config.organisation_id, [])]
        items += _checkpoint_items(config.organisation_id)
        _send(config, channels, items, report=report, now=now)
    return report


def send_checkpoints(*, now: datetime | None = None) -> NotifyReport:
    """Send the latest checkpoint of every organisation that configured a channel, once per
    channel: the daily job runs it right after taking the checkpoints."""
    now = now or timezone.now()
    report = NotifyReport()
    for config, channels in _configured():
        _send(config, channels, _checkpoint_items(config.organisation_id), report=report, now=now)
    return report


def _configured() -> Iterable[tuple[NotificationSettings, list[tuple[str, Sender]]]]:
    for config in NotificationSettings.objects.order_by("organisation_id"):
        channels = _channels(config)
        if channels:
            yield config, channels


def _send(
    config: NotificationSettings,
    channels: list[tuple[str, Sender]],
    items: list[_Item],
    *,
    report: NotifyReport,
    now: datetime,
) -> None:
    for item in items:
        for channel, send in channels:
            delivery = _claim(
                organisation_id=config.organisation_id, item_key=item.key, channel=channel, now=now
            )
            if delivery is None:
                report.skipped += 1
            elif _deliver(delivery, config=config, send=send, message=item.message):
                report.sent += 1
            else:
                report.failed += 1


# Items -------------------------------------------------------------------------------------------


def _open_high_failures(organisation_id: int) -> Iterable[Failure]:
    return Failure.objects.filter(
        organisation_id=organisation_id, state=Failure.State.OPEN, severity=Failure.Severity.HIGH
    ).order_by("first_seen_at", "pk")


def _pending_approvals(*, now: datetime) -> dict[int, list[PendingApproval]]:
    """The approvals of every registered source requested long enough ago, by organisation.

    A source that raises is recorded as a failure and skipped: the other sources and the failures
    are still notified.
    """
    older_than = now - timedelta(hours=settings.AUDIT_APPROVAL_NOTIFY_HOURS)
    by_organisation: dict[int, list[PendingApproval]] = defaultdict(list)
    for path in settings.AUDIT_APPROVAL_SOURCES:
        try:
            approvals = list(import_string(path)(older_than))
        except Exception as error:
            record_failure(
                verb="notification.source_failed",
                actor_name=ACTOR,
                target_type="approval_source",
                target_id=path[:64],
                why=f"the approval source {path} failed: {type(error).__name__}: {error}"[:500],
                remediation=f"fix or remove {path} in AUDIT_APPROVAL_SOURCES; its approvals are not "
                "notified until it works again",
                details={"source": path, "error": f"{type(error).__name__}: {error}"[:500]},
            )
            continue
        for approval in approvals:
            if approval.requested_at <= older_than:
                by_organisation[approval.organisation_id].append(approval)
    return by_organisation


def _link(path: str) -> str:
    return f"{settings.SITE_URL.rstrip('/')}{path}"


def _when(moment: datetime) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M %Z}"


def _one_line(text: str, limit: int = 150) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _failure_item(failure: Failure) -> _Item:
    event_url = _link(f"/audit/events/{failure.last_event_id}/")
    failures_url = _link("/audit/failures/")
    what = failure.verb + (f" on {failure.target_type}:{failure.target_id}" if failure.target_type else "")
    seen = (
        f"{failure.occurrences} time{'s' if failure.occurrences != 1 else ''}, "
        f"first seen {_when(failure.first_seen_at)}, last seen {_when(failure.last_seen_at)}"
    )
    summary = _one_line(failure.summary) or what
    body = (
        "A high-severity action failed and is still open.\n\n"
        f"What failed: {failure.summary or what}\n"
        f"Action: {what}\n"
        f"Occurred: {seen}\n\n"
        f"What to do: {failure.remediation}\n"
        f"If that does not work: {failure.escalation}\n\n"
        f"The failed event: {event_url}\n"
        f"All open failures: {failures_url}\n"
    )
    text = (
        f":rotating_light: *High-severity failure:* {_slack_escape(summary)}\n"
        f"Occurred {seen}.\n"
        f"*What to do:* {_slack_escape(failure.remediation)}\n"
        f"*If that does not work:* {_slack_escape(failure.escalation)}\n"
        f"<{event_url}|The failed event> · <{failures_url}|All open failures>"
    )
    return _Item(
        key=f"failure:{failure.pk}",
        message=Message(f"{SUBJECT_PREFIX} High-severity failure: {summary}", body, text),
    )


def _approval_item(approval: PendingApproval, *, now: datetime) -> _Item:
    hours = int((now - approval.requested_at).total_seconds() // 3600)
    url = _link(approval.url)
    summary = _one_line(approval.summary)
    body = (
        f"{approval.summary}\n\n"
        f"It has waited {hours} hours for approval, since {_when(approval.requested_at)}.\n\n"
        f"Review it: {url}\n"
    )
    text = (
        f":hourglass: *Approval waiting {hours} h:* {_slack_escape(summary)}\n"
        f"Requested {_when(approval.requested_at)}. <{url}|Review it>"
    )
    return _Item(
        key=f"approval:{approval.key}",
        message=Message(f"{SUBJECT_PREFIX} Approval waiting {hours} h: {summary}", body, text),
    )


def _checkpoint_items(organisation_id: int) -> list[_Item]:
    """The organisation's latest checkpoint: an older one that never went out is superseded."""
    latest = Checkpoint.objects.filter(organisation_id=organisation_id).order_by("-seq").first()
    return [] if latest is None else [_checkpoint_item(latest)]


def _checkpoint_item(checkpoint: Checkpoint) -> _Item:
    text = json.dumps(checkpoints.document(checkpoint), indent=2)
    name = f"audit-checkpoint-{checkpoint.organisation_id}-{checkpoint.seq}.json"
    when = _when(checkpoint.taken_at)
    check = "python manage.py verify_audit --checkpoint FILE"
    body = (
        f"The activity log of your organisation stood at seq {checkpoint.seq} on {when}. The attached "
        f"file ({name}) is that chain head, signed.\n\n"
        "Keep it somewhere the Proactive Tutor database cannot reach (this mailbox will do). Whoever "
        f"later checks the log runs `{check}` with it: it fails if any event up to this one was "
        "deleted or changed since.\n\n"
        f"{text}\n"
    )
    slack = (
        f":lock: *Audit checkpoint:* the activity log at seq {checkpoint.seq}, {when}. Save the JSON "
        f"below as a file and keep it: `{check}` checks the log against it.\n```{text}```"
    )
    return _Item(
        key=f"checkpoint:{checkpoint.pk}",
        message=Message(
            f"{SUBJECT_PREFIX} Audit checkpoint: the log at seq {checkpoint.seq}",
            body,
            slack,
            attachments=((name, text, "application/json"),),
        ),
    )


# Claims ------------------------------------------------------------------------------------------


def _claim(
    *, organisation_id: int, item_key: str, channel: str, now: datetime
) -> NotificationDelivery | None:
    """The delivery row of this item on this channel, claimed for this worker; None if it is not
    to be sent now (already sent, another worker's fresh claim, or out of attempts)."""
    try:
        with transaction.atomic():
            return NotificationDelivery.objects.create(
                organisation_id=organisation_id,
                item_key=item_key,
                channel=channel,
                status=NotificationDelivery.Status.SENDING,
                attempts=1,
                claimed_at=now,
            )
    except IntegrityError:
        pass  # the unique constraint: a row exists, claimed by this or an earlier run
    rows = NotificationDelivery.objects.filter(
        organisation_id=organisation_id, item_key=item_key, channel=channel
    )
    claimed = (
        rows.filter(attempts__lt=MAX_ATTEMPTS)
        .filter(
            Q(status=NotificationDelivery.Status.FAILED)
            | Q(status=NotificationDelivery.Status.SENDING, claimed_at__lt=now - CLAIM_TIMEOUT)
        )
        .update(status=NotificationDelivery.Status.SENDING, attempts=F("attempts") + 1, claimed_at=now)
    )
    return rows.get() if claimed == 1 else None


def _give_up_abandoned(*, now: datetime) -> None:
    """A last attempt whose worker died mid-send (its claim expired) is failed: no more attempts."""
    lost = "the worker stopped before it finished sending (no result within 15 minutes)"
    abandoned = NotificationDelivery.objects.filter(
        status=NotificationDelivery.Status.SENDING,
        claimed_at__lt=now - CLAIM_TIMEOUT,
        attempts__gte=MAX_ATTEMPTS,
    )
    for delivery in abandoned:
        with transaction.atomic():
            gave_up = NotificationDelivery.objects.filter(
                pk=delivery.pk, status=NotificationDelivery.Status.SENDING, claimed_at=delivery.claimed_at
            ).update(status=NotificationDelivery.Status.FAILED, last_error=lost)
            if gave_up:
                delivery.status, delivery.last_error = NotificationDelivery.Status.FAILED, lost
                _record_failed(
                    delivery,
                    DeliveryError(lost, "check the worker logs for a crash or a kill during sending"),
                )


# Sending -----------------------------------------------------------------------------------------


def _deliver(
    delivery: NotificationDelivery, *, config: NotificationSettings, send: Sender, message: Message
) -> bool:
    """Send one claimed delivery outside any transaction, then record how it went."""
    try:
        send(config, message)
    except DeliveryError as error:
        failure = error
    except Exception as error:  # a bug or an unforeseen error: still recorded, never lost
        failure = DeliveryError(
            _without(config.slack_webhook_url, f"{type(error).__name__}: {error}"),
            "an unexpected error: report it to the operators",
        )
    else:
        with transaction.atomic():
            delivery.status = NotificationDelivery.Status.SENT
            delivery.sent_at = timezone.now()
            delivery.last_error = ""
            delivery.save(update_fields=["status", "sent_at", "last_error"])
            record(
                verb="notification.sent",
                actor_name=ACTOR,
                target=delivery,
                why=f"{delivery.item_key} sent by {delivery.get_channel_display().lower()}",
                details=_details(delivery),
            )
            failure_clear(
                organisation_id=delivery.organisation_id,
                fingerprint=_fingerprint(delivery),
                actor_name=ACTOR,
                why=f"attempt {delivery.attempts} went through",
            )
        return True
    with transaction.atomic():
        delivery.status = NotificationDelivery.Status.FAILED
        delivery.last_error = failure.error[:2000]
        delivery.save(update_fields=["status", "last_error"])
        _record_failed(delivery, failure)
    return False


def _details(delivery: NotificationDelivery) -> dict[str, object]:
    return {"item_key": delivery.item_key, "channel": delivery.channel, "attempt": delivery.attempts}


def _fingerprint(delivery: NotificationDelivery) -> str:
    return f"notification|{delivery.pk}"


def _record_failed(delivery: NotificationDelivery, failure: DeliveryError) -> None:
    final = delivery.attempts >= MAX_ATTEMPTS
    outcome = "no more attempts" if final else "retried on the next run"
    record_failure(
        verb="notification.failed",
        actor_name=ACTOR,
        target=delivery,
        fingerprint=_fingerprint(delivery),
        severity=Failure.Severity.NORMAL,
        why=f"{delivery.item_key} not sent by {delivery.get_channel_display().lower()} "
        f"(attempt {delivery.attempts} of {MAX_ATTEMPTS}, {outcome}): {failure.error}"[:1000],
        remediation=failure.remediation,
        details={**_details(delivery), "error": failure.error[:2000], "final": final},
    )


def _channels(config: NotificationSettings) -> list[tuple[str, Sender]]:
    channels: list[tuple[str, Sender]] = []
    if config.recipients:
        channels.append((NotificationDelivery.Channel.EMAIL, _send_email))
    if config.slack_webhook_url:
        channels.append((NotificationDelivery.Channel.SLACK, _send_slack))
    return channels


def _send_email(config: NotificationSettings, message: Message) -> None:
    email = EmailMessage(
        subject=message.subject,
        body=message.email_body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=config.recipients,
        attachments=list(message.attachments),
    )
    try:
        email.send(fail_silently=False)
    except smtplib.SMTPAuthenticationError as error:
        raise DeliveryError(
            f"the SMTP server refused the login: {error.smtp_code} {_smtp_text(error.smtp_error)}",
            "check EMAIL_HOST_USER and EMAIL_HOST_PASSWORD",
        ) from error
    except smtplib.SMTPRecipientsRefused as error:
        refused = ", ".join(sorted(error.recipients))
        raise DeliveryError(
            f"the SMTP server refused the recipients {refused}",
            f"correct the email recipients in {SETTINGS_HINT}",
        ) from error
    except smtplib.SMTPSenderRefused as error:
        raise DeliveryError(
            f"the SMTP server refused the sender: {error.smtp_code} {_smtp_text(error.smtp_error)}",
            "set DEFAULT_FROM_EMAIL to an address the SMTP server may send from",
        ) from error
    except TimeoutError as error:
        raise DeliveryError(
            f"the SMTP server did not answer within {settings.EMAIL_TIMEOUT} s",
            "check EMAIL_HOST/EMAIL_PORT and that the worker may reach the SMTP server",
        ) from error
    except (ConnectionRefusedError, smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected) as error:
        raise DeliveryError(
            f"the SMTP server refused the connection: {error}",
            "check EMAIL_HOST/EMAIL_PORT and that the SMTP server is running",
        ) from error
    except smtplib.SMTPResponseException as error:
        raise DeliveryError(
            f"the SMTP server answered {error.smtp_code} {_smtp_text(error.smtp_error)}",
            "a 4xx answer is temporary and retried on the next run; for a 5xx one check the SMTP "
            "server's log and EMAIL_HOST/EMAIL_PORT/EMAIL_USE_TLS",
        ) from error
    except (OSError, smtplib.SMTPException) as error:
        raise DeliveryError(
            f"email could not be sent: {type(error).__name__}: {error}",
            "check EMAIL_HOST/EMAIL_PORT/EMAIL_USE_TLS and the worker's network access to the SMTP server",
        ) from error


def _smtp_text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)


SLACK_HINTS = {
    400: "Slack rejected the message as malformed: report it to the operators",
    403: "the webhook may no longer post to its channel; create a new incoming webhook and paste "
    f"its URL in {SETTINGS_HINT}",
    404: f"the webhook was revoked; paste a new incoming-webhook URL in {SETTINGS_HINT}",
    410: "the webhook's channel was archived; create a webhook for another channel and paste its URL "
    f"in {SETTINGS_HINT}",
    429: "Slack is rate-limiting this webhook; it is retried on the next run",
}


def _send_slack(config: NotificationSettings, message: Message) -> None:
    url = config.slack_webhook_url
    try:
        response = httpx.post(url, json={"text": message.slack_text}, timeout=SLACK_TIMEOUT)
    except httpx.TimeoutException as error:
        raise DeliveryError(
            f"Slack did not answer within {SLACK_TIMEOUT:g} s",
            "retried on the next run; if it persists check the worker's outbound HTTPS access",
        ) from error
    except httpx.HTTPError as error:
        raise DeliveryError(
            f"Slack could not be reached: {_without(url, f'{type(error).__name__}: {error}')}",
            "check the worker's outbound HTTPS access (firewall, proxy, DNS), and that the webhook URL "
            f"in {SETTINGS_HINT} is a Slack incoming-webhook URL",
        ) from error
    if not response.is_success:
        answer = _without(url, response.text.strip()[:200])
        hint = SLACK_HINTS.get(response.status_code)
        if hint is None:
            hint = (
                "Slack is failing; it is retried on the next run"
                if response.is_server_error
                else f"check the webhook URL in {SETTINGS_HINT}"
            )
        raise DeliveryError(f"Slack answered {response.status_code}: {answer or 'no body'}", hint)


def _without(secret: str, text: str) -> str:
    """The text with the webhook URL (a secret) and its path blanked out."""
    path = urlsplit(secret).path
    for part in (secret, path if len(path) > 1 else ""):
        if part:
            text = text.replace(part, "[webhook]")
    return text
