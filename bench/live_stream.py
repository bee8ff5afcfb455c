"""The live dashboard's server-sent events at 1,000 open tabs (issue 15): how soon a tick reaches
every `/live/<id>/stream/` open on it, served as in production (uvicorn, `tutor.asgi`).

Usage, from the repo root:

    .venv/bin/python bench/live_stream.py [--sessions 200] [--tabs 5] [--workers 1] [--ticks 24]

Goal: delivery p95 under 1 s at 1,000 connected clients, no tick lost.

Method
1. A PostgreSQL database of its own (`bench_live_stream`, dropped afterwards). A subprocess
   migrates it, starts `--sessions` live sessions (a class and a signed-in teacher each) and joins
   30 participants to each through `signals_ingest`, so every tick's panel names its time
   ("Engagement is ..., at 10:41:15."), and ticks the five minutes before now (a full chart, as
   in a class in progress); each tab gets a session cookie of its own.
2. uvicorn serves `tutor.asgi:application` with `--workers`, DEBUG=0, LIVE_STREAM_SECONDS longer
   than the run (no reconnects inside it).
3. A client process opens `--sessions` x `--tabs` streams over raw asyncio sockets (HTTP/1.1,
   chunked) and waits until every one has its first panel.
4. A tick process calls `classroom.live.services.tick(all sessions)` on each 5-s boundary
   `--ticks` times and notes the wall time when each tick returned (committed).
5. A delivery is the wall time a tab parsed the `event: tick` frame naming that tick, minus the
   tick's commit; a tick a tab never got (by 5 s after the last) is lost. Server CPU is the
   uvicorn processes' user+system time over the ticking, as a share of one core; queries per
   second the database's committed transactions (pg_stat_database) over the same time; memory
   per connection the rise of the workers' resident set while the tabs connected.

Caveats: PostgreSQL, uvicorn, the ticker and the clients share the machine's 2 cores; the
client's CPU is printed so it can be seen not to be the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.common import (  # noqa: E402 - after the repo root is on sys.path
    bench_env,
    child_pids,
    free_port,
    listening_process,
    percentile,
    positive_int,
    postgres_database,
    setup_child,
)

PARTICIPANTS = 30
PERIOD_S = 5
HISTORY_S = 300  # the chart's five minutes
GOAL_S = 1.0
LABEL = re.compile(rb", at (\d\d:\d\d:\d\d)\.")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_setup:
        return child_setup(args.sessions, args.tabs, Path(args.child_setup))
    if args.child_ticker:
        return child_ticker(Path(args.child_ticker), args.ticks)
    if args.child_clients:
        return asyncio.run(child_clients(Path(args.child_clients), args.port))
    with (
        tempfile.TemporaryDirectory(prefix="bench-live-stream-") as tmp,
        postgres_database(args.database_url, "bench_live_stream") as url,
        psycopg.connect(args.database_url, autocommit=True) as stats,
    ):
        run_s = (args.ticks + 2) * PERIOD_S + 600
        env = bench_env(
            url,
            debug=False,
            secret_key="bench-live-stream-not-a-secret",
            ALLOWED_HOSTS="127.0.0.1",
            LOG_LEVEL="WARNING",
            LIVE_STREAM_SECONDS=str(run_s),
            LIVE_STREAM_POLL_SECONDS=str(args.poll),
        )
        setup = Path(tmp) / "setup.json"
        me = [sys.executable, __file__, f"--sessions={args.sessions}", f"--tabs={args.tabs}"]
        subprocess.run([*me, f"--child-setup={setup}"], env=env, cwd=REPO_ROOT, check=True)
        port = free_port()
        uvicorn = [str(Path(sys.executable).parent / "uvicorn"), "tutor.asgi:application"]
        uvicorn += ["--host=127.0.0.1", f"--port={port}", f"--workers={args.workers}", "--no-access-log"]
        log = Path(tmp) / "uvicorn.log"
        with listening_process(uvicorn, env=env, port=port, log=log) as web:
            time.sleep(2)  # every worker up
            server = [web.pid, *child_pids(web.pid)]
            rss_before = sum(_status(pid, "VmRSS") for pid in server)
            clients = subprocess.Popen(
                [*me, f"--port={port}", f"--child-clients={setup}"],
                env=env,
                cwd=REPO_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert clients.stdin and clients.stdout
            connected = json.loads(clients.stdout.readline())
            rss_after = sum(_status(pid, "VmRSS") for pid in server)
            threads = sum(_status(pid, "Threads") for pid in server)
            cpu, commits, started = _cpu_s([*server, clients.pid]), _commits(stats), time.time()
            ticker = subprocess.run(
                [*me, f"--ticks={args.ticks}", f"--child-ticker={setup}"],
                env=env,
                cwd=REPO_ROOT,
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(PERIOD_S)
            elapsed = time.time() - started
            cpu = [b - a for a, b in zip(cpu, _cpu_s([*server, clients.pid]), strict=True)]
            commits = _commits(stats) - commits
            clients.stdin.close()
            received = json.loads(clients.stdout.read())
            clients.wait()
            errors = [line for line in log.read_text().splitlines() if "Error" in line][-1:]
    ticks = [json.loads(line) for line in ticker.stdout.splitlines()]
    refused = [got for got in received if "refused" in got]
    if refused:
        print(f"{len(refused)} streams refused; the server's last error: {errors}", file=sys.stderr)
    latencies, lost = [], 0
    for got in (got for got in received if "refused" not in got):
        for t in ticks:
            if t["label"] in got:
                latencies.append(got[t["label"]] - t["committed"])
            else:
                lost += 1
    latencies = latencies or [float("inf")]
    rows = [
        ("clients (sessions x tabs)", f"{len(received)} ({args.sessions} x {args.tabs})"),
        ("uvicorn workers, poll", f"{args.workers}, {args.poll:g} s"),
        ("connect, all first panels", f"{connected['seconds']:.1f} s"),
        (
            "ticks (5 s apart)",
            f"{len(ticks)}, tick() p50 {percentile([t['seconds'] for t in ticks], 50):.2f} s",
        ),
        *((f"delivery p{p}", f"{percentile(latencies, p):.3f} s") for p in (50, 95, 99)),
        ("delivery max", f"{max(latencies):.3f} s"),
        ("streams refused", f"{len(refused)}"),
        ("frames lost (streams served)", f"{lost} of {(len(received) - len(refused)) * len(ticks)}"),
        ("server threads", str(threads)),
        ("server CPU (share of a core)", f"{sum(cpu[:-1]) / elapsed:.0%}"),
        ("client CPU (share of a core)", f"{cpu[-1] / elapsed:.0%}"),
        ("database transactions/s", f"{commits / elapsed:.0f}"),
        ("memory per connection", f"{(rss_after - rss_before) / len(received):.0f} KiB"),
    ]
    goal = "met" if percentile(latencies, 95) < GOAL_S and lost == len(refused) == 0 else "MISSED"
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))
    print(f"goal (p95 < {GOAL_S:.0f} s, nothing lost): {goal}")
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="SSE delivery of live ticks to many open tabs.")
    parser.add_argument("--sessions", type=positive_int, default=200, help="live sessions (200)")
    parser.add_argument("--tabs", type=positive_int, default=5, help="open tabs per session (5)")
    parser.add_argument("--workers", type=positive_int, default=1, help="uvicorn workers (1)")
    parser.add_argument("--poll", type=float, default=1.0, help="LIVE_STREAM_POLL_SECONDS (1)")
    parser.add_argument("--ticks", type=positive_int, default=24, help="ticks, 5 s apart (24: 2 minutes)")
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="the PostgreSQL server, where a database bench_live_stream is made and dropped",
    )
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    for child in ("setup", "ticker", "clients"):
        parser.add_argument(f"--child-{child}", help=argparse.SUPPRESS)  # internal: the subprocesses
    return parser.parse_args(argv)


def child_setup(sessions: int, tabs: int, output: Path) -> int:
    settings = setup_child()
    from importlib import import_module

    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.core.management import call_command
    from django.utils import timezone

    from classroom.live.services import Event, session_start, signals_ingest, tick
    from classroom.models import Organisation, SchoolClass, TeacherAssignment, User

    call_command("migrate", interactive=False, verbosity=0)
    organisation = Organisation.objects.create(name="Bench school", slug="bench-school")
    store = import_module(settings.SESSION_ENGINE).SessionStore
    now = timezone.now()
    begun = now - timedelta(seconds=2 * HISTORY_S)
    streams = []
    for n in range(sessions):
        school_class = SchoolClass.objects.create(
            organisation=organisation, name=f"Live {n}", platform_id=f"live-{n:04d}"
        )
        teacher = User.objects.create(
            username=f"teacher{n}", role=User.Role.TEACHER, organisation=organisation
        )
        TeacherAssignment.objects.create(teacher=teacher, school_class=school_class)
        session = session_start(school_class=school_class, topic="Linear equations", by=None, now=begun)
        joins = [Event(f"join-{p}", "join", begun, f"p{p}", {}) for p in range(PARTICIPANTS)]
        signals_ingest(session=session, events=joins, now=begun)
        for _ in range(tabs):
            cookie = store()
            cookie[SESSION_KEY] = str(teacher.pk)
            cookie[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
            cookie[HASH_SESSION_KEY] = teacher.get_session_auth_hash()
            cookie.create()
            streams.append((session.pk, f"{settings.SESSION_COOKIE_NAME}={cookie.session_key}"))
    ids = sorted({s for s, _ in streams})
    for back in range(HISTORY_S, 0, -PERIOD_S):  # a class in progress: a full chart on the panel
        tick(ids, now=now - timedelta(seconds=back))
    output.write_text(json.dumps({"session_ids": sorted({s for s, _ in streams}), "streams": streams}))
    return 0


def child_ticker(setup: Path, ticks: int) -> int:
    """On each of the next `ticks` 5-s boundaries, one tick of every session; a line per tick."""
    setup_child()
    from django.utils import timezone

    from classroom.live.services import tick, tick_time

    ids = json.loads(setup.read_text())["session_ids"]
    for _ in range(ticks):
        time.sleep(PERIOD_S - time.time() % PERIOD_S + 0.05)
        begun = time.time()
        at = tick_time(timezone.now())
        tick(ids, now=at)
        committed = time.time()
        line = {"label": f"{at:%H:%M:%S}", "committed": committed, "seconds": committed - begun}
        print(json.dumps(line), flush=True)
    return 0


async def child_clients(setup: Path, port: int) -> int:
    """Every stream open until stdin closes; then, per stream, when it got each tick's label."""
    streams = json.loads(setup.read_text())["streams"]
    received: list[dict[str, float]] = [{} for _ in streams]
    first = [asyncio.Event() for _ in streams]
    gate = asyncio.Semaphore(50)  # connect 50 at a time, as tabs do not all open in the same ms
    begun = time.perf_counter()
    tasks = [
        asyncio.create_task(_stream(port, pk, cookie, gate, got, ready))
        for (pk, cookie), got, ready in zip(streams, received, first, strict=True)
    ]
    await asyncio.gather(*(ready.wait() for ready in first))
    print(json.dumps({"seconds": time.perf_counter() - begun}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for task in tasks:
        task.cancel()
    print(json.dumps(received), flush=True)
    return 0


async def _stream(
    port: int, pk: int, cookie: str, gate: asyncio.Semaphore, got: dict, ready: asyncio.Event
) -> None:
    async with gate:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = f"GET /live/{pk}/stream/ HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
        writer.write(f"{request}X-Forwarded-Proto: https\r\nAccept: text/event-stream\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200") or b"chunked" not in head.lower():
            got["refused"] = float(head.split(b" ", 2)[1])  # the status, e.g. 500
            ready.set()
            return
    buffer = b""
    while size := int((await reader.readline()).strip() or b"0", 16):
        buffer += (await reader.readexactly(size + 2))[:-2]
        *frames, buffer = buffer.split(b"\n\n")
        for frame in frames:
            if frame.startswith(b"event: tick"):
                if match := LABEL.search(frame):
                    got.setdefault(match[1].decode(), time.time())
                ready.set()


def _status(pid: int, field: str) -> int:
    """A number from /proc/<pid>/status (Linux), e.g. VmRSS (KiB) or Threads."""
    return int(re.search(rf"{field}:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())[1])


def _cpu_s(pids: list[int]) -> list[float]:
    """Each process's user + system CPU seconds so far (Linux: /proc/<pid>/stat)."""
    ticks = []
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks.append((int(fields[11]) + int(fields[12])) / 100)  # utime, stime in clock ticks (100/s)
    return ticks


def _commits(stats: Any) -> int:
    """The bench database's committed transactions so far, over a connection opened beforehand
    (the server may have none left to give once the tabs are open)."""
    stats.execute("SELECT pg_stat_clear_snapshot()")
    row = stats.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = 'bench_live_stream'")
    return int(row.fetchone()[0])


if __name__ == "__main__":
    raise SystemExit(main())
