"""Migration 0005 re-chains the log that 0003/0004 left (plain SHA-256) under the chain key,
without laundering any break the old chain had."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit import chain
from audit.migrations import _unkeyed
from audit.models import ActivityEvent, ChainHead
from audit.services import record
from tests import factories
from tests.audit.attacker import as_table_owner, chain_rows, raw, tamper


def _as_0004_left_it() -> None:
    """Every chain hashed as before the key: plain SHA-256 and no key id."""
    with as_table_owner():
        for head in ChainHead.objects.all():
            prev_hash = _unkeyed.GENESIS
            for row in chain_rows(head.organisation_id or None):
                row["personal_digest"] = _unkeyed.personal_digest(
                    row["actor_name"], row["why"], row["details"]
                )
                row["hash"] = prev_hash = _unkeyed.event_hash(prev_hash, row)
                raw(
                    "UPDATE audit_activityevent SET key_id = '', personal_digest = %s, hash = %s "
                    "WHERE id = %s",
                    [row["personal_digest"], row["hash"], row["id"]],
                )
            raw(
                "UPDATE audit_chainhead SET hash = %s WHERE organisation_id = %s",
                [prev_hash, head.organisation_id],
            )


def _rechain() -> None:
    # The migration switches the trigger off itself, as the tables' owner.
    with as_table_owner():
        _unkeyed.rechain(ActivityEvent, ChainHead)


def _events(organisation_id: int, n: int = 4) -> list[ActivityEvent]:
    return [
        record(
            verb="test.happened", actor_name="system:test", organisation_id=organisation_id, why=f"step {i}"
        )
        for i in range(n)
    ]


def test_the_unkeyed_log_is_re_chained_under_the_key(db, settings, capsys):
    _events(factories.OrganisationFactory().pk)
    _as_0004_left_it()
    assert chain.verify().broken is not None  # unkeyed hashes no longer verify
    _rechain()
    assert set(ActivityEvent.objects.values_list("key_id", flat=True)) == {settings.AUDIT_CHAIN_KEY_ID}
    call_command("verify_audit")
    assert "Audit log intact" in capsys.readouterr().out


def test_re_chaining_keeps_every_break_the_unkeyed_log_had(db):
    edited_org, truncated_org = factories.OrganisationFactory().pk, factories.OrganisationFactory().pk
    edited, truncated = _events(edited_org), _events(truncated_org)
    _as_0004_left_it()
    tamper("UPDATE audit_activityevent SET why = 'nothing to see' WHERE id = %s", [edited[1].pk])
    tamper("DELETE FROM audit_activityevent WHERE id = %s", [truncated[-1].pk])
    _rechain()
    with pytest.raises(CommandError) as failed:
        call_command("verify_audit")
    [first, second] = str(failed.value).splitlines()
    assert f"event {edited[1].pk} (seq {edited[1].seq} of organisation {edited_org})" in first
    assert "does not match its hash" in first
    assert f"the chain of organisation {truncated_org}: the head records {truncated[-1].seq} events" in second
    assert chain.verify(edited_org).broken.event_id == edited[1].pk
