"""Tamper evidence: every event is hashed into a keyed chain per organisation.

An event's hash is an HMAC-SHA256 under the chain key (`AUDIT_CHAIN_KEY`, from the environment,
never the database) over its sequence number in its organisation's chain, every column that says
what happened, the id of the key, and the hash of the event before it. Whoever can write the tables
but cannot read the settings can change rows, but cannot make hashes that verify. The personal
columns (actor name, rationale, details) enter through their own keyed digest, so retention can
later blank them and the chain still verifies: a redacted event keeps the digest of what it said,
and the key stops anyone confirming a guess of what that was.

The head of each chain (its last sequence number and hash) lives in `ChainHead`; appending takes a
locking read of that row and then moves it once, so the events of one organisation are chained one
at a time, in commit order. Deleting the newest events shows as a head that points past the end of
the log; deleting them and moving the head back (PostgreSQL's trigger refuses that, SQLite has
none) shows against a signed checkpoint kept outside the database (`audit.checkpoints`).

Keys rotate: each event names the key it was hashed under (`key_id`, itself covered by the hash);
new events use `AUDIT_CHAIN_KEY`/`AUDIT_CHAIN_KEY_ID`, older ones verify with the keys listed in
`AUDIT_CHAIN_RETIRED_KEYS`, and an event under a key in neither is a break.
"""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Max
from django.db.models.functions import Coalesce

GENESIS = "0" * 64
NO_ORGANISATION = 0  # the chain of events that belong to no organisation (e.g. a failed sign-in)
REDACTED = "[redacted]"
REDACTED_DETAILS: dict[str, Any] = {"redacted": True}
# An `audit.redacted` event names its cut-off as its target: a hashed column that is not personal,
# so it outlives the redaction of that event itself.
REDACTION_VERB = "audit.redacted"
REDACTION_CUTOFF = "audit.retention_cutoff"
KEY_ID_MAX = 32
PURPOSES = ("event", "personal", "checkpoint")  # of the keys derived from each chain key, in ChainKey's order

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
    "key_id",
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


# Keys --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainKey:
    """One configured key, as the three keys derived from it: a value made for one purpose (an
    event hash, a personal digest, a checkpoint signature) is never valid as another."""

    id: str
    event: bytes
    personal: bytes
    checkpoint: bytes


@dataclass(frozen=True)
class Keyring:
    current: ChainKey
    by_id: dict[str, ChainKey]

    def get(self, key_id: str) -> ChainKey | None:
        return self.by_id.get(key_id)


class UnknownKeyError(LookupError):
    def __init__(self, key_id: str) -> None:
        super().__init__(key_id)
        self.key_id = key_id


def unknown_key(key_id: str, *, made: str = "hashed") -> str:
    return (
        f"{made} under key id {key_id!r}, which is neither AUDIT_CHAIN_KEY_ID nor in AUDIT_CHAIN_RETIRED_KEYS"
    )


def keyring() -> Keyring:
    """The chain keys of the settings: the current one and the retired ones, by id."""
    return _keyring(
        settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_ID, tuple(settings.AUDIT_CHAIN_RETIRED_KEYS)
    )


@functools.lru_cache(maxsize=8)
def _keyring(secret: str, key_id: str, retired: tuple[str, ...]) -> Keyring:
    _check_key_id(key_id, "AUDIT_CHAIN_KEY_ID")
    current = _derive(key_id, secret)
    by_id = {key_id: current}
    for number, entry in enumerate(retired, start=1):
        old_id, _, old_secret = entry.partition(":")
        if not old_id or not old_secret:
            # The entry itself is a secret: say which one, never what it says.
            raise ImproperlyConfigured(
                f"AUDIT_CHAIN_RETIRED_KEYS entries are id:secret, separated by commas; entry {number} is not"
            )
        _check_key_id(old_id, f"the id of AUDIT_CHAIN_RETIRED_KEYS entry {number}")
        if old_id in by_id:
            raise ImproperlyConfigured(f"AUDIT_CHAIN_RETIRED_KEYS names the key id {old_id!r} twice")
        by_id[old_id] = _derive(old_id, old_secret)
    return Keyring(current=current, by_id=by_id)


def _check_key_id(key_id: str, name: str) -> None:
    if not key_id or len(key_id) > KEY_ID_MAX or any(c in key_id for c in ":, \t\n"):
        raise ImproperlyConfigured(f"{name} must be 1 to {KEY_ID_MAX} characters without ':', ',' or spaces")


