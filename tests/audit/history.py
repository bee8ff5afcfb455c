"""Events that happened long ago, for retention: the log of a school that has used the product for years.

The clock cannot be turned back for `record`, which stamps the time under the chain head's lock,
so these events are stamped by hand and chained through `audit.chain.link`, as `record_events`
chains them, in a chain of their own (an organisation id no other row uses).
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from django.utils import timezone

from audit import chain
from audit.models import ActivityEvent, ChainHead
from audit.services import new_event

_organisation_ids = itertools.count(900_000_001)


def old_events(*, days_ago: int, count: int = 3, organisation_id: int | None = None) -> list[ActivityEvent]:
    """`count` events of a teacher's, `days_ago` days ago a minute apart, then chained and stored."""
    organisation_id = organisation_id or next(_organisation_ids)
    start = timezone.now() - timedelta(days=days_ago)
    events = [
        new_event(
            verb="alert.acknowledged",
            actor_name="ms.rivera",
            organisation_id=organisation_id,
            why="spoke to Sam's parents",
            details={"note": "Sam Jones at home"},
        )
        for _ in range(count)
    ]
    for minute, event in enumerate(events):
        event.occurred_at = start + timedelta(minutes=minute)
    last_seq, last_hash = chain.link(events, seq=1, prev_hash=chain.GENESIS)
    ActivityEvent.objects.append_chained(events)
    ChainHead.objects.create(organisation_id=organisation_id, seq=last_seq, hash=last_hash)
    return events
