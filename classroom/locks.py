"""PostgreSQL advisory locks for writers that must take turns.

Held until the surrounding transaction ends, so call inside `transaction.atomic()`. SQLite
already serialises every write transaction, so there is nothing to take there.
"""

from __future__ import annotations

from django.db import connection


def advisory_xact_lock(key: str) -> None:
    """Wait until no other transaction holds `key`; distinct keys never block each other."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])
