"""Signed checkpoints: a copy of each organisation's chain head that leaves the database.

Deleting the newest events and moving the head back to the last one left (SQLite cannot stop it;
PostgreSQL's trigger refuses it, except to the tables' owner) leaves a chain whose every hash is
genuine: only a copy of the head kept elsewhere shows what is gone. Every day
(`AUDIT_CHECKPOINT_CRON`) the head of each organisation's chain (organisation, seq, hash, time, key
id) is signed with the chain key (under the key derived for checkpoints, so that a signature is
never also an event hash), recorded as an `audit.checkpoint` event, and sent as a JSON document to
the organisation's notification channels (`audit.notify`), where the recipient saves it.
`python manage.py verify_audit --checkpoint FILE` checks the signature, that the event at its seq
still carries its hash, and that the chain has not shrunk below it.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit import chain
from audit.models import ChainHead, Checkpoint, Failure
from audit.services import record, record_failure

KIND = "proactive-tutor.audit-checkpoint"
ACTOR = "system:checkpoint"
SIGNED = ("kind", "organisation_id", "seq", "hash", "taken_at", "key_id")
FIELDS: dict[str, type] = {
    "organisation_id": int,
    "seq": int,
    "hash": str,
    "taken_at": str,
    "key_id": str,
    "signature": str,
}


class NotACheckpointError(ValueError):
    """A file that is not a checkpoint document; the message says what is wrong with it."""


def document(checkpoint: Checkpoint) -> dict[str, Any]:
    """The checkpoint as the JSON document that is sent, saved, and given to verify_audit."""
    return {
        "kind": KIND,
        "organisation_id": checkpoint.organisation_id,
        "seq": checkpoint.seq,
        "hash": checkpoint.hash,
        "taken_at": checkpoint.taken_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
    }


def signature(fields: Mapping[str, Any], key: chain.ChainKey) -> str:
    return hmac.digest(key.checkpoint, chain.canonical([fields[name] for name in SIGNED]), "sha256").hex()


def checkpoint_take(*, organisation_id: int, now: datetime | None = None) -> Checkpoint | None:
    """Sign the organisation's chain head and record it as an `audit.checkpoint` event.

    One a day (in TIME_ZONE): None if the organisation has one from today already, so a job run
    twice takes one (its own event and its deliveries move the head, so "nothing new since" could
    not tell), and None for a chain without events. A head that is not the hash of the event it
    points at is not signed: a high-severity failure is recorded instead, which the notifier sends
    to the organisation's channels.
    """
    now = now or timezone.now()
    with transaction.atomic():
        head = ChainHead.objects.select_for_update().filter(organisation_id=organisation_id).first()
        if head is None or head.seq == 0:
            return None
        latest = Checkpoint.objects.filter(organisation_id=organisation_id).order_by("-seq").first()
        if latest is not None and timezone.localdate(latest.taken_at) == timezone.localdate(now):
            return None
        newest = chain.chain_events(organisation_id).filter(seq=head.seq).values_list("hash", flat=True)
        if head.hash not in newest:
            _refuse_to_sign(head)
            return None
        key = chain.keyring().current
        checkpoint = Checkpoint(
            organisation_id=organisation_id,
            seq=head.seq,
            hash=head.hash,
            taken_at=now,
            key_id=key.id,
        )
        checkpoint.signature = signature(document(checkpoint), key)
        checkpoint.save()
        record(
            verb="audit.checkpoint",
            actor_name=ACTOR,
            target=checkpoint,
            why=f"the chain head at seq {head.seq} signed, to be sent to the notification channels",
            details={"checkpoint": document(checkpoint)},
        )
    return checkpoint


def _refuse_to_sign(head: ChainHead) -> None:
    record_failure(
        verb="audit.checkpoint_failed",
        actor_name=ACTOR,
        organisation_id=head.organisation_id,
        target_type="audit.chainhead",
        target_id=head.organisation_id,
        severity=Failure.Severity.HIGH,
        why=f"the audit chain head of organisation {head.organisation_id} (seq {head.seq}) is not the "
        "hash of its newest event: no checkpoint was signed",
        remediation="run `python manage.py verify_audit` to name the break, and investigate who had "
        "write access to the database",
    )


def checkpoints_take(*, now: datetime | None = None) -> list[Checkpoint]:
    """Today's checkpoint of every organisation's chain, each in its own transaction (the chain
    of no organisation has no channels to go to)."""
    organisations = (
        ChainHead.objects.exclude(organisation_id=chain.NO_ORGANISATION)
        .filter(seq__gt=0)
        .order_by("organisation_id")
        .values_list("organisation_id", flat=True)
    )
    taken = [checkpoint_take(organisation_id=org, now=now) for org in organisations]
    return [checkpoint for checkpoint in taken if checkpoint is not None]


# Checking a saved checkpoint against the log -----------------------------------------------------


def parse(text: str) -> dict[str, Any]:
    """The checkpoint document in `text` (NotACheckpointError if it is not one)."""
    try:
        found = json.loads(text)
    except ValueError as error:
        raise NotACheckpointError(f"it is not JSON ({error})") from error
    if not isinstance(found, dict) or found.get("kind") != KIND:
        raise NotACheckpointError(f'it has no "kind": "{KIND}"')
    wrong = [
        name
        for name, kind in FIELDS.items()
        if not isinstance(found.get(name), kind) or isinstance(found.get(name), bool)
    ]
    if wrong:
        raise NotACheckpointError(f"missing or malformed: {', '.join(wrong)}")
    return found


def check(found: Mapping[str, Any], ring: chain.Keyring | None = None) -> chain.Break | None:
    """Whether the log still holds what the checkpoint saw; the break if not."""
    org, seq = found["organisation_id"], found["seq"]

    def broken(problem: str) -> chain.Break:
        return chain.Break(org, None, seq, problem, checkpoint=True)

    key = (ring or chain.keyring()).get(found["key_id"])
    if key is None:
        return broken(chain.unknown_key(found["key_id"], made="signed"))
    if not hmac.compare_digest(signature(found, key), found["signature"]):
        return broken("its signature does not match (forged or edited)")
    hashes = list(chain.chain_events(chain.chain_key(org)).filter(seq=seq).values_list("hash", flat=True))
    if not hashes:
        last = chain.last_seq(org)
        if last is None:
            return broken("the chain has no events left (all deleted)")
        if last < seq:
            return broken(f"the chain has shrunk to seq {last} (the events after it were deleted)")
        return broken("the event at that seq is missing (deleted)")
    if found["hash"] not in hashes:
        return broken("the event at that seq no longer carries the checkpoint's hash (rewritten)")
    head = (
        ChainHead.objects.filter(organisation_id=chain.chain_key(org)).values_list("seq", flat=True).first()
    )
    if head is not None and head < seq:
        return broken(f"the chain head was moved back to seq {head}, below the checkpoint")
    return None


def describe(found: Mapping[str, Any]) -> str:
    return f"the checkpoint of organisation {found['organisation_id']} at seq {found['seq']}"
