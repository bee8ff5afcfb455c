"""What every benchmark script shares: databases of their own, percentiles, version lines."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def positive_int(value: str) -> int:
    """A count on the command line, written plainly or as 1_000_000 or 1,000,000."""
    number = int(value.replace("_", "").replace(",", ""))
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


@contextmanager
def postgres_database(server_url: str, name: str, *, keep: bool = False) -> Iterator[str]:
    """A fresh PostgreSQL database `name` on the server, dropped afterwards (even when the run
    fails) unless `keep`; yields its DATABASE_URL."""
    import psycopg
    from psycopg import sql

    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(server_url, name)
    finally:
        if keep:
            print(f"kept the database {name}", file=sys.stderr)
        else:
            with psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute(drop)


def database_url(server_url: str, name: str) -> str:
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


@contextmanager
def database_for(name: str, *, server_url: str | None, tmp: Path) -> Iterator[str]:
    """A DATABASE_URL for one configuration: a fresh SQLite file in `tmp`, or a fresh PostgreSQL
    database on `server_url` that is dropped afterwards."""
    if server_url is None:
        yield f"sqlite:///{tmp / f'{name}.sqlite3'}"
        return
    with postgres_database(server_url, name) as url:
        yield url


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least pct% of samples at or below it."""
    ordered = sorted(samples)
    return ordered[max(math.ceil(pct / 100 * len(ordered)), 1) - 1]


def django_version() -> str:
    import django

    return django.get_version()
