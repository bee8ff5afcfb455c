"""The chain as migrations 0003 and 0004 left it (plain SHA-256, no key), frozen here for the
migrations: 0003 chains the events it finds with it, and 0005 checks every link with it before
re-chaining the events under the chain key. (Django loads no migration from a module whose name
starts with `_`.)
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from django.db.models import Q
from django.db.models.functions import Coalesce

from audit import chain

GENESIS = "0" * 64
HASHED = (
    "seq",
    "organisation_id",
    "occurred_at",
    "actor_id",
    "verb",
    "target_type",
    "target_id",
    "student_id",
    "class_id",
    "status",
    "source",
    "correlation_id",
    "personal_digest",
)


def canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
    ).encode()


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return str(value)


def chain_key(organisation_id: int | None) -> int:
    return 0 if organisation_id is None else organisation_id


def personal_digest(actor_name: str, why: str, details: Any) -> str:
    return hashlib.sha256(canonical([actor_name, why, details])).hexdigest()


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical([fields[name] for name in HASHED])).hexdigest()


def rechain(ActivityEvent: Any, ChainHead: Any, *, batch: int = 2000) -> None:  # noqa: N803 - models
    """Re-hash every event under the configured chain key, chain by chain in seq order, keeping
    every break the unkeyed chain had: a link that did not verify keeps its old hash (which no
    key makes valid), a personal digest that did not match keeps its old value, seqs are not
    renumbered, and a head that did not match its newest event is left as it was. So re-keying
    never launders earlier tampering; `verify_audit` still names it.

    The caller (the migration, as the tables' owner) has switched PostgreSQL's append-only
    trigger off for the duration.
    """
    key = chain.keyring().current
    manager = ActivityEvent._base_manager  # the real model's own manager refuses updates
    chains = {chain_key(org) for org in manager.values_list("organisation_id", flat=True).distinct()}
    heads = {head.organisation_id: head for head in ChainHead.objects.all()}
    for chain_id in sorted(chains):
        events = manager.alias(chain=Coalesce("organisation_id", 0)).filter(chain=chain_id).order_by("seq", "id")
        old_prev = new_prev = GENESIS
        last_seq, last_id = 0, 0
        while rows := list(events.filter(Q(seq__gt=last_seq) | Q(seq=last_seq, id__gt=last_id))[:batch]):
            for event in rows:
                old_prev, new_prev = _rechain_one(event, old_prev, new_prev, key)
            last_seq, last_id = rows[-1].seq, rows[-1].id
            manager.bulk_update(rows, ["key_id", "personal_digest", "hash"])
        head = heads.get(chain_id)
        if head is not None and (head.seq, head.hash) == (last_seq, old_prev):
            ChainHead.objects.filter(pk=chain_id).update(hash=new_prev)


def _rechain_one(event: Any, old_prev: str, new_prev: str, key: chain.ChainKey) -> tuple[str, str]:
    """Re-key one event after the old and the new hash of the event before it; return its own two."""
    fields = vars(event)
    digest_held = event.redacted_at is not None or event.personal_digest == personal_digest(
        event.actor_name, event.why, event.details
    )
    link_held = event_hash(old_prev, fields) == event.hash
    old_hash = event.hash
    event.key_id = key.id
    if digest_held and link_held:
        if event.redacted_at is None:
            event.personal_digest = chain.personal_digest(event.actor_name, event.why, event.details, key=key)
        event.hash = chain.event_hash(new_prev, fields, key=key)
    return old_hash, event.hash
