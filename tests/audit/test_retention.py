"""Retention: only events past AUDIT_RETENTION_DAYS lose their personal details, and on PostgreSQL
the database itself refuses to blank anything younger (no flag a session can set lets it)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.utils import timezone

from audit import chain, context, retention
from audit.models import ActivityEvent
from audit.services import record
from tests.audit.attacker import raw, tamper
from tests.audit.history import old_events

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the append-only trigger is PostgreSQL's (SQLite has none)"
)

# The UPDATE retention runs, as anyone with the application's role could type it.
BLANK = (
    "UPDATE audit_activityevent SET actor_name = '[redacted]', why = '[redacted]', "
    "details = '{\"redacted\": true}'::jsonb, redacted_at = now() WHERE id = %s"
)


def test_retention_blanks_events_past_the_retention_age_and_the_chain_still_verifies(school, capsys):
    old = old_events(days_ago=800)
    with context.bind(source="page"):
        recent = record(
            verb="alert.acknowledged",
            actor=school.teacher,
            why="spoke to Sam's parents",
            details={"note": "Sam Jones at home"},
            organisation_id=school.organisation.pk,
        )
    call_command("redact_audit")
    assert "Redacted 3 events before" in capsys.readouterr().out
    for event in ActivityEvent.objects.filter(pk__in=[e.pk for e in old]):
        assert (event.actor_name, event.why, event.details) == (
            "[redacted]",
            "[redacted]",
            {"redacted": True},
        )
        assert event.verb == "alert.acknowledged" and event.redacted_at is not None
    assert ActivityEvent.objects.get(pk=recent.pk).why == "spoke to Sam's parents"
    redaction = ActivityEvent.objects.get(verb="audit.redacted")
    assert redaction.details["events_redacted"] == 3
    # The cut-off is part of what happened: it outlives the redaction of this event itself.
    assert redaction.target_type == "audit.retention_cutoff"
    cutoff = datetime.fromisoformat(redaction.target_id)
    assert abs(cutoff - (timezone.now() - timedelta(days=730))) < timedelta(minutes=1)
    call_command("verify_audit")
    assert "3 redacted" in capsys.readouterr().out


def test_redact_audit_before_an_earlier_date_redacts_only_what_is_older(db, capsys):
    older, newer = old_events(days_ago=900, count=1), old_events(days_ago=800, count=1)
    before = (timezone.now() - timedelta(days=850)).date().isoformat()
    call_command("redact_audit", "--before", before)
    assert ActivityEvent.objects.get(pk=older[0].pk).redacted_at is not None
    assert ActivityEvent.objects.get(pk=newer[0].pk).redacted_at is None
    call_command("verify_audit")


def test_redact_audit_refuses_a_date_later_than_the_retention_cutoff(school):
    old = old_events(days_ago=800, count=1)
    with pytest.raises(CommandError) as refused:
        call_command("redact_audit", "--before", "2999-01-01")
    [line] = str(refused.value).splitlines()
    cutoff = (timezone.now() - timedelta(days=730)).date()
    assert line.startswith(
        f"redacting before 2999-01-01 is refused: that is later than the retention cut-off {cutoff:%Y-%m-%d}"
    )
    assert line.endswith("UTC (AUDIT_RETENTION_DAYS=730)")
    assert ActivityEvent.objects.get(pk=old[0].pk).redacted_at is None
    assert not ActivityEvent.objects.filter(verb="audit.redacted").exists()


def test_with_retention_off_nothing_may_be_redacted(db, settings, capsys):
    settings.AUDIT_RETENTION_DAYS = 0
    old = old_events(days_ago=800, count=1)
    with pytest.raises(CommandError, match="AUDIT_RETENTION_DAYS is 0: no event may be redacted"):
        call_command("redact_audit", "--before", "2001-01-01")
    call_command("redact_audit")
    assert "nothing redacted" in capsys.readouterr().out
    assert ActivityEvent.objects.get(pk=old[0].pk).redacted_at is None


def test_redact_audit_rejects_a_bad_date(db):
    with pytest.raises(CommandError, match="--before must be a date"):
        call_command("redact_audit", "--before", "last tuesday")


@postgres_only
@pytest.mark.postgres
def test_postgresql_refuses_to_blank_an_event_younger_than_the_retention_age(school):
    event = record(verb="test.happened", actor_name="system:test", organisation_id=school.organisation.pk)
    for flag in ("", "SET LOCAL audit.redaction = 'on'"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            if flag:
                raw(flag)
            raw(BLANK, [event.pk])
    assert ActivityEvent.objects.get(pk=event.pk).redacted_at is None


@postgres_only
@pytest.mark.postgres
def test_postgresql_lets_retention_blank_only_the_personal_columns_of_an_old_event(db):
    [event] = old_events(days_ago=800, count=1)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        raw("UPDATE audit_activityevent SET verb = 'other', redacted_at = now() WHERE id = %s", [event.pk])
    with transaction.atomic():
        raw(BLANK, [event.pk])
    assert ActivityEvent.objects.get(pk=event.pk).redacted_at is not None


@postgres_only
@pytest.mark.postgres
def test_postgresql_takes_the_retention_age_from_migrate(db, settings):
    with connection.cursor() as cursor:
        cursor.execute("SELECT audit_retention_days()")
        assert cursor.fetchone()[0] == settings.AUDIT_RETENTION_DAYS
    [event] = old_events(days_ago=800, count=1)
    settings.AUDIT_RETENTION_DAYS = 0
    retention.install_database_retention()  # what `migrate` does after every run
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        raw(BLANK, [event.pk])
    settings.AUDIT_RETENTION_DAYS = 900
    retention.install_database_retention()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        raw(BLANK, [event.pk])


@postgres_only
@pytest.mark.postgres
def test_redaction_stops_when_the_database_enforces_another_age_than_the_settings(db, settings):
    old_events(days_ago=800, count=1)
    settings.AUDIT_RETENTION_DAYS = 365
    with pytest.raises(CommandError) as refused:
        call_command("redact_audit")
    assert str(refused.value) == (
        "AUDIT_RETENTION_DAYS is 365 but the database enforces 730: run `python manage.py migrate` "
        "after changing it"
    )


def test_a_redaction_record_forged_without_the_key_does_not_cover_a_redaction(school):
    """The cut-off of a redaction counts only from an event hashed under the chain key."""
    event = record(verb="test.happened", actor_name="system:test", organisation_id=school.organisation.pk)
    future = (timezone.now() + timedelta(days=1)).isoformat()
    forged = record(verb="audit.redacted", actor_name="system:retention", target_type="x", target_id="1")
    tamper(
        "UPDATE audit_activityevent SET target_type = 'audit.retention_cutoff', target_id = %s WHERE id = %s",
        [future, forged.pk],
    )
    tamper(
        "UPDATE audit_activityevent SET actor_name = '[redacted]', why = '[redacted]', details = %s, "
        "redacted_at = occurred_at WHERE id = %s",
        [chain.canonical(chain.REDACTED_DETAILS).decode(), event.pk],
    )
    with pytest.raises(CommandError) as failed:
        call_command("verify_audit")
    findings = str(failed.value).splitlines()
    assert any(f"event {forged.pk} " in line and "does not match its hash" in line for line in findings)
    assert any(
        f"event {event.pk} " in line and "redacted before its retention age" in line for line in findings
    )
