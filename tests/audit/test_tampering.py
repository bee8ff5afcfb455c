"""Tampering by someone with the application's database role but not AUDIT_CHAIN_KEY, and how
verify_audit names each kind of break in one line (and never crashes)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError

from audit import chain
from audit.models import ActivityEvent, ChainHead
from audit.services import record
from tests import factories
from tests.audit.attacker import PLAIN_SHA256, WRONG_KEY, raw, rehash, renumber_after, tamper

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the triggers are PostgreSQL's (SQLite has none)"
)


def _events(organisation_id: int | None, n: int = 4) -> list[ActivityEvent]:
    return [
        record(
            verb="test.happened", actor_name="system:test", organisation_id=organisation_id, why=f"step {i}"
        )
        for i in range(n)
    ]


def _breaks() -> list[str]:
    """verify_audit's findings, one line each; it must fail."""
    with pytest.raises(CommandError) as failed:
        call_command("verify_audit")
    return str(failed.value).splitlines()


def _edit(events: list[ActivityEvent], org: int) -> None:
    tamper("UPDATE audit_activityevent SET why = 'nothing to see' WHERE id = %s", [events[1].pk])


def _delete_middle(events: list[ActivityEvent], org: int) -> None:
    tamper("DELETE FROM audit_activityevent WHERE id = %s", [events[1].pk])
    renumber_after(org, events[1].seq)


def _delete_tail(events: list[ActivityEvent], org: int) -> None:
    tamper("DELETE FROM audit_activityevent WHERE id = %s", [events[-1].pk])


@pytest.mark.parametrize("hasher", [PLAIN_SHA256, WRONG_KEY], ids=["plain-sha256", "wrong-key"])
@pytest.mark.parametrize(
    "attack", [_edit, _delete_middle, _delete_tail], ids=["edit", "delete-middle", "delete-tail"]
)
def test_rehashing_the_chain_without_the_key_is_caught(db, attack, hasher):
    org = factories.OrganisationFactory().pk
    events = _events(org)
    attack(events, org)
    rehash(org, hasher)
    [finding] = _breaks()
    first = ActivityEvent.objects.filter(organisation_id=org).order_by("seq").first()
    assert f"event {first.pk} (seq 1 of organisation {org}): content does not match its hash" in finding


def test_an_edited_event_is_named_even_when_the_attacker_rehashes_only_from_there_on(db):
    org = factories.OrganisationFactory().pk
    events = _events(org)
    _edit(events, org)
    rehash(org, PLAIN_SHA256, from_seq=events[1].seq)
    # The events before the edit keep their real hashes: the first forged one is the edited one.
    with pytest.raises(CommandError, match=f"event {events[1].pk} .*does not match its hash"):
        call_command("verify_audit", "--organisation", str(org))


def test_a_duplicated_seq_is_named(db):
    org = factories.OrganisationFactory().pk
    events = _events(org)
    with transaction.atomic():
        tamper("DROP INDEX audit_chain_seq_unique")
        columns = (
            "occurred_at, organisation_id, actor_id, actor_name, verb, target_type, target_id, student_id, "
            "class_id, why, status, source, correlation_id, details, seq, key_id, personal_digest, hash"
        )
        tamper(
            f"INSERT INTO audit_activityevent ({columns}) "
            f"SELECT {columns} FROM audit_activityevent WHERE id = %s",
            [events[2].pk],
        )
        [finding] = _breaks()
    assert f"seq {events[2].seq} of organisation {org}" in finding
    assert "appears twice (duplicated)" in finding


def test_a_deleted_head_is_named_not_a_crash_and_the_finding_is_recorded(db):
    org = factories.OrganisationFactory().pk
    _events(org)
    tamper("DELETE FROM audit_chainhead WHERE organisation_id = %s", [org])
    [finding] = _breaks()
    assert f"the chain of organisation {org}: its chain head is missing (deleted)" in finding
    # The organisation's chain cannot take the finding (it has no head): the chain of no
    # organisation does.
    recorded = ActivityEvent.objects.get(verb="audit.verified")
    assert recorded.organisation_id is None and recorded.status == "failed"
    assert "chain head is missing" in recorded.why


