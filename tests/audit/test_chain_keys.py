"""The chain's key: events are hashed under AUDIT_CHAIN_KEY, name it by id, and keep verifying
after a rotation as long as the old key is listed as retired."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError

from audit import chain
from audit.models import ActivityEvent
from audit.services import record
from tests import factories
from tests.audit.attacker import tamper

OLD_KEY = "the-old-chain-key-0123456789abcdefghijkl"
NEW_KEY = "the-new-chain-key-abcdefghijkl0123456789"


def _record(organisation_id: int, n: int = 2) -> list:
    return [
        record(verb="test.happened", actor_name="system:test", organisation_id=organisation_id, why=f"{i}")
        for i in range(n)
    ]


def test_each_event_names_the_key_it_was_hashed_under(db, settings):
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_ID = OLD_KEY, "2026-a"
    event = _record(factories.OrganisationFactory().pk, 1)[0]
    assert event.key_id == "2026-a"
    fields = {**vars(event), "actor_id": None}
    under_old = chain.event_hash(chain.GENESIS, fields)
    settings.AUDIT_CHAIN_KEY = NEW_KEY
    # The same content under another key is another hash: without the key it cannot be recomputed.
    assert chain.event_hash(chain.GENESIS, fields) != under_old


def test_events_under_a_retired_key_verify_after_a_rotation(db, settings, capsys):
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_ID = OLD_KEY, "2026-a"
    org = factories.OrganisationFactory().pk
    before = _record(org)
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_ID = NEW_KEY, "2026-b"
    settings.AUDIT_CHAIN_RETIRED_KEYS = [f"2026-a:{OLD_KEY}"]
    after = _record(org)
    assert {e.key_id for e in before} == {"2026-a"} and {e.key_id for e in after} == {"2026-b"}
    call_command("verify_audit")
    assert "Audit log intact" in capsys.readouterr().out


def test_an_event_under_a_key_no_longer_configured_is_named(db, settings):
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_ID = OLD_KEY, "2026-a"
    org = factories.OrganisationFactory().pk
    events = _record(org)
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_ID = NEW_KEY, "2026-b"
    with pytest.raises(CommandError) as failed:
        call_command("verify_audit", "--organisation", str(org))
    message = str(failed.value)
    first = ActivityEvent.objects.get(organisation_id=org, seq=1)  # the organisation's creation
    assert events[0].seq == 2 and f"event {first.pk} (seq 1 of organisation {org})" in message
    assert (
        "hashed under key id '2026-a', which is neither AUDIT_CHAIN_KEY_ID nor in AUDIT_CHAIN_RETIRED_KEYS"
        in (message)
    )


def test_the_key_id_is_covered_by_the_hash(db, settings):
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_ID = NEW_KEY, "2026-b"
    settings.AUDIT_CHAIN_RETIRED_KEYS = [f"2026-a:{OLD_KEY}"]
    org = factories.OrganisationFactory().pk
    events = _record(org)
    tamper("UPDATE audit_activityevent SET key_id = '2026-a' WHERE id = %s", [events[1].pk])
    with pytest.raises(CommandError, match=f"event {events[1].pk} .*does not match its hash"):
        call_command("verify_audit", "--organisation", str(org))


@pytest.mark.parametrize("retired", [["no-colon-here"], [":secret"], ["id:"]])
def test_a_malformed_retired_key_is_refused_with_its_format(db, settings, retired):
    settings.AUDIT_CHAIN_RETIRED_KEYS = retired
    with pytest.raises(ImproperlyConfigured, match="AUDIT_CHAIN_RETIRED_KEYS entries are id:secret"):
        _record(factories.OrganisationFactory().pk, 1)
