"""Signed checkpoints of each organisation's chain head, sent out of the database every day, and
`verify_audit --checkpoint FILE` checking the log against one.

Sent through Django's SMTP backend to a real SMTP server and over HTTP to a webhook receiver, both
on loopback (tests/notify_fixtures.py).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_q.models import Schedule

from audit import tasks
from audit.checkpoints import checkpoints_take
from audit.models import ActivityEvent, ChainHead, NotificationDelivery, NotificationSettings
from audit.notify import notify, send_checkpoints
from audit.services import record
from tests import factories
from tests.audit.attacker import PLAIN_SHA256, rehash, tamper


def _events(organisation_id: int, n: int = 3) -> list[ActivityEvent]:
    return [
        record(
            verb="test.happened", actor_name="system:test", organisation_id=organisation_id, why=f"step {i}"
        )
        for i in range(n)
    ]


def _configure(organisation_id: int, *, email: str = "", webhook_url: str = "") -> None:
    NotificationSettings.objects.create(
        organisation_id=organisation_id, email_recipients=email, slack_webhook_url=webhook_url
    )


def _attachment(email) -> bytes:
    [attachment] = list(email.iter_attachments())
    assert attachment.get_content_type() == "application/json"
    return attachment.get_payload(decode=True)


def _from_slack(text: str) -> str:
    return re.search(r"```(.*)```", text, re.DOTALL).group(1)


def _save(tmp_path: Path, content: bytes | str, name: str = "checkpoint.json") -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def _verify_fails(*args: str) -> list[str]:
    with pytest.raises(CommandError) as failed:
        call_command("verify_audit", *args)
    return str(failed.value).splitlines()


@pytest.fixture
def checkpointed(db, smtp_server, webhook, tmp_path):
    """An organisation with both channels whose daily checkpoint has gone out; the saved copies."""
    org = factories.OrganisationFactory().pk
    _configure(org, email="head@school.example", webhook_url=webhook.url)
    events = _events(org)
    tasks.checkpoint()
    [email] = smtp_server.messages
    [text] = webhook.texts
    return {
        "org": org,
        "events": events,
        "email": email,
        "slack": text,
        "file": _save(tmp_path, _attachment(email)),
        "slack_file": _save(tmp_path, _from_slack(text), "from-slack.json"),
    }


def test_the_daily_checkpoint_is_emailed_and_posted_once_and_its_saved_copies_verify(
    checkpointed, smtp_server, webhook, settings, capsys
):
    org, events = checkpointed["org"], checkpointed["events"]
    document = json.loads(Path(checkpointed["file"]).read_text())
    assert {k: document[k] for k in ("organisation_id", "seq", "hash", "key_id")} == {
        "organisation_id": org,
        "seq": events[-1].seq,
        "hash": events[-1].hash,
        "key_id": settings.AUDIT_CHAIN_KEY_ID,
    }
    assert document["kind"] == "proactive-tutor.audit-checkpoint" and len(document["signature"]) == 64
    assert json.loads(Path(checkpointed["slack_file"]).read_text()) == document
    email = checkpointed["email"]
    assert email["Subject"] == f"[Proactive Tutor] Audit checkpoint: the log at seq {events[-1].seq}"
    assert smtp_server.recipients == [["head@school.example"]]
    assert "verify_audit --checkpoint" in email.get_body().get_content()
    assert "verify_audit --checkpoint" in checkpointed["slack"]
    recorded = ActivityEvent.objects.get(verb="audit.checkpoint")
    assert (recorded.organisation_id, recorded.seq) == (org, events[-1].seq + 1)
    assert recorded.details["checkpoint"] == document
    sent = NotificationDelivery.objects.filter(status="sent").values_list("item_key", "channel", "attempts")
    assert sorted(sent) == [(f"checkpoint:{recorded.target_id}", c, 1) for c in ("email", "slack")]
    assert ActivityEvent.objects.filter(verb="notification.sent").count() == 2

    # Run again the same day (or the 10-minute notifier): no second checkpoint, nothing resent.
    tasks.checkpoint()
    notify()
    assert len(smtp_server.messages) == 1 and len(webhook.bodies) == 1
    assert ActivityEvent.objects.filter(verb="audit.checkpoint").count() == 1

    for saved in (checkpointed["file"], checkpointed["slack_file"]):
        call_command("verify_audit", "--checkpoint", saved)
        out = capsys.readouterr().out
        assert f"checkpoint of organisation {org} at seq {events[-1].seq} holds" in out
        assert "Audit log intact" in out


def test_the_next_day_brings_the_next_checkpoint(checkpointed, smtp_server, webhook):
    _events(checkpointed["org"], 1)
    [taken] = checkpoints_take(now=timezone.now() + timedelta(days=1))
    assert send_checkpoints().sent == 2
    assert len(smtp_server.messages) == 2 and len(webhook.bodies) == 2
    assert taken.seq == ChainHead.objects.get(organisation_id=checkpointed["org"]).seq - 3
    assert ActivityEvent.objects.filter(verb="audit.checkpoint").count() == 2


def test_a_checkpoint_with_a_tampered_signature_fails_in_one_line(checkpointed, tmp_path):
    document = json.loads(Path(checkpointed["file"]).read_text())
    for field, value in (("signature", "0" * 64), ("seq", document["seq"] - 1)):
        forged = {**document, field: value}
        [finding] = _verify_fails("--checkpoint", _save(tmp_path, json.dumps(forged), f"{field}.json"))
        assert finding == (
            f"audit log broken at the checkpoint of organisation {forged['organisation_id']} at seq "
            f"{forged['seq']}: its signature does not match (forged or edited)"
        )


def test_a_log_truncated_after_the_checkpoint_fails_even_with_the_head_rolled_back(checkpointed):
    org, events = checkpointed["org"], checkpointed["events"]
    # The attacker deletes the newest events and moves the head back to the last one left: on
    # SQLite nothing stops them (PostgreSQL refuses it; the test plays the table owner), and every
    # remaining hash is genuine, so only a copy of the head kept outside the database shows it.
    tamper("DELETE FROM audit_activityevent WHERE organisation_id = %s AND seq >= %s", [org, events[-2].seq])
    tamper(
        "UPDATE audit_chainhead SET seq = %s, hash = %s WHERE organisation_id = %s",
        [events[-3].seq, events[-3].hash, org],
    )
    call_command("verify_audit")
    [finding] = _verify_fails("--checkpoint", checkpointed["file"])
    assert finding == (
        f"audit log broken at the checkpoint of organisation {org} at seq {events[-1].seq}: the chain has "
        f"shrunk to seq {events[-3].seq} (the events after it were deleted)"
    )


def test_a_rewritten_log_fails_the_checkpoint_and_the_chain(checkpointed):
    org, events = checkpointed["org"], checkpointed["events"]
    tamper("UPDATE audit_activityevent SET why = 'x' WHERE id = %s", [events[-1].pk])
    rehash(org, PLAIN_SHA256)
    findings = _verify_fails("--checkpoint", checkpointed["file"])
    assert len(findings) == 2
    assert "does not match its hash" in findings[0]
    assert findings[1].endswith(
        f"at seq {events[-1].seq}: the event at that seq no longer carries the checkpoint's hash (rewritten)"
    )


def test_a_checkpoint_under_an_unknown_key_fails(checkpointed, settings):
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_ID = "another-key-0123456789abcdefghijklmn", "next"
    findings = _verify_fails("--checkpoint", checkpointed["file"])
    assert findings[-1].endswith(
        "signed under key id 'dev', which is neither AUDIT_CHAIN_KEY_ID nor in AUDIT_CHAIN_RETIRED_KEYS"
    )


@pytest.mark.parametrize("content", [b"not json", b"{}", b'{"kind": "proactive-tutor.audit-checkpoint"}'])
def test_a_file_that_is_not_a_checkpoint_fails_in_one_line(db, tmp_path, content):
    path = _save(tmp_path, content)
    [finding] = _verify_fails("--checkpoint", path)
    assert finding.startswith(f"{path} is not an audit checkpoint")


def test_a_missing_checkpoint_file_fails_in_one_line(db, tmp_path):
    [finding] = _verify_fails("--checkpoint", str(tmp_path / "nowhere.json"))
    assert finding.startswith(f"cannot read {tmp_path / 'nowhere.json'}")


def test_a_checkpoint_a_channel_refused_is_sent_by_the_notifier_later(db, webhook):
    org = factories.OrganisationFactory().pk
    _configure(org, webhook_url=webhook.url)
    _events(org)
    webhook.fail(1, status=500)
    tasks.checkpoint()
    assert webhook.bodies == [] and len(webhook.refused) == 1
    assert notify().sent == 1
    assert notify().sent == 0
    assert len(webhook.bodies) == 1
    [failed] = ActivityEvent.objects.filter(verb="notification.failed")
    assert failed.details["item_key"].startswith("checkpoint:")


def test_an_organisation_without_channels_gets_its_checkpoint_recorded_only(db):
    org = factories.OrganisationFactory().pk
    _events(org)
    tasks.checkpoint()
    assert ActivityEvent.objects.filter(verb="audit.checkpoint", organisation_id=org).count() == 1
    assert not NotificationDelivery.objects.exists()


def test_a_head_that_does_not_match_its_event_is_not_signed(db, smtp_server):
    org = factories.OrganisationFactory().pk
    _configure(org, email="head@school.example")
    _events(org)
    tamper("UPDATE audit_chainhead SET hash = %s WHERE organisation_id = %s", ["f" * 64, org])
    tasks.checkpoint()
    assert not ActivityEvent.objects.filter(verb="audit.checkpoint").exists()
    # Not signed, and the organisation hears of it: a high-severity failure goes to its channels.
    failed = ActivityEvent.objects.get(verb="audit.checkpoint_failed")
    assert (failed.status, failed.organisation_id, failed.details["severity"]) == ("failed", org, "high")
    assert "verify_audit" in failed.details["remediation"]
    notify()
    assert smtp_server.subjects == [f"[Proactive Tutor] High-severity failure: {failed.why}"]


def test_install_schedules_installs_the_daily_checkpoint(db, settings):
    call_command("install_schedules")
    schedule = Schedule.objects.get(name="audit-checkpoint")
    assert (schedule.func, schedule.cron) == ("audit.tasks.checkpoint", settings.AUDIT_CHECKPOINT_CRON)
