"""PostgreSQL advisory locks for writers that must take turns.

Held until the surrounding transaction ends, so call inside `transaction.atomic()`. SQLite
already serialises every write transaction, so there is nothing to take there.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection


def advisory_xact_lock(key: str) -> None:
    """Wait until no other transaction holds `key`; distinct keys never block each other."""
    advisory_xact_locks([key])


def advisory_xact_locks(keys: Iterable[str]) -> None:
    """Take every key, in one round trip. They are taken in sorted order, the same in every
    transaction, so two writers whose key sets overlap wait for each other and never deadlock."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # unnest() yields the array in its order, and the lock calls run row by row in it.
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(key, 0)) FROM unnest(%s::text[]) AS key",
                [sorted(set(keys))],
            )