def _derive(key_id: str, secret: str) -> ChainKey:
    raw = secret.encode()
    derived = (hmac.digest(raw, f"proactive-tutor audit {p}".encode(), "sha256") for p in PURPOSES)
    return ChainKey(key_id, *derived)


def _key(key_id: str) -> ChainKey:
    key = keyring().get(key_id)
    if key is None:
        raise UnknownKeyError(key_id)
    return key


# Hashing -----------------------------------------------------------------------------------------


def personal_digest(actor_name: str, why: str, details: Any, *, key: ChainKey | None = None) -> str:
    """The keyed digest of an event's personal columns (under the current key unless given)."""
    key = key or keyring().current
    return hmac.digest(key.personal, canonical([actor_name, why, details]), "sha256").hex()


def event_hash(prev_hash: str, fields: dict[str, Any], *, key: ChainKey | None = None) -> str:
    """The hash of one event after `prev_hash`, under the key its `key_id` names (or `key`)."""
    key = key or _key(fields["key_id"])
    message = prev_hash.encode() + canonical([fields[name] for name in HASHED])
    return hmac.digest(key.event, message, "sha256").hex()


def link(events: Iterable[Any], *, seq: int, prev_hash: str) -> tuple[int, str]:
    """Give each event (in order) its place after `prev_hash`, starting at `seq`, under the
    current key: seq, key id, personal digest and hash. Returns the last seq and hash, the new head.
    `audit.services.record_events` calls it with the chain's head locked."""
    key = keyring().current
    last = seq - 1
    for event in events:
        event.seq, event.key_id = last + 1, key.id
        event.personal_digest = personal_digest(event.actor_name, event.why, event.details, key=key)
        event.hash = prev_hash = event_hash(prev_hash, {**vars(event), "actor_id": event.actor_id}, key=key)
        last = event.seq
    return last, prev_hash


# The head ----------------------------------------------------------------------------------------


class ChainHeadMissingError(RuntimeError):
    """A chain has events but no head: appending would restart it at seq 1 over its own events."""


def chain_key(organisation_id: int | None) -> int:
    return NO_ORGANISATION if organisation_id is None else organisation_id


def lock_head(organisation_id: int | None) -> tuple[int, str]:
    """Lock the organisation's chain head until the transaction ends; return its (seq, hash).

    Must run inside the transaction that inserts the events and then calls `move_head`. On
    PostgreSQL the row lock serialises the chain's writers; SQLite transactions here begin
    IMMEDIATE (settings), so the writer already holds the database's write lock. A chain's first
    event creates its head at seq 0.
    """
    key = chain_key(organisation_id)
    lock = "SELECT seq, hash FROM audit_chainhead WHERE organisation_id = %s"
    if connection.features.has_select_for_update:
        lock += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(lock, [key])
        row = cursor.fetchone()
        if row is None:
            cursor.execute(
                "SELECT 1 FROM audit_activityevent WHERE COALESCE(organisation_id, 0) = %s LIMIT 1", [key]
            )
            if cursor.fetchone() is not None:
                raise ChainHeadMissingError(
                    f"the chain head of {_chain_name(key)} is missing but its events are not: "
                    "run `python manage.py verify_audit`"
                )
            cursor.execute(
                "INSERT INTO audit_chainhead (organisation_id, seq, hash) VALUES (%s, 0, %s) "
                "ON CONFLICT (organisation_id) DO NOTHING",
                [key, GENESIS],
            )
            cursor.execute(lock, [key])
            row = cursor.fetchone()
    return int(row[0]), str(row[1])


