"""Tamper evidence: every event is hashed into a chain per organisation.

An event's hash covers its sequence number in its organisation's chain, every column that says
what happened, and the hash of the event before it. The personal columns (actor name, rationale,
details) enter through their own digest, so retention can later blank them and the chain still
verifies: a redacted event keeps the digest of what it said. The head of each chain (its last
sequence number and hash) lives in `ChainHead`; appending locks that row, so the events of one
organisation are chained one at a time, in commit order, and deleting the newest events shows as
a head that points past the end of the log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models.functions import Coalesce

GENESIS = "0" * 64
NO_ORGANISATION = 0  # the chain of events that belong to no organisation (e.g. a failed sign-in)
REDACTED = "[redacted]"
REDACTED_DETAILS: dict[str, Any] = {"redacted": True}

# The columns a row hash covers, in order (personal ones through `personal_digest`).
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
PERSONAL = ("actor_name", "why", "details")


def canonical(value: Any) -> bytes:
    """One byte string per value, whichever database stored it and whatever order its keys came back in."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
    ).encode()


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return str(value)


def personal_digest(actor_name: str, why: str, details: Any) -> str:
    return hashlib.sha256(canonical([actor_name, why, details])).hexdigest()


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical([fields[name] for name in HASHED])).hexdigest()


def chain_key(organisation_id: int | None) -> int:
    return NO_ORGANISATION if organisation_id is None else organisation_id


def advance_head(organisation_id: int | None, count: int = 1) -> tuple[int, str]:
    """Lock the organisation's chain head until the transaction ends and move it on by `count`
    events; return (the first of their seqs, the hash they follow).

    Must run inside the transaction that inserts the events and then calls `set_head`.
    """
    key = chain_key(organisation_id)
    table = "audit_chainhead"
    advance = f"UPDATE {table} SET seq = seq + %s WHERE organisation_id = %s RETURNING seq, hash"
    with connection.cursor() as cursor:
        # The UPDATE takes the row lock (PostgreSQL) or the write lock (SQLite) before anything is read.
        cursor.execute(advance, [count, key])
        row = cursor.fetchone()
        if row is None:
            cursor.execute(
                f"INSERT INTO {table} (organisation_id, seq, hash) VALUES (%s, 0, %s) "
                "ON CONFLICT (organisation_id) DO NOTHING",
                [key, GENESIS],
            )
            cursor.execute(advance, [count, key])
            row = cursor.fetchone()
    return int(row[0]) - count + 1, str(row[1])


def set_head(organisation_id: int | None, new_hash: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_chainhead SET hash = %s WHERE organisation_id = %s",
            [new_hash, chain_key(organisation_id)],
        )


@dataclass(frozen=True)
class Break:
    """The first place a chain does not hold, in words an operator can act on."""

    organisation_id: int | None
    event_id: int | None
    seq: int | None
    problem: str

    def __str__(self) -> str:
        org = (
            "no organisation"
            if self.organisation_id in (None, NO_ORGANISATION)
            else (f"organisation {self.organisation_id}")
        )
        where = f"event {self.event_id} (seq {self.seq} of {org})" if self.event_id else f"the chain of {org}"
        return f"{where}: {self.problem}"


@dataclass
class ChainReport:
    chains: int = 0
    events: int = 0
    redacted: int = 0
    broken: Break | None = None


VERIFY_COLUMNS = ("id", *HASHED, "actor_name", "why", "details", "hash", "redacted_at")


def verify_rows(
    organisation_id: int | None, rows: Iterable[dict[str, Any]], head: tuple[int, str] | None
) -> tuple[int, int, Break | None]:
    """Check one organisation's events in sequence order against each other and the chain head.

    Returns (events checked, redacted events, first break or None).
    """
    prev_hash, expected_seq, prev_id, prev_time = GENESIS, 1, 0, None
    count = redacted = 0
    for row in rows:
        count += 1
        event_id, seq = row["id"], row["seq"]
        here = {"organisation_id": organisation_id, "event_id": event_id, "seq": seq}
        if seq != expected_seq:
            missing = "is missing" if seq == expected_seq + 1 else f"to {seq - 1} are missing"
            problem = (
                f"expected seq {expected_seq}; event seq {expected_seq} {missing} (deleted)"
                if seq > expected_seq
                else f"expected seq {expected_seq}; seq {seq} appears twice or out of order"
            )
            return count, redacted, Break(**here, problem=problem)
        if event_id <= prev_id or (prev_time is not None and row["occurred_at"] < prev_time):
            return count, redacted, Break(**here, problem="out of order with the event before it (reordered)")
        if row["redacted_at"] is None:
            digest = personal_digest(row["actor_name"], row["why"], row["details"])
            if digest != row["personal_digest"]:
                return count, redacted, Break(**here, problem="actor, rationale or details were edited")
        else:
            redacted += 1
            if (
                row["actor_name"] != REDACTED
                or row["why"] not in ("", REDACTED)
                or row["details"] != (REDACTED_DETAILS)
            ):
                return (
                    count,
                    redacted,
                    Break(**here, problem="a redacted event was written to after redaction"),
                )
        if event_hash(prev_hash, row) != row["hash"]:
            return count, redacted, Break(**here, problem="content does not match its hash (edited)")
        prev_hash, expected_seq, prev_id, prev_time = row["hash"], seq + 1, event_id, row["occurred_at"]
    if head is not None and (head[0], head[1]) != (expected_seq - 1, prev_hash):
        return (
            count,
            redacted,
            Break(
                organisation_id,
                None,
                None,
                f"the head records {head[0]} events but the log ends at seq {expected_seq - 1}: "
                "the newest events were deleted or the head was edited",
            ),
        )
    return count, redacted, None


def iter_chunks(queryset: Any, size: int = 5000) -> Iterator[dict[str, Any]]:
    """Rows of `queryset` in seq order, fetched by keyset chunks (constant memory, no long cursor)."""
    last = 0
    while True:
        chunk = list(queryset.filter(seq__gt=last).order_by("seq").values(*VERIFY_COLUMNS)[:size])
        if not chunk:
            return
        yield from chunk
        last = chunk[-1]["seq"]


def verify(organisation_id: int | None = None) -> ChainReport:
    """Walk every chain (or one organisation's) and stop at the first break."""
    from audit.models import ActivityEvent, ChainHead

    heads = {head.organisation_id: (head.seq, head.hash) for head in ChainHead.objects.all()}
    keys = set(heads) | {
        chain_key(org) for org in ActivityEvent.objects.values_list("organisation_id", flat=True).distinct()
    }
    if organisation_id is not None:
        keys = {chain_key(organisation_id)}
    report = ChainReport()
    for key in sorted(keys):
        org = None if key == NO_ORGANISATION else key
        # The same expression as the unique index on (COALESCE(organisation_id, 0), seq), so each
        # chunk is an index range instead of a scan of the whole table.
        events = ActivityEvent.objects.alias(chain=Coalesce("organisation_id", 0)).filter(chain=key)
        head = heads.get(key)
        if head is None:
            report.broken = Break(org, None, None, "its chain head is missing (deleted)")
            return report
        count, redacted, broken = verify_rows(org, iter_chunks(events), head)
        report.chains += 1
        report.events += count
        report.redacted += redacted
        if broken is not None:
            report.broken = broken
            return report
    return report