def test_a_deleted_head_is_still_reported_when_no_chain_can_record_it(db):
    org = factories.OrganisationFactory().pk
    _events(org)
    _events(None, 1)
    tamper("DELETE FROM audit_chainhead")
    findings = _breaks()
    chains = set(ActivityEvent.objects.values_list("organisation_id", flat=True).distinct())
    assert len(findings) == len(chains)
    assert all("its chain head is missing (deleted)" in line for line in findings)
    assert any(f"the chain of organisation {org}: " in line for line in findings)
    assert any("the chain of no organisation: " in line for line in findings)
    assert not ActivityEvent.objects.filter(verb="audit.verified").exists()


def test_an_edited_head_is_named(db):
    org = factories.OrganisationFactory().pk
    events = _events(org)
    tamper("UPDATE audit_chainhead SET hash = %s WHERE organisation_id = %s", ["f" * 64, org])
    [finding] = _breaks()
    assert f"the chain of organisation {org}: the head's hash is not that of event seq {events[-1].seq}" in (
        finding
    )
    assert "(the head was edited)" in finding


def test_a_rolled_back_head_is_named(db):
    org = factories.OrganisationFactory().pk
    events = _events(org)
    tamper(
        "UPDATE audit_chainhead SET seq = %s, hash = %s WHERE organisation_id = %s",
        [events[-2].seq, events[-2].hash, org],
    )
    [finding] = _breaks()
    assert f"the head records {events[-2].seq} events but the log goes on to seq {events[-1].seq}" in finding
    assert "(the head was rolled back)" in finding


def test_every_broken_chain_is_reported_on_its_own_line(db):
    first, second = factories.OrganisationFactory().pk, factories.OrganisationFactory().pk
    mine, theirs = _events(first), _events(second)
    tamper("UPDATE audit_activityevent SET why = 'x' WHERE id = %s", [mine[1].pk])
    tamper("DELETE FROM audit_activityevent WHERE id = %s", [theirs[1].pk])
    findings = _breaks()
    assert len(findings) == 2
    assert f"event {mine[1].pk} (seq {mine[1].seq} of organisation {first})" in findings[0]
    assert f"seq {theirs[1].seq} is missing (deleted)" in findings[1]
    assert all(line.startswith("audit log broken at ") for line in findings)
    assert ActivityEvent.objects.filter(verb="audit.verified", status="failed").count() == 2


def test_an_event_redacted_before_its_retention_age_is_named(db):
    org = factories.OrganisationFactory().pk
    events = _events(org)
    tamper(
        "UPDATE audit_activityevent SET actor_name = '[redacted]', why = '[redacted]', "
        "details = %s, redacted_at = occurred_at WHERE id = %s",
        [chain.canonical(chain.REDACTED_DETAILS).decode(), events[1].pk],
    )
    [finding] = _breaks()
    assert f"event {events[1].pk} (seq {events[1].seq} of organisation {org})" in finding
    assert "redacted before its retention age" in finding


@postgres_only
@pytest.mark.postgres
def test_the_redaction_flag_no_longer_lets_a_session_blank_a_new_event(db):
    event = _events(factories.OrganisationFactory().pk, 1)[0]
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        raw("SET LOCAL audit.redaction = 'on'")
        raw(
            "UPDATE audit_activityevent SET actor_name = '[redacted]', why = '[redacted]', "
            "details = '{\"redacted\": true}'::jsonb, redacted_at = now() WHERE id = %s",
            [event.pk],
        )
    assert ActivityEvent.objects.get(pk=event.pk).redacted_at is None


@postgres_only
@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM audit_chainhead WHERE organisation_id = %(org)s",
        "UPDATE audit_chainhead SET seq = seq - 1 WHERE organisation_id = %(org)s",
        "UPDATE audit_chainhead SET hash = 'f' WHERE organisation_id = %(org)s",
        "UPDATE audit_chainhead SET organisation_id = 0 - organisation_id, seq = seq + 1 "
        "WHERE organisation_id = %(org)s",
    ],
    ids=["delete", "roll-back", "edit-hash", "move"],
)
def test_postgresql_refuses_to_delete_or_roll_back_the_head(db, sql):
    org = factories.OrganisationFactory().pk
    _events(org, 2)
    head = ChainHead.objects.get(organisation_id=org)
    with pytest.raises(DatabaseError, match="audit_chainhead"), transaction.atomic():
        raw(sql, {"org": org})
    assert ChainHead.objects.get(organisation_id=org).seq == head.seq
    call_command("verify_audit")