def move_head(organisation_id: int | None, *, seq: int, hash: str) -> None:
    """Move a head locked by `lock_head` forward, in the one UPDATE PostgreSQL's trigger allows."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_chainhead SET seq = %s, hash = %s WHERE organisation_id = %s",
            [seq, hash, chain_key(organisation_id)],
        )


# Verification ------------------------------------------------------------------------------------


def _chain_name(organisation_id: int | None) -> str:
    if organisation_id in (None, NO_ORGANISATION):
        return "no organisation"
    return f"organisation {organisation_id}"


@dataclass(frozen=True)
class Break:
    """One place the log does not hold, in words an operator can act on."""

    organisation_id: int | None
    event_id: int | None
    seq: int | None
    problem: str
    checkpoint: bool = False

    def __str__(self) -> str:
        org = _chain_name(self.organisation_id)
        if self.checkpoint:
            where = f"the checkpoint of {org} at seq {self.seq}"
        elif self.event_id:
            where = f"event {self.event_id} (seq {self.seq} of {org})"
        else:
            where = f"the chain of {org}"
        return f"{where}: {self.problem}"


@dataclass
class ChainReport:
    chains: int = 0
    events: int = 0
    redacted: int = 0
    breaks: list[Break] = field(default_factory=list)

    @property
    def broken(self) -> Break | None:
        return self.breaks[0] if self.breaks else None


VERIFY_COLUMNS = ("id", *HASHED, "actor_name", "why", "details", "hash", "redacted_at")


def verify_rows(
    organisation_id: int | None,
    rows: Iterable[dict[str, Any]],
    head: tuple[int, str] | None,
    *,
    ring: Keyring | None = None,
    redacted_before: datetime | None = None,
) -> tuple[int, int, Break | None]:
    """Check one organisation's events in sequence order against each other and the chain head.

    `redacted_before` is the latest cut-off of an authentic retention run: a redacted event must
    be older. Returns (events checked, redacted events, first break or None).
    """
    ring = ring or keyring()
    prev_hash, expected_seq, prev_id, prev_time = GENESIS, 1, 0, None
    count = redacted = 0
    for row in rows:
        count += 1
        problem = _problem(row, prev_hash, expected_seq, prev_id, prev_time, ring, redacted_before)
        if problem is not None:
            return count, redacted, Break(organisation_id, row["id"], row["seq"], problem)
        redacted += row["redacted_at"] is not None
        prev_hash, expected_seq, prev_id, prev_time = (
            row["hash"],
            row["seq"] + 1,
            row["id"],
            row["occurred_at"],
        )
    return count, redacted, _head_problem(organisation_id, head, count, expected_seq - 1, prev_hash)


def _problem(
    row: dict[str, Any],
    prev_hash: str,
    expected_seq: int,
    prev_id: int,
    prev_time: datetime | None,
    ring: Keyring,
    redacted_before: datetime | None,
) -> str | None:
    seq = row["seq"]
    if prev_id and seq == expected_seq - 1:
        return f"seq {seq} appears twice (duplicated)"
    if seq > expected_seq:
        missing = "is missing" if seq == expected_seq + 1 else f"to {seq - 1} are missing"
        return f"expected seq {expected_seq}; event seq {expected_seq} {missing} (deleted)"
    if seq < expected_seq:
        return f"expected seq {expected_seq}; seq {seq} is out of order"
    if row["id"] <= prev_id or (prev_time is not None and row["occurred_at"] < prev_time):
        return "out of order with the event before it (reordered)"
    key = ring.get(row["key_id"])
    if key is None:
        return unknown_key(row["key_id"])
    # The hash first: it covers the stored digest, so a mismatch here is the row itself (or the
    # chain re-hashed); a digest that does not match below is the personal columns alone.
    if event_hash(prev_hash, row, key=key) != row["hash"]:
        return "content does not match its hash (edited, or re-hashed without the chain key)"
    if row["redacted_at"] is None:
        if personal_digest(row["actor_name"], row["why"], row["details"], key=key) != row["personal_digest"]:
            return "actor, rationale or details were edited"
    elif (
        row["actor_name"] != REDACTED
        or row["why"] not in ("", REDACTED)
        or row["details"] != REDACTED_DETAILS
    ):
        return "a redacted event was written to after redaction"
    elif redacted_before is None or row["occurred_at"] >= redacted_before:
        return "redacted before its retention age (no authentic audit.redacted event has a cut-off after it)"
    return None


def _head_problem(
    organisation_id: int | None, head: tuple[int, str] | None, count: int, last_seq: int, last_hash: str
) -> Break | None:
    here = {"organisation_id": organisation_id, "event_id": None, "seq": None}
    if head is None:
        return Break(**here, problem="its chain head is missing (deleted)") if count else None
    seq, hash_ = head
    if seq > last_seq:
        ends = f"the log ends at seq {last_seq}" if count else "the log has no events left"
        return Break(
            **here,
            problem=f"the head records {seq} events but {ends}: the newest events were deleted "
            "(or the head was edited)",
        )
    if seq < last_seq:
        return Break(
            **here,
            problem=f"the head records {seq} events but the log goes on to seq {last_seq} "
            "(the head was rolled back)",
        )
    if hash_ != last_hash:
        return Break(
            **here, problem=f"the head's hash is not that of event seq {last_seq} (the head was edited)"
        )
    return None


def chain_events(key: int) -> Any:
    """One chain's events. The same expression as the unique index on (COALESCE(organisation_id,
    0), seq), so a filter on seq is an index range instead of a scan of the whole table."""
    from audit.models import ActivityEvent

    return ActivityEvent.objects.alias(chain=Coalesce("organisation_id", 0)).filter(chain=key)


def iter_chunks(queryset: Any, size: int = 5000) -> Iterator[dict[str, Any]]:
    """Rows of `queryset` in (seq, id) order, fetched by keyset chunks (constant memory, no long
    cursor). A chunk ends after the whole of its last seq, so a duplicated seq is never skipped."""
    last = 0
    ordered = queryset.order_by("seq", "id").values(*VERIFY_COLUMNS)
    while True:
        chunk = list(ordered.filter(seq__gt=last)[:size])
        if not chunk:
            return
        if len(chunk) == size:
            boundary = chunk[-1]["seq"]
            chunk = [row for row in chunk if row["seq"] != boundary] + list(ordered.filter(seq=boundary))
        yield from chunk
        last = chunk[-1]["seq"]


def latest_redaction_cutoff(ring: Keyring | None = None) -> datetime | None:
    """The latest cut-off of a retention run whose `audit.redacted` event is authentic: hashed
    under a chain key after the event before it. A retention run blanks every event before its
    cut-off, so a redacted event younger than this one was blanked by someone else."""
    from audit.models import ActivityEvent

    ring = ring or keyring()
    runs = list(ActivityEvent.objects.filter(verb=REDACTION_VERB).values(*VERIFY_COLUMNS))
    prev_hashes: dict[tuple[int, int], str] = {}
    for key in {chain_key(run["organisation_id"]) for run in runs}:
        wanted = [run["seq"] - 1 for run in runs if chain_key(run["organisation_id"]) == key]
        prev_hashes.update(
            ((key, seq), hash_)
            for seq, hash_ in chain_events(key).filter(seq__in=wanted).values_list("seq", "hash")
        )
    latest = None
    for run in runs:
        key = ring.get(run["key_id"])
        prev_hash = (
            GENESIS
            if run["seq"] == 1
            else prev_hashes.get((chain_key(run["organisation_id"]), run["seq"] - 1))
        )
        if key is None or prev_hash is None or event_hash(prev_hash, run, key=key) != run["hash"]:
            continue
        cutoff = _cutoff_of(run, key)
        if cutoff is not None and (latest is None or cutoff > latest):
            latest = cutoff
    return latest


def _cutoff_of(run: dict[str, Any], key: ChainKey) -> datetime | None:
    # Runs recorded before the cut-off became the target kept it in their details only, which
    # count while they are unredacted and match their digest.
    details = run["details"] if isinstance(run["details"], dict) else {}
    if run["target_type"] == REDACTION_CUTOFF:
        moment = run["target_id"]
    elif run["redacted_at"] is None and (
        personal_digest(run["actor_name"], run["why"], details, key=key) == run["personal_digest"]
    ):
        moment = details.get("cutoff")
    else:
        return None
    try:
        cutoff = datetime.fromisoformat(moment)
    except (TypeError, ValueError):
        return None
    return cutoff if cutoff.tzinfo else cutoff.replace(tzinfo=UTC)


def last_seq(organisation_id: int | None) -> int | None:
    return chain_events(chain_key(organisation_id)).aggregate(last=Max("seq"))["last"]


def verify(organisation_id: int | None = None) -> ChainReport:
    """Walk every chain (or one organisation's) and name the first break of each broken one."""
    from audit.models import ActivityEvent, ChainHead

    ring = keyring()
    heads = {head.organisation_id: (head.seq, head.hash) for head in ChainHead.objects.all()}
    keys: Sequence[int] = sorted(
        set(heads)
        | {
            chain_key(org)
            for org in ActivityEvent.objects.values_list("organisation_id", flat=True).distinct()
        }
    )
    if organisation_id is not None:
        keys = [chain_key(organisation_id)]
    redacted_before = latest_redaction_cutoff(ring)
    report = ChainReport()
    for key in keys:
        org = None if key == NO_ORGANISATION else key
        count, redacted, broken = verify_rows(
            org, iter_chunks(chain_events(key)), heads.get(key), ring=ring, redacted_before=redacted_before
        )
        report.chains += 1
        report.events += count
        report.redacted += redacted
        if broken is not None:
            report.breaks.append(broken)
    return report
