"""What every benchmark script shares: databases of their own, percentiles, version lines."""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
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


REPO_ROOT = Path(__file__).resolve().parent.parent
DEVELOPER_DB = REPO_ROOT / "db.sqlite3"


def bench_env(url: str, *, debug: bool, secret_key: str, **extra: str) -> dict[str, str]:
    """The environment of a bench's subprocess: its own database, the project's settings, DEBUG
    off unless asked (with DEBUG on, Django keeps every query), and a stand-in SECRET_KEY and
    AUDIT_CHAIN_KEY (both required when DEBUG=0)."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "tutor.settings",
        "DEBUG": "1" if debug else "0",
        **extra,
    }
    if not debug and not os.environ.get("SECRET_KEY"):
        env["SECRET_KEY"] = secret_key
    if not debug and not os.environ.get("AUDIT_CHAIN_KEY"):
        env["AUDIT_CHAIN_KEY"] = f"{secret_key}-audit-chain"
    return env


def setup_child() -> Any:
    """django.setup() in a bench's subprocess; refuses the developer's db.sqlite3. Returns settings."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutor.settings")
    django.setup()
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3") and Path(database["NAME"]).resolve() == DEVELOPER_DB.resolve():
        raise SystemExit("refusing to benchmark against the developer's db.sqlite3; run via the parent")
    return settings


@contextmanager
def simulator_process(script: Path, env: dict[str, str]) -> Iterator[str]:
    """The platform simulator as a process of its own (`script --child-simulator`, which calls
    `serve_simulator`), on a free loopback port; yields its URL and stops it afterwards."""
    command = [sys.executable, str(script), "--child-simulator"]
    process = subprocess.Popen(
        command, env={**env, "PYTHONUNBUFFERED": "1"}, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"on (http://\S+)", line)
        if match is None:
            raise SystemExit(f"the simulator did not start: {line!r}")
        print(f"simulator: {match[1]} (pid {process.pid})", file=sys.stderr, flush=True)
        yield match[1]
    finally:
        stop(process)


def stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL if it has not ended within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def serve_simulator(*, latency_ms: int = 0) -> int:
    """Serve the simulator until terminated, printing its URL first (the parent reads it)."""
    setup_child()
    from classroom.platform.simulator import PlatformServer, SimulatorConfig

    server = PlatformServer(("127.0.0.1", 0), SimulatorConfig(latency_ms=latency_ms))
    print(f"Platform simulator on {server.url}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def free_port() -> int:
    """A loopback port that nothing listens on right now, for a server the bench starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def listening_process(
    command: list[str], *, env: dict[str, str], port: int, log: Path, timeout_s: float = 60
) -> Iterator[subprocess.Popen[bytes]]:
    """`command` as a process of its own (output to `log`), yielded once it accepts connections on
    loopback `port`, and stopped afterwards (`stop`)."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{command[0]} did not listen on {port}:\n{log.read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        print(f"{Path(command[0]).name} listening on {port} (pid {process.pid})", file=sys.stderr, flush=True)
        yield process
    finally:
        stop(process)


def child_pids(pid: int) -> list[int]:
    """The live children of process `pid` (Linux: read from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (2nd field) may hold spaces; the parent pid is 2nd after its ')'.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return sorted(children)


def peak_rss_kib(pid: int) -> int:
    """The resident-set peak of a live process (VmHWM from /proc/<pid>/status, Linux), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise ValueError(f"no VmHWM for process {pid}")
