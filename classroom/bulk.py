"""Many rows in one statement, where the ORM's bulk methods spend their time compiling: the
sync's mirror upserts, the dispatcher's run outcomes.

On PostgreSQL the rows go as one array per column, unnested by the server: the statement stays
short, so psycopg parses it once and caches it, where a VALUES list (or `bulk_update`'s CASE
per row and column) of hundreds of rows was built, parsed and quoted value by value in Python on
every call. On SQLite, multi-row VALUES in chunks, or one prepared statement run per row
(`executemany`, a loop in C).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from django.db import connection
from django.db.models import DateField, DateTimeField, Field, Model

# Rows per upsert statement on SQLite: well under its parameter limit (32,766).
UPSERT_CHUNK = 500


def upsert(
    model: type[Model], rows: list[dict[str, Any]], *, unique: tuple[str, ...], stamp: str = ""
) -> None:
    """INSERT ... ON CONFLICT DO UPDATE of rows given as dicts of field values.

    The hot path of a sync, where `bulk_create(update_conflicts=True)` spent most of the run
    compiling statements and preparing values, and psycopg quoting a VALUES list value by value
    was three quarters of the CPU of a 1,000-student sync.

    With `stamp` (a column such as `synced_at`), a row the platform sent again unchanged is left
    as it is, stamp included: the stamp says when the row last changed, and a full re-sync of
    unchanged data writes no row versions, WAL or index entries.
    """
    if not rows:
        return
    names = list(rows[0])
    fields = [model._meta.get_field(name) for name in names]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(field.column) for field in fields)
    updated = [field.column for name, field in zip(names, fields, strict=True) if name not in unique]
    conflict = ", ".join(quote(model._meta.get_field(name).column) for name in unique)
    on_conflict = f"ON CONFLICT ({conflict}) DO UPDATE SET " + ", ".join(
        f"{quote(column)} = excluded.{quote(column)}" for column in updated
    )
    if stamp:
        distinct = "IS DISTINCT FROM" if connection.vendor == "postgresql" else "IS NOT"
        on_conflict += " WHERE " + " OR ".join(
            f"{table}.{quote(column)} {distinct} excluded.{quote(column)}"
            for column in updated
            if column != model._meta.get_field(stamp).column
        )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}) {on_conflict}",
                [[row[name] for row in rows] for name in names],
            )
            return
        adapters = [_adapter(field) for field in fields]
        row_sql = f"({', '.join(['%s'] * len(names))})"
        for start in range(0, len(rows), UPSERT_CHUNK):
            chunk = rows[start : start + UPSERT_CHUNK]
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([row_sql] * len(chunk))} {on_conflict}",
                [
                    adapt(row[name]) if adapt else row[name]
                    for row in chunk
                    for name, adapt in zip(names, adapters, strict=True)
                ],
            )


def _adapter(field: Field) -> Callable[[Any], Any] | None:
    if isinstance(field, DateTimeField):
        return connection.ops.adapt_datetimefield_value
    if isinstance(field, DateField):
        return connection.ops.adapt_datefield_value
    return None


def update(objects: Sequence[Model], fields: Sequence[str]) -> None:
    """Write `fields` of every object (all of one model, saved before) in one statement, as
    `bulk_update` would, without its CASE per row and column: on a batch of 200 dispatcher runs
    that compilation was half the pass's CPU. No signals are sent (as with `bulk_update`).

    On PostgreSQL the rows go as one JSON document the server reads as a table
    (`jsonb_to_recordset`): psycopg quotes a single string, where arrays of text (`unnest`) were
    escaped element by element in Python, a sixth of the dispatcher's CPU."""
    if not objects:
        return
    meta = objects[0]._meta
    chosen = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    pk = meta.pk
    columns = [pk, *chosen]
    rows = [
        [field.get_db_prep_save(getattr(obj, field.attname), connection) for field in columns]
        for obj in objects
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            shape = ", ".join(f"{quote(field.column)} {field.db_type(connection)}" for field in columns)
            sets = ", ".join(f"{quote(field.column)} = v.{quote(field.column)}" for field in chosen)
            document = [
                {field.column: value for field, value in zip(columns, row, strict=True)} for row in rows
            ]
            cursor.execute(
                f"UPDATE {table} SET {sets} FROM jsonb_to_recordset(%s::jsonb) AS v({shape}) "
                f"WHERE {table}.{quote(pk.column)} = v.{quote(pk.column)}",
                [json.dumps(document, default=_iso)],
            )
            return
        sets = ", ".join(f"{quote(field.column)} = %s" for field in chosen)
        cursor.executemany(
            f"UPDATE {table} SET {sets} WHERE {quote(pk.column)} = %s", [[*row[1:], row[0]] for row in rows]
        )


def _iso(value: Any) -> str:
    """Times and dates for the JSON document, to the microsecond (PostgreSQL reads the offset)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a column value bulk.update can send")
