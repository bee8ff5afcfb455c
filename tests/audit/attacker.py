"""What someone with the application's database role, but not its environment, can do to the log.

They can run any SQL the role may (on PostgreSQL the tests play the table owner, who can switch the
triggers off, to show that the chain itself catches what they do), and they know the code, so they
can recompute every hash and the chain head. What they do not have is AUDIT_CHAIN_KEY: they hash
with plain SHA-256, or with a key of their own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection
from django.db.models.functions import Coalesce
from django.test import override_settings

from audit import chain
from audit.models import ActivityEvent

TABLES = ("audit_activityevent", "audit_chainhead")


def raw(sql: str, params: Any = ()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@contextmanager
def as_table_owner() -> Iterator[None]:
    """On PostgreSQL, the append-only and head triggers off for the duration (the owner may)."""
    postgres = connection.vendor == "postgresql"
    if postgres:
        for table in TABLES:
            raw(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    try:
        yield
    finally:
        if postgres:
            for table in TABLES:
                raw(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def tamper(sql: str, params: Any = ()) -> None:
    with as_table_owner():
        raw(sql, params)


def chain_rows(organisation_id: int | None) -> list[dict[str, Any]]:
    key = chain.chain_key(organisation_id)
    events = ActivityEvent.objects.alias(chain=Coalesce("organisation_id", 0)).filter(chain=key)
    return list(events.order_by("seq").values(*chain.VERIFY_COLUMNS))


Hasher = tuple[Callable[[str, dict[str, Any]], str], Callable[[str, str, Any], str]]


def _plain_event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + chain.canonical([fields[n] for n in chain.HASHED])).hexdigest()


def _plain_personal_digest(actor_name: str, why: str, details: Any) -> str:
    return hashlib.sha256(chain.canonical([actor_name, why, details])).hexdigest()


def _with_own_key(function: Callable[..., str]) -> Callable[..., str]:
    def hashed(*args: Any) -> str:
        with override_settings(AUDIT_CHAIN_KEY="the-attacker's-own-key-0123456789abcdef"):
            return function(*args)

    return hashed


PLAIN_SHA256: Hasher = (_plain_event_hash, _plain_personal_digest)
# The project's own hashing, run with a key the attacker chose (under the event's key id).
WRONG_KEY: Hasher = (_with_own_key(chain.event_hash), _with_own_key(chain.personal_digest))


def rehash(organisation_id: int | None, hasher: Hasher, *, from_seq: int = 1) -> None:
    """Recompute the digests and hashes of one chain from `from_seq` on, and its head, as the
    attacker can (the events before keep their real hashes)."""
    event_hash, personal_digest = hasher
    rows = chain_rows(organisation_id)
    before = [row for row in rows if row["seq"] < from_seq]
    prev_hash, last = (before[-1]["hash"], before[-1]["seq"]) if before else (chain.GENESIS, 0)
    with as_table_owner():
        for row in rows[len(before) :]:
            if row["redacted_at"] is None:
                row["personal_digest"] = personal_digest(row["actor_name"], row["why"], row["details"])
            row["hash"] = prev_hash = event_hash(prev_hash, row)
            last = row["seq"]
            raw(
                "UPDATE audit_activityevent SET personal_digest = %s, hash = %s WHERE id = %s",
                [row["personal_digest"], row["hash"], row["id"]],
            )
        raw(
            "UPDATE audit_chainhead SET seq = %s, hash = %s WHERE organisation_id = %s",
            [last, prev_hash, chain.chain_key(organisation_id)],
        )


def renumber_after(organisation_id: int | None, seq: int) -> None:
    """Close the gap a deleted event left: every later event moves down by one, oldest first."""
    with as_table_owner():
        for row in chain_rows(organisation_id):
            if row["seq"] > seq:
                raw("UPDATE audit_activityevent SET seq = %s WHERE id = %s", [row["seq"] - 1, row["id"]])
