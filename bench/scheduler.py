"""The proactive dispatcher under load (issue 7): 1,000 of 10,000 active schedules due in one minute.

Usage, from the repo root:

    .venv/bin/python bench/scheduler.py [--schedules 10000] [--due 1000] [--students 1000]
        [--latency-ms 5] [--scenario burst|process|spread] [--window-s 60] [--pass-every-s 5]
        [--start-before-s 10] [--repeat 1] [--batch N] [--concurrency N]
        [--platform-concurrency N] [--py-spy DIR [--py-spy-wall]] [--database-url URL] [--debug]

The goal (from the issue): with 10,000 active schedules of which 1,000 fall due within one
minute, the p99 lateness of a run is under 5 s (SC-005 allows 60 s). Lateness is how long after
its due time a message reaches the platform: the simulator's own `received_at` of the dispatch
(`GET /_sim/report`) minus the run's `scheduled_for`. Three other times are given beside it:
- claim: `TaskRun.started_at` minus `scheduled_for`. `_claim` stamps every run of a batch (up to
  PROACTIVE_BATCH) with the one time of its claim, after the batches before it in the pass are
  finished and before any of its runs is composed or sent;
- client: `DispatchLog.attempted_at` minus `scheduled_for`, stamped on the platform client's
  thread when the platform's answer is back (the row is written after the batch's sends);
- recorded: what the dispatcher itself reports, `PassReport.lateness_ms`: from the due time to
  when the batch's outcome was recorded (one time per batch, after the transaction that writes
  the runs' outcomes and their audit events). The `proactive.*` audit events carry their own
  `lateness_ms`, taken just before that transaction.

Scenarios
- burst (the default): cron has a resolution of one minute, so "1,000 due within one minute"
  means, at worst, 1,000 tasks whose cron names the same minute HH:MM (here daily and weekly
  crons in five time zones, each naming the same instant), all with `next_run_at` = HH:MM:00.
  The bench waits for the wall clock to reach the minute boundary at least `--lead-s` after it
  starts building the schedules and calls `run_due_tasks()` then, once. Lateness is then the
  pass's own delay: the batches before a run's (each claimed, composed, sent and recorded in
  turn), its own batch's claim and composition, then its place among the batch's sends.
- process: the same schedules, but instead of a pass called at the boundary, the dispatcher
  process's loop, `tutor.proactive.dispatcher.serve(stop, on_pass=...)` (what `manage.py
  run_due_tasks` without `--once` runs), started `--start-before-s` (10) seconds before the
  boundary in the child's main thread: it runs a pass (nothing due yet), sleeps until the
  earliest `next_run_at` (at most PROACTIVE_POLL_SECONDS), and repeats, so it wakes at the due
  time by itself as in production; `stop` is set from `on_pass` once the passes have claimed all
  the due tasks. Lateness then includes the process's own wake-up. Its table goes to
  bench/results/scheduler-process-<engine>.md.
- spread: 1,000 one-off tasks (run_at) due at even steps over the next `--window-s` seconds,
  and a `run_due_tasks()` pass every `--pass-every-s` seconds (the next one at once if a pass
  overran), as a caller polling on a fixed period would; lateness then includes waiting for the
  next pass (up to the period). Its table goes to bench/results/scheduler-spread-<engine>.md.
In production the dispatcher process is what sends (the process scenario). The workers'
every-minute `proactive-dispatch` pass (`tutor.tasks.run_due_tasks`) is the backstop when no
dispatcher process runs; the burst scenario's pass at the minute is that pass at best, as
django-q2's scheduler looks for due schedules only every 30 s, a delay not measured here.

Method
1. Each repeat runs in a subprocess of this script with `DATABASE_URL` set to a database of its
   own: a SQLite file in a temporary directory by default, or, with `--database-url
   postgres://...`, a database `bench_scheduler_<n>` created on that server and dropped
   afterwards. The developer's db.sqlite3 is never opened. `migrate` and `seed_demo --class-size
   ceil(students / 3)` run first, in subprocesses of their own: the demo school's three classes,
   students with demo platform ids (alg1-p2-0001, ...; the simulator takes any id of that shape)
   and 56 days of history (which the weekly report's template sums). Every student gets a
   `ProactivenessSettings` row (the steady state: the dispatcher reads them, it inserts none), and
   both automation switches exist, off (the operators' and, where switches are per organisation,
   the organisation's).
2. The platform is the project's simulator (`classroom.platform.simulator.PlatformServer`) in a
   separate process of this script, on loopback, with `--latency-ms` on every request; the child
   has `PLATFORM_BASE_URL` set to it, so `dispatch_many` sends through it for real, on the
   platform client's threads (PLATFORM_CONCURRENCY at a time). There is no `ANTHROPIC_API_KEY`
   in the child's environment: the LLM gateway's `complete_many` answers each message from the
   kind's template (`_template`) on the calling thread without a network call (so
   PROACTIVE_CONCURRENCY, the model calls in flight at once, changes nothing here), still
   appending the batch's `llm.call` audit events.
3. Warm-up, untimed: five one-off tasks due now, one pass, checked (5 sent), then deleted with
   their runs; the simulator's counters are reset. Then 10,000 `ScheduledTask` rows by
   `bulk_create` (not 10,000 service calls), `next_run_at` computed with
   `tutor.proactive.timing.next_after` as `schedule_create` does: the due ones on distinct
   students (reminder, check-in, nudge, weekly report; none of PROACTIVE_APPROVAL_KINDS, which
   would wait for a teacher), the rest (every kind, 10% one-offs within the week) due after
   the minute. On PostgreSQL, `VACUUM ANALYZE` (the statistics autovacuum keeps).
4. The measurement: burst and spread call `tutor.proactive.dispatcher.run_due_tasks()` inside
   `audit.context.bind(source="worker")`, as `tutor.tasks.run_due_tasks` does; process calls
   `serve()`, which binds the context itself for each pass. Each pass's wall time, statements and
   COMMITs are taken apart (in the process scenario by wrapping the `run_due_tasks` that `serve`
   calls), so the passes that claimed something are reported apart from the idle ones. Around it
   all: an execute wrapper on the connection (and, through `connection_created`, on any opened
   meanwhile: none is, as only the main thread uses the database, unless a pass reconnects)
   counts and times every statement through the cursor (grouped by kind and table), `commit()` is
   timed on the connection class, and the dispatcher's steps are wrapped with timers (exclusive
   time: a step's own time without the steps inside it, on a stack per thread; each statement
   and COMMIT is charged to the innermost step running it). The main thread's steps add up to its
   passes (and, in the process scenario, its work between them; not its sleeps); the platform
   client's threads add their HTTP requests. CPU is the process's (`time.process_time()`, all
   threads) over the whole measurement. What the timers and wrappers themselves cost is
   estimated from their number and their cost a call, measured in the child beforehand.
5. Checks: the passes claimed and sent exactly the due tasks; exactly that many TaskRuns exist,
   all `sent`, one per due task, at its due time; the simulator received exactly that many
   dispatches, each once (201, no replays) on distinct students; every due task moved on
   (`last_run_at` = due time, `next_run_at` later than the first pass that claimed it); the other
   9,000 are exactly as before (status, next and last run). Then an idle pass (nothing due) is
   timed and counted: what a pass costs when nothing is due (the process runs one at least every
   PROACTIVE_POLL_SECONDS, the workers one a minute).

Settings are what `tutor.settings` reads from the environment, with DEBUG=0 (as a worker; with
DEBUG=1 Django keeps the last 9,000 queries of the connection) unless `--debug`, Q_SYNC=0, and
PROACTIVE_BATCH, PROACTIVE_CONCURRENCY and PLATFORM_CONCURRENCY from `--batch`, `--concurrency`
and `--platform-concurrency` if given (else the settings' defaults). `--py-spy DIR` runs `py-spy
record --gil -f raw` on the child for the measurement only (a separate, slower run: do not mix
its figures with the others; its table goes into DIR, not bench/results). `--gil` sees only code
holding the GIL, so neither waits (for a row lock, the platform) nor C code that lets go of it
(building an SSL context: loading certifi's CA bundle, 35 ms, which a new HTTP client per message
paid before d37ba55); `--py-spy-wall` samples wall-clock time instead (`--idle`), waits included.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import math
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.common import (  # noqa: E402 - after the repo root is on sys.path
    bench_env,
    database_for,
    django_version,
    percentile,
    positive_int,
    serve_simulator,
    setup_child,
    simulator_process,
)

RESULTS_DIR = REPO_ROOT / "bench" / "results"
MANAGE = REPO_ROOT / "manage.py"
POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql")
BENCH_SECRET_KEY = "bench-scheduler-not-a-secret"
GOAL_P99_S = 5.0
SC_005_S = 60.0
CLASSES = 3  # the demo school's classes (fixtures/demo_school.json)
WARMUP_TASKS = 5
# Each time zone's wall clock names the same instant differently; Kolkata is 30 minutes off.
TIME_ZONES = ("UTC", "Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Sydney")
DUE_KINDS = ("reminder", "check_in", "nudge", "weekly_report")
_END = object()


@dataclass
class Lateness:
    """Seconds after the due time, one sample per run."""

    platform_s: list[float]
    client_s: list[float]
    started_s: list[float]
    recorded_s: list[float]  # the passes' own figure, PassReport.lateness_ms


@dataclass
class PassStats:
    """One `run_due_tasks()` pass: what it claimed, when it started (seconds after the first due
    time; negative for the process's passes before it), its wall time and its SQL."""

    claimed: int
    started_s: float
    wall_s: float
    statements: int
    commits: int
    sql_s: float


@dataclass
class Result:
    repeat: int
    scenario: str
    schedules: int
    due: int
    students: int
    latency_ms: int
    batch: int
    concurrency: int
    platform_concurrency: int
    poll_s: float
    lateness: Lateness
    passes: list[PassStats]
    pass_start_offset_s: float
    wall_s: float  # the passes that claimed something, without the sleeps and idle passes between
    cpu_s: float  # the whole measurement
    # The whole measurement (the passes, idle ones too, and in the process scenario its work
    # between them).
    statements: int
    commits: int
    sql_s: float
    commit_s: float
    connections_opened: int
    threads: int
    timings: int  # step timings (a generator step is timed once per item)
    # Step -> [calls, exclusive seconds, statements, SQL seconds (statements and COMMITs)].
    steps: dict[str, list[float]]
    # Statement kind -> [count, seconds], over the whole measurement.
    statement_kinds: dict[str, list[float]]
    idle_pass_ms: float
    idle_pass_statements: int
    claim_plan: str
    single_dispatch_ms: float
    # CPU microseconds a step timing and a statement (or COMMIT) through the wrapper cost.
    step_cost_us: float
    statement_cost_us: float
    engine: str
    engine_name: str
    engine_version: str
    django_version: str
    debug: bool
    load_before: float
    load_after: float
    setup_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def runs_per_s(self) -> float:
        return self.due / self.wall_s if self.wall_s else float("nan")

    @property
    def claiming(self) -> list[PassStats]:
        return [p for p in self.passes if p.claimed]

    @property
    def instrumentation_s(self) -> float:
        """An estimate of what the timers and wrappers cost the measurement in CPU."""
        statements = self.statements + self.commits
        return (self.timings * self.step_cost_us + statements * self.statement_cost_us) / 1e6


# The parent: the simulator, one database and one subprocess per repeat, then the tables.


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_repeat is not None:
        return child_main(args)
    if args.child_simulator:
        return serve_simulator(latency_ms=args.latency_ms)
    started = time.perf_counter()
    code_before = code_version()
    results: list[Result] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp,
        simulator_process(
            Path(__file__).resolve(), child_env(f"sqlite:///{Path(tmp) / 'simulator.sqlite3'}", args)
        ) as sim,
    ):
        for number in range(1, args.repeat + 1):
            name = f"bench_scheduler_{number}"
            with database_for(name, server_url=args.database_url, tmp=Path(tmp)) as url:
                results.append(run_child(number, url=url, simulator_url=sim, args=args, tmp=Path(tmp)))
    runtime_s = time.perf_counter() - started
    code = code_version()
    if code != code_before:
        code = f"{code_before}, then {code} (the code changed during the run: do not trust these figures)"
    markdown = render_markdown(results, args=args, runtime_s=runtime_s, code=code)
    print(markdown)
    # A run under py-spy is slower: its table goes next to the profiles, not into bench/results.
    directory = Path(args.py_spy).resolve() if args.py_spy else RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    stem = "scheduler" if args.scenario == "burst" else f"scheduler-{args.scenario}"
    out = directory / f"{stem}-{results[0].engine}.md"
    out.write_text(markdown + "\n")
    shown = out.relative_to(REPO_ROOT) if out.is_relative_to(REPO_ROOT) else out
    print(f"\nWritten to {shown}", file=sys.stderr)
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Lateness (median, p99, max) of 1,000 due runs among 10,000 schedules, and the "
        "dispatcher's queries per pass."
    )
    parser.add_argument(
        "--schedules", type=positive_int, default=10_000, help="active scheduled tasks in all (10000)"
    )
    parser.add_argument("--due", type=positive_int, default=1000, help="of which due in the minute (1000)")
    parser.add_argument(
        "--students",
        type=positive_int,
        default=1000,
        help="students at least (seed_demo makes 3 classes of ceil(N/3)); the due tasks are on "
        "distinct students when there are enough (1000)",
    )
    parser.add_argument("--latency-ms", type=int, default=5, help="simulated platform latency (5)")
    parser.add_argument(
        "--scenario",
        choices=("burst", "process", "spread"),
        default="burst",
        help="burst: all due at one minute boundary, one run_due_tasks() pass then (default); "
        "process: the same schedules, the dispatcher process's loop (serve) started --start-before-s "
        "before the boundary, waking by itself; spread: due over --window-s, a pass every "
        "--pass-every-s",
    )
    parser.add_argument("--window-s", type=positive_int, default=60, help="spread: due over (60 s)")
    parser.add_argument("--pass-every-s", type=float, default=5.0, help="spread: pass period (5 s)")
    parser.add_argument(
        "--start-before-s",
        type=positive_int,
        default=10,
        help="process: start the dispatcher process this long before the due time (10 s)",
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        help="whole measurements, one after the other, each in a database of its own (1)",
    )
    parser.add_argument(
        "--batch", type=positive_int, help="PROACTIVE_BATCH for the child (default: the settings', 200)"
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        help="PROACTIVE_CONCURRENCY for the child: model calls in flight at once while a batch is "
        "composed; without a model (as here) the templates answer on the calling thread and it changes "
        "nothing (default: the settings')",
    )
    parser.add_argument(
        "--platform-concurrency",
        type=positive_int,
        help="PLATFORM_CONCURRENCY for the child: a batch's sends in flight at once, on the platform "
        "client's threads (default: the settings')",
    )
    parser.add_argument(
        "--lead-s",
        type=positive_int,
        default=15,
        help="burst and process: at least this long between building the schedules and the minute "
        "boundary (for process: and the start of the dispatcher process) (15)",
    )
    parser.add_argument(
        "--py-spy",
        metavar="DIR",
        help="record the measurement with `py-spy record --gil -f raw` into DIR (slows the passes)",
    )
    parser.add_argument(
        "--py-spy-wall",
        action="store_true",
        help="with --py-spy: sample wall-clock time (`--idle`, without `--gil`), which also sees waits "
        "and C code that lets go of the GIL (loading the CA bundle into an SSL context does)",
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to use, e.g. postgres://postgres@127.0.0.1:5432/postgres; the bench "
        "creates and drops a database bench_scheduler_<n> there per repeat (default: SQLite files "
        "in a temporary directory)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="run with DEBUG=1 (default DEBUG=0, as a worker)"
    )
    # Internal: how the parent runs one repeat and the simulator in subprocesses.
    parser.add_argument("--child-repeat", type=positive_int, help=argparse.SUPPRESS)
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    parser.add_argument("--child-simulator", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.database_url and urlsplit(args.database_url).scheme not in POSTGRES_SCHEMES:
        parser.error("--database-url must be a postgres:// URL (SQLite is the default)")
    if args.due >= args.schedules:
        parser.error("--due must be fewer than --schedules")
    if args.latency_ms < 0:
        parser.error("--latency-ms must be zero or more")
    if args.pass_every_s <= 0:
        parser.error("--pass-every-s must be more than zero")
    return args


def simulator_env(tmp: str, args: argparse.Namespace) -> dict[str, str]:
    # The simulator opens no database; the URL only keeps it off the developer's db.sqlite3.
    return child_env(f"sqlite:///{Path(tmp) / 'simulator.sqlite3'}", args)


def child_env(url: str, args: argparse.Namespace, simulator_url: str = "") -> dict[str, str]:
    extra = {"Q_SYNC": "0", "ANTHROPIC_API_KEY": ""}  # no model: the gateway answers from the templates
    if simulator_url:
        extra["PLATFORM_BASE_URL"] = simulator_url
    if args.batch:
        extra["PROACTIVE_BATCH"] = str(args.batch)
    if args.concurrency:
        extra["PROACTIVE_CONCURRENCY"] = str(args.concurrency)
    if args.platform_concurrency:
        extra["PLATFORM_CONCURRENCY"] = str(args.platform_concurrency)
    return bench_env(url, debug=args.debug, secret_key=BENCH_SECRET_KEY, **extra)


def run_child(number: int, *, url: str, simulator_url: str, args: argparse.Namespace, tmp: Path) -> Result:
    env = child_env(url, args, simulator_url)
    class_size = math.ceil(args.students / CLASSES)
    print(f"repeat {number}: migrate, seed_demo --class-size {class_size} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    # The child's stdout goes to stderr so that stdout carries only the tables.
    for command in (["migrate", "--verbosity", "0"], ["seed_demo", "--class-size", str(class_size)]):
        subprocess.run(
            [sys.executable, str(MANAGE), *command], env=env, cwd=REPO_ROOT, check=True, stdout=sys.stderr
        )
    setup_s = time.perf_counter() - started
    output = tmp / f"result-{number}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        f"--child-repeat={number}",
        f"--child-output={output}",
        f"--schedules={args.schedules}",
        f"--due={args.due}",
        f"--students={args.students}",
        f"--latency-ms={args.latency_ms}",
        f"--scenario={args.scenario}",
        f"--window-s={args.window_s}",
        f"--pass-every-s={args.pass_every_s}",
        f"--lead-s={args.lead_s}",
        f"--start-before-s={args.start_before_s}",
    ]
    if args.py_spy:
        command.append(f"--py-spy={Path(args.py_spy).resolve()}")
        if args.py_spy_wall:
            command.append("--py-spy-wall")
    print(f"repeat {number}: schedules, wait, passes ...", file=sys.stderr, flush=True)
    subprocess.run(command, env=env, cwd=REPO_ROOT, check=True, stdout=sys.stderr)
    data = json.loads(output.read_text())
    result = Result(
        **{
            **data,
            "lateness": Lateness(**data["lateness"]),
            "passes": [PassStats(**p) for p in data["passes"]],
        }
    )
    result.setup_s = setup_s
    print(
        f"repeat {number}: setup {setup_s:.1f} s, passes that claimed {result.wall_s:.2f} s, lateness p99 "
        f"{percentile(result.lateness.platform_s, 99):.2f} s",
        file=sys.stderr,
        flush=True,
    )
    return result


def _s(samples: list[float], pct: float) -> str:
    return f"{percentile(samples, pct):.2f}"


def code_version() -> str:
    """The commit measured, and whether the app's code differs from it (others edit it too)."""

    def git(*command: str) -> str:
        done = subprocess.run(["git", *command], cwd=REPO_ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--", "tutor", "classroom", "audit")
    return commit + (" with uncommitted changes to the app" if changed else "")


def render_markdown(results: list[Result], *, args: argparse.Namespace, runtime_s: float, code: str) -> str:
    first = results[0]
    scenario = {
        "burst": f"burst: {first.due:,} tasks due at the same minute boundary HH:MM:00, one "
        "`run_due_tasks()` pass started at HH:MM:00 (the workers' every-minute `proactive-dispatch` "
        "pass at best)",
        "process": f"process: {first.due:,} tasks due at the same minute boundary HH:MM:00, the dispatcher "
        f"process's loop (`serve()`, as `manage.py run_due_tasks`) started {args.start_before_s} s before "
        f"it, sleeping until the earliest `next_run_at` (at most PROACTIVE_POLL_SECONDS, {first.poll_s:g} s) "
        "between passes, so it wakes at the due time by itself; lateness includes that wake-up",
        "spread": f"spread: {first.due:,} one-off tasks due at even steps over {args.window_s} s, a "
        f"`run_due_tasks()` pass every {args.pass_every_s:g} s (lateness includes waiting for the next pass)",
    }[first.scenario]
    lines = [
        f"# Proactive dispatcher: {first.due:,} of {first.schedules:,} schedules due in one minute, "
        f"{first.engine_name}, {first.scenario}",
        "",
        f"Machine: nproc {len(os.sched_getaffinity(0))}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, Django {first.django_version}, "
        f"DB {first.engine_name} {first.engine_version}"
        f"{' on loopback' if first.engine == 'postgresql' else ''}, DEBUG={first.debug}, code {code}. "
        "The cores are shared with other work: load average "
        + ", ".join(f"{r.load_before:.2f} → {r.load_after:.2f}" for r in results)
        + " (before → after each repeat's measurement). "
        f"Scenario {scenario}. {first.students:,} students (`seed_demo`), PROACTIVE_BATCH {first.batch}, "
        f"PLATFORM_CONCURRENCY {first.platform_concurrency} (a batch's sends in flight at once, on the "
        f"platform client's threads), PROACTIVE_CONCURRENCY {first.concurrency} (model calls in flight at "
        "once while a batch is composed; unused here). "
        f"Platform simulator in a separate process on loopback, {first.latency_ms} ms latency "
        f"(one dispatch on its own: {first.single_dispatch_ms:.1f} ms). No ANTHROPIC_API_KEY: the LLM "
        "gateway composes each message from the kind's template (no model call) and appends the batch's "
        "`llm.call` audit events as usual."
        + (" **Under py-spy: slower than without.**" if args.py_spy else ""),
        "",
        "## Lateness: how long after its due time each message reached the platform",
        "",
        "Platform: the simulator's `received_at` of the dispatch (after its latency) minus `scheduled_for`;"
        " the measure. Client: `DispatchLog.attempted_at` (stamped when the platform's answer is back) "
        "minus `scheduled_for`. Claim: `TaskRun.started_at` minus `scheduled_for`, one time per batch, "
        "stamped when the batch is claimed, before any of its runs is composed or sent. Recorded: what the "
        "dispatcher itself reports (`PassReport.lateness_ms`), from the due time to when the batch's "
        "outcome was recorded. Pass s: the wall time of the passes that claimed something (without the "
        "sleeps and the idle passes between them). The last column: when the first pass that claimed "
        "something started, after the first due time.",
        "",
        "| repeat | runs sent | platform p50 s | platform p90 s | platform p99 s | platform max s "
        "| client p99 s | claim p99 s | claim max s | recorded p99 s | recorded max s | pass s | runs/s "
        "| claiming pass started after due s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lat = r.lateness
        lines.append(
            f"| {r.repeat} | {len(lat.platform_s):,} | {_s(lat.platform_s, 50)} | {_s(lat.platform_s, 90)} "
            f"| {_s(lat.platform_s, 99)} | {max(lat.platform_s):.2f} | {_s(lat.client_s, 99)} "
            f"| {_s(lat.started_s, 99)} | {max(lat.started_s):.2f} | {_s(lat.recorded_s, 99)} "
            f"| {max(lat.recorded_s):.2f} | {r.wall_s:.2f} | {r.runs_per_s:.0f} "
            f"| {r.pass_start_offset_s:.3f} |"
        )
    lines += [
        "",
        "## Passes",
        "",
        "Every `run_due_tasks()` pass of the measurement: when it started (seconds after the first due "
        "time), what it claimed, its wall time, statements and COMMITs.",
        "",
        "| repeat | pass | started s | claimed | wall s | statements | COMMITs |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.extend(
            f"| {r.repeat} | {n} | {p.started_s:+.3f} | {p.claimed:,} | {p.wall_s:.3f} | {p.statements} "
            f"| {p.commits} |"
            for n, p in enumerate(r.passes, start=1)
        )
    lines += [
        "",
        "## Queries",
        "",
        "Statements through the cursor and COMMITs (the connection's `commit()`) of the passes that claimed "
        "something, and their SQL time; other: the rest of the measurement (the passes that claimed nothing "
        "and, in the process scenario, its heartbeat and next-due lookups between passes). DB connections: "
        "opened during the measurement (none is expected: only the main thread uses the database; a "
        "reconnect would show here). CPU: the process's, all threads, over the whole measurement, against "
        "the pass s above. The idle pass is one more pass after the checks, with nothing due: what a pass "
        "costs when nothing is due.",
        "",
        "| repeat | passes | claimed something | statements | per run | COMMITs | per run "
        "| SQL s (statements + COMMIT) | other statements | other COMMITs | DB connections | CPU s "
        "| CPU / pass s | idle pass statements | idle pass ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        statements = sum(p.statements for p in r.claiming)
        commits = sum(p.commits for p in r.claiming)
        lines.append(
            f"| {r.repeat} | {len(r.passes)} | {len(r.claiming)} | {statements:,} | {statements / r.due:.2f} "
            f"| {commits:,} | {commits / r.due:.2f} | {sum(p.sql_s for p in r.claiming):.2f} "
            f"| {r.statements - statements:,} | {r.commits - commits:,} | {r.connections_opened} "
            f"| {r.cpu_s:.2f} | {r.cpu_s / r.wall_s:.0%} | {r.idle_pass_statements} | {r.idle_pass_ms:.1f} |"
        )
    lines += [
        "",
        "## Where the time goes (exclusive time of each step, summed over the measurement and its threads)",
        "",
        "Each step's own time without the steps it calls, in the thread that ran it, over the whole "
        "measurement (the idle passes' steps too); every statement and COMMIT is charged to the innermost "
        "step running it, so SQL is part of the step's time and the rest of it is Python (the ORM, hashing, "
        "JSON), waiting for the GIL or, for HTTP, the round trip. The main thread's steps add up to its "
        "passes (in the process scenario with its work between them, not its sleeps), the time it waits "
        "for the platform client's threads included (`map_concurrently`); those threads add their HTTP "
        "requests, so the steps add up to more than the passes' wall time; the share is of that sum.",
        "",
        "| repeat | step | calls | thread ms / run | s in all | share | statements / run "
        "| of which SQL ms / run |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        total = sum(v[1] for v in r.steps.values()) or 1.0
        ranked = sorted(r.steps.items(), key=lambda item: -item[1][1])
        for name, (calls, seconds, statements, sql_s) in ranked:
            lines.append(
                f"| {r.repeat} | {name} | {calls:,.0f} | {seconds / r.due * 1000:.2f} | {seconds:.2f} "
                f"| {seconds / total:.0%} | {statements / r.due:.2f} | {sql_s / r.due * 1000:.2f} |"
            )
        lines.append(
            f"| {r.repeat} | **all steps: the main thread and {r.threads - 1} platform client threads** | "
            f"| {total / r.due * 1000:.2f} | {total:.2f} | 100% | {r.statements / r.due:.2f} "
            f"| {(r.sql_s + r.commit_s) / r.due * 1000:.2f} |"
        )
    lines += [
        "",
        "## Statements by kind (per run, over the whole measurement)",
        "",
        "| repeat | statement | per run | SQL ms per run | share of statement time |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in results:
        total = sum(seconds for _, seconds in r.statement_kinds.values()) or 1.0
        ranked = sorted(r.statement_kinds.items(), key=lambda item: -item[1][0])
        for kind, (count, seconds) in ranked:
            lines.append(
                f"| {r.repeat} | `{kind}` | {count / r.due:.2f} | {seconds / r.due * 1000:.3f} "
                f"| {seconds / total:.0%} |"
            )
    lines.append("")
    for r in results:
        p99 = percentile(r.lateness.platform_s, 99)
        goal = "within" if p99 < GOAL_P99_S else "NOT within"
        sc = "within" if p99 < SC_005_S else "NOT within"
        statements = sum(p.statements for p in r.claiming)
        commits = sum(p.commits for p in r.claiming)
        lines.append(
            f"- Repeat {r.repeat}: p99 lateness {p99:.2f} s (median "
            f"{statistics.median(r.lateness.platform_s):.2f}, max {max(r.lateness.platform_s):.2f}): "
            f"{goal} the goal of {GOAL_P99_S:g} s, {sc} SC-005's {SC_005_S:g} s. "
            f"{r.due:,} runs in {r.wall_s:.2f} s of {len(r.claiming)} pass(es) that claimed something "
            f"({r.runs_per_s:.0f} runs/s, {r.wall_s / r.due * 1000:.2f} ms of pass a run, "
            f"{r.cpu_s / r.due * 1000:.2f} ms of CPU a run); {statements:,} statements and {commits:,} "
            f"COMMITs ({statements / len(r.claiming):.0f} and {commits / len(r.claiming):.0f} a pass that "
            f"claimed something, in batches of up to {r.batch}). "
            f"The timers and wrappers: about {r.instrumentation_s * 1000:.0f} ms of the {r.cpu_s:.2f} s of "
            f"CPU ({r.timings:,} step timings at {r.step_cost_us:.1f} µs, {r.statements + r.commits:,} "
            f"statements and COMMITs through the wrappers at {r.statement_cost_us:.1f} µs each, measured "
            "beforehand on one thread, so without waiting for the GIL)."
        )
    for r in results:
        lines.extend(f"- Repeat {r.repeat}: {note}" for note in r.notes)
    lines.append(f"- The claim query's plan (repeat 1): `{first.claim_plan}`")
    lines.append(
        {
            "burst": "- In production the dispatcher process sends each task as it falls due (`--scenario "
            "process` measures that); this single pass at the minute is the workers' every-minute "
            "`proactive-dispatch` backstop at best: django-q2's scheduler looks for due schedules every "
            "30 s (django_q/cluster.py guard loop), so that pass starts 0-30 s after the minute, then "
            "waits for a worker, which is not in these figures.",
            "process": "- This is how production sends: the dispatcher process wakes at the earliest due "
            "time by itself (plus WAKE_MARGIN_SECONDS); the workers' every-minute `proactive-dispatch` pass "
            "is the backstop when no dispatcher process runs.",
            "spread": "- A pass every few seconds is a caller polling on a fixed period; the dispatcher "
            "process instead sleeps until the earliest due time (`--scenario process`).",
        }[first.scenario]
    )
    lines.append(
        f"- Script runtime {runtime_s:.0f} s, of which migrate and seed "
        f"{sum(r.setup_s for r in results):.0f} s."
    )
    return "\n".join(lines)


# The child: one repeat in its own database.


def child_main(args: argparse.Namespace) -> int:
    settings = setup_child()
    if settings.ANTHROPIC_API_KEY:
        raise SystemExit("ANTHROPIC_API_KEY is set: the bench measures the template fallback")
    result = measure(args)
    Path(args.child_output).write_text(json.dumps(asdict(result)))
    return 0


_KIND = re.compile(
    r'^\s*(?:(INSERT INTO)|(UPDATE)|(DELETE FROM)|(SELECT)\b.*?\bFROM)\s+"?(\w+)"?', re.IGNORECASE | re.DOTALL
)


@functools.lru_cache(maxsize=4096)
def statement_kind(sql: str) -> str:
    """`INSERT tutor_taskrun`, `SELECT tutor_scheduledtask`, `SAVEPOINT`, ..."""
    head = sql.lstrip()[:40].upper()
    if head.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")):
        return "SAVEPOINT"
    match = _KIND.match(sql)
    if match is None:
        return sql.split(None, 1)[0].upper() if sql.strip() else "?"
    verb = next(g for g in match.groups()[:4] if g).split()[0].upper()
    return f"{verb} {match.group(5)}"


class Profiler:
    """Exclusive time per dispatcher step, with the statements and COMMITs each one runs. The
    passes run on the main thread, which alone uses the database; the HTTP requests of a batch's
    sends run on the platform client's threads, so the steps are timed on a stack per thread.
    The cursor wrapper is on the main thread's connection and on any connection opened while
    installed (`connection_created`: a pass that lost the database reconnects), and COMMIT is
    timed on the connection class."""

    ROOT = "pass: the rest (the claim loop, the report)"
    OUTSIDE = "outside any step"

    def __init__(self) -> None:
        # name -> [calls, exclusive seconds, statements, SQL seconds]
        self.steps: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0, 0.0])
        self.kinds: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        self.local = threading.local()  # .stack: [[name, started, seconds in children], ...]
        self.lock = threading.Lock()
        self.statements = self.commits = self.connections = self.timings = 0
        self.sql_s = self.commit_s = 0.0
        self.threads: set[str] = set()

    def _stack(self) -> list[list[Any]]:
        stack = getattr(self.local, "stack", None)
        if stack is None:
            stack = self.local.stack = []
        return stack

    @contextmanager
    def step(self, name: str, *, call: bool = True) -> Iterator[None]:
        """Time `name`; `call=False` adds the time to the step without counting a call (the
        later iterations of a generator step)."""
        stack = self._stack()
        frame = [name, time.perf_counter(), 0.0]
        stack.append(frame)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - frame[1]
            stack.pop()
            with self.lock:
                entry = self.steps[name]
                entry[0] += call
                entry[1] += elapsed - frame[2]
                self.timings += 1
                self.threads.add(threading.current_thread().name)
            if stack:
                stack[-1][2] += elapsed

    def timed(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isgeneratorfunction(function):
            # Its work (for `map_concurrently`, the waiting) is done as it is iterated: each
            # step of the iteration is timed, the caller's work between them is the caller's.
            def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
                iterator = function(*args, **kwargs)
                first = True
                try:
                    while True:
                        with self.step(name, call=first):
                            item = next(iterator, _END)
                        first = False
                        if item is _END:
                            return
                        yield item
                finally:
                    with self.step(name, call=False):
                        iterator.close()

            generator.__wrapped__ = function  # type: ignore[attr-defined]
            return generator

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.step(name):
                return function(*args, **kwargs)

        wrapper.__wrapped__ = function  # type: ignore[attr-defined]
        return wrapper

    def _charge(self, seconds: float, *, statement: bool) -> None:
        """Under the lock: the innermost step of this thread gets the time (and the statement)."""
        stack = self._stack()
        entry = self.steps[stack[-1][0] if stack else self.OUTSIDE]
        entry[3] += seconds
        if statement:
            entry[2] += 1

    def _sql(self, execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - start
            kind = statement_kind(sql)
            with self.lock:
                self.statements += 1
                self.sql_s += elapsed
                self._charge(elapsed, statement=True)
                self.kinds[kind][0] += 1
                self.kinds[kind][1] += elapsed

    @contextmanager
    def installed(self) -> Iterator[None]:
        """The dispatcher's steps wrapped where they are looked up (module globals and the
        platform client's class), the cursor wrapped on this thread's connection and on every
        connection opened meanwhile, COMMIT timed; all put back afterwards."""
        from django.db import connections
        from django.db.backends.signals import connection_created

        from classroom.platform import dispatch
        from classroom.platform.client import PlatformClient
        from tutor.llm import gateway
        from tutor.models import WorkerHeartbeat
        from tutor.proactive import dispatcher

        http = "HTTP: POST /dispatches to the platform (PlatformClient._request, {latency} ms latency)"
        patches: list[tuple[Any, str, str]] = [
            (
                dispatcher,
                "_claim",
                "claim: select the due batch (FOR UPDATE SKIP LOCKED on PostgreSQL), insert TaskRuns, "
                "move next_run_at",
            ),
            (dispatcher, "_reclaim", "reclaim: runs left claimed by a dead worker (none here)"),
            (dispatcher, "process", "process: the rest (statuses, the batch's loops)"),
            (dispatcher, "_decide", "decide: the controls' rules"),
            (dispatcher, "switches_for", "controls: the switches of the batch's organisations"),
            (dispatcher, "settings_peek_many", "controls: the batch's learners' settings"),
            (dispatcher, "_compose", "compose: the rest (pseudonyms, prompts, unmask, store the messages)"),
            (dispatcher, "_week_minutes", "compose: the weekly reports' minutes"),
            (
                dispatcher,
                "complete_many",
                "LLM gateway: complete_many() without a model (requests, prompt hashes, filter)",
            ),
            (dispatcher, "_template", "LLM gateway: template fallback (_template)"),
            (gateway, "_record_calls", "LLM gateway: the calls' events (details, transaction)"),
            (gateway, "record_events", "audit events: llm.call, one append a batch"),
            (dispatcher, "_send", "send: the batch's payloads"),
            (
                dispatcher,
                "dispatch_many",
                "send: dispatch_many rest (keys, idempotency lookups, DispatchLog insert, events built)",
            ),
            (
                PlatformClient,
                "map_concurrently",
                "send: waiting for the platform client's threads (PlatformClient.map_concurrently)",
            ),
            (dispatch, "record_events", "audit events: dispatch.sent, one append a batch"),
            (dispatch, "_clear_failures", "dispatch: open failures to clear (one lookup)"),
            (dispatcher, "_finish", "finish: the runs' outcomes (bulk update, events built)"),
            (dispatcher, "record_events", "audit events: proactive.sent, one append a batch"),
            (dispatcher, "_why", "rationale: _why (the owner's name, the intent, the pattern)"),
            (dispatcher, "_until_next_due", "process, between passes: the earliest next_run_at"),
            (PlatformClient, "__init__", "HTTP client: a new PlatformClient (httpx.Client, SSL context)"),
            (PlatformClient, "close", "HTTP client: close it (its connections)"),
            (PlatformClient, "_request", http),
        ]
        # A step the code no longer has (renamed since) is left out rather than failing the bench.
        patches = [(owner, name, label) for owner, name, label in patches if name in owner.__dict__]
        originals = [(owner, name, owner.__dict__[name]) for owner, name, _ in patches]
        for owner, name, label in patches:
            setattr(owner, name, self.timed(label, owner.__dict__[name]))
        # The dispatcher process's heartbeat, between passes: on the manager instance it calls.
        heartbeats = WorkerHeartbeat.objects
        heartbeats.update_or_create = self.timed(
            "process, between passes: the heartbeat (WorkerHeartbeat update_or_create)",
            heartbeats.update_or_create,
        )

        wrapped = [connections["default"]]
        wrapped[0].execute_wrappers.append(self._sql)

        def opened(sender: Any, connection: Any, **kwargs: Any) -> None:
            with self.lock:
                self.connections += 1
            if connection not in wrapped:
                connection.execute_wrappers.append(self._sql)
                wrapped.append(connection)

        connection_created.connect(opened, weak=False)
        wrapper_class = type(connections["default"])
        had_commit = "commit" in wrapper_class.__dict__
        original_commit = wrapper_class.commit
        profiler = self

        def timed_commit(self: Any) -> None:
            start = time.perf_counter()
            try:
                original_commit(self)
            finally:
                elapsed = time.perf_counter() - start
                with profiler.lock:
                    profiler.commits += 1
                    profiler.commit_s += elapsed
                    profiler._charge(elapsed, statement=False)

        wrapper_class.commit = timed_commit
        try:
            yield
        finally:
            if had_commit:
                wrapper_class.commit = original_commit
            else:
                del wrapper_class.commit
            connection_created.disconnect(opened)
            for connection in wrapped:
                if self._sql in connection.execute_wrappers:
                    connection.execute_wrappers.remove(self._sql)
            for owner, name, original in originals:
                setattr(owner, name, original)
            del heartbeats.update_or_create


@dataclass
class World:
    owners: dict[int, Any]  # class id -> its teacher
    students: list[Any]  # (student, owner), due tasks take them in order


def world() -> World:
    from classroom.models import Enrollment, Student, TeacherAssignment
    from tutor.models import AutomationSwitch, ProactivenessSettings

    owners = {ta.school_class_id: ta.teacher for ta in TeacherAssignment.objects.select_related("teacher")}
    students = []
    for student in Student.objects.order_by("pk"):
        enrollment = Enrollment.objects.filter(student=student).order_by("pk").first()
        if enrollment is not None and enrollment.school_class_id in owners:
            students.append((student, owners[enrollment.school_class_id]))
    ProactivenessSettings.objects.bulk_create(
        [ProactivenessSettings(student=s) for s, _ in students], ignore_conflicts=True, batch_size=500
    )
    # Both switches off: the operators' (every organisation) and, where switches are per
    # organisation, each organisation's own.
    per_organisation = any(f.name == "organisation" for f in AutomationSwitch._meta.get_fields())
    organisation_ids = {s.organisation_id for s, _ in students} if per_organisation else set()
    for name in AutomationSwitch.Name.values:
        for organisation_id in [None, *organisation_ids]:
            scope = {"organisation_id": organisation_id} if per_organisation else {}
            AutomationSwitch.objects.get_or_create(name=name, **scope, defaults={"on": False})
    return World(owners=owners, students=students)


def build_tasks(
    w: World, *, schedules: int, due: int, due_times: list[datetime], later_after: datetime
) -> tuple[list[int], list[int]]:
    """`due` tasks due at `due_times` (cron naming that minute when they are all the same minute
    boundary, else one-offs), and `schedules - due` others due after `later_after`; their ids."""
    from django.conf import settings

    from tutor.models import ScheduledTask
    from tutor.proactive.timing import next_after, zone

    rng = random.Random(7)
    approval = set(settings.PROACTIVE_APPROVAL_KINDS)
    kinds = [k for k in DUE_KINDS if k not in approval]
    cron_due = len(set(due_times)) == 1 and due_times[0].second == 0 and due_times[0].microsecond == 0
    tasks = []
    for i in range(due):
        student, owner = w.students[i % len(w.students)]
        kind = kinds[i % len(kinds)]
        at = due_times[i]
        tz = TIME_ZONES[i % len(TIME_ZONES)]
        if cron_due:
            local = at.astimezone(zone(tz))
            weekday = local.isoweekday() % 7
            cron = f"{local.minute} {local.hour} * * {weekday if kind == 'weekly_report' else '*'}"
            if next_after(cron, tz, at - timedelta(seconds=1)) != at:
                raise SystemExit(f"cron {cron!r} in {tz} does not name {at.isoformat()}")
            run_at = None
        else:
            cron, run_at = "", at
        tasks.append(
            ScheduledTask(
                owner=owner,
                student=student,
                kind=kind,
                cron=cron,
                run_at=run_at,
                time_zone=tz,
                intent=f"Bench {kind} {i}: ten minutes on the practice set before Friday",
                next_run_at=at,
            )
        )
    all_kinds = list(ScheduledTask.Kind.values)
    for i in range(schedules - due):
        student, owner = w.students[(due + i) % len(w.students)]
        tz = TIME_ZONES[i % len(TIME_ZONES)]
        kind = all_kinds[i % len(all_kinds)]
        if i % 10 == 9:
            cron, run_at = "", later_after + timedelta(seconds=rng.randint(60, 7 * 86400))
            first = run_at
        else:
            minute, hour = rng.randint(0, 59), rng.randint(6, 21)
            days = rng.choice(("*", "1-5", str(rng.randint(0, 6))))
            cron = f"{minute} {hour} * * {days}"
            run_at = None
            first = next_after(cron, tz, later_after)
        tasks.append(
            ScheduledTask(
                owner=owner,
                student=student,
                kind=kind,
                cron=cron,
                run_at=run_at,
                time_zone=tz,
                intent=f"Bench later {kind} {i}: keep going with the plan",
                next_run_at=first,
            )
        )
    made = ScheduledTask.objects.bulk_create(tasks, batch_size=1000)
    ids = [t.pk for t in made]
    if None in ids:
        ids = list(ScheduledTask.objects.order_by("pk").values_list("pk", flat=True))[-schedules:]
    return ids[:due], ids[due:]


@contextmanager
def replaced(owner: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


def instrumentation_cost(calls: int = 20_000) -> tuple[float, float]:
    """CPU microseconds one step timing and one statement through the execute wrapper add to
    the call they wrap, on this thread alone (so without waiting for the GIL)."""
    probe = Profiler()

    def bare(*args: Any) -> None:
        return None

    def cost(call: Callable[[], Any]) -> float:
        started = time.process_time()
        for _ in range(calls):
            call()
        return (time.process_time() - started) / calls * 1e6

    timed = probe.timed("probe", bare)
    step = cost(timed) - cost(bare)
    statement = cost(lambda: probe._sql(bare, "SELECT 1", None, False, {})) - cost(
        lambda: bare("SELECT 1", None, False, {})
    )
    return max(step, 0.0), max(statement, 0.0)


@contextmanager
def py_spy(directory: str | None, name: str, *, wall: bool = False) -> Iterator[None]:
    """`py-spy record --gil -f raw` (with `wall`: `--idle` instead of `--gil`) on this process
    while the block runs."""
    if not directory:
        yield
        return
    Path(directory).mkdir(parents=True, exist_ok=True)
    out = Path(directory) / f"{name}{'-wall' if wall else ''}.txt"
    command = [
        str(Path(sys.executable).parent / "py-spy"),
        "record",
        "--idle" if wall else "--gil",
        "-f",
        "raw",
        "-r",
        "200",
        "-o",
        str(out),
        "--pid",
        str(os.getpid()),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(2)  # attached and sampling
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        print(f"py-spy: {output.strip().splitlines()[-2:]} -> {out}", file=sys.stderr, flush=True)


def measure(args: argparse.Namespace) -> Result:
    import httpx
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from audit import context
    from classroom.models import DispatchLog
    from classroom.platform.client import PlatformClient
    from tutor.models import ScheduledTask, TaskRun
    from tutor.proactive import dispatcher

    w = world()
    if len(w.students) < args.students:
        raise SystemExit(f"{len(w.students)} students with a teacher, expected {args.students}")
    notes: list[str] = []
    if len(w.students) < args.due:
        notes.append(f"only {len(w.students)} students: some students have more than one due task")
    control = httpx.Client(base_url=settings.PLATFORM_BASE_URL, timeout=30)
    control.post("/_sim/config", json={"latency_ms": args.latency_ms}).raise_for_status()

    # Warm-up, untimed: imports, the connection, the first HTTP; then forgotten.
    with PlatformClient(concurrency=1) as client:
        single = []
        for n in range(11):
            start = time.perf_counter()
            client.dispatch(
                "warmup-0001", kind="nudge", payload={"message": "warm-up"}, idempotency_key=f"warmup-{n}"
            )
            single.append((time.perf_counter() - start) * 1000)
    single_dispatch_ms = statistics.median(single[1:])
    now = timezone.now()
    warm_ids, _ = build_tasks(
        World(w.owners, w.students[-WARMUP_TASKS:]),
        schedules=WARMUP_TASKS + 1,
        due=WARMUP_TASKS,
        due_times=[now - timedelta(seconds=1, milliseconds=n) for n in range(WARMUP_TASKS)],
        later_after=now + timedelta(days=1),
    )
    with context.bind(source="worker"):
        warm = dispatcher.run_due_tasks()
    if warm.claimed != WARMUP_TASKS or warm.by_status != {TaskRun.Status.SENT: WARMUP_TASKS}:
        raise SystemExit(f"warm-up pass: {warm.claimed} claimed, {warm.by_status}")
    ScheduledTask.objects.all().delete()  # the warm-up tasks and their runs
    control.post("/_sim/reset").raise_for_status()

    # The schedules.
    window = args.window_s if args.scenario == "spread" else 0
    now = timezone.now()
    if args.scenario == "spread":
        boundary = now + timedelta(seconds=args.lead_s)
        step = timedelta(seconds=window / args.due)
        due_times = [boundary + step * (i + 1) for i in range(args.due)]
        period = args.pass_every_s
        start_at = boundary
    else:
        # The process starts --start-before-s before the boundary, itself at least --lead-s away.
        before = args.start_before_s if args.scenario == "process" else 0
        boundary = (now + timedelta(seconds=args.lead_s + before)).replace(
            second=0, microsecond=0
        ) + timedelta(minutes=1)
        due_times = [boundary] * args.due
        period = settings.PROACTIVE_POLL_SECONDS if args.scenario == "process" else 60.0
        start_at = boundary - timedelta(seconds=before)
    later_after = boundary + timedelta(seconds=window + 120)
    built = time.perf_counter()
    due_ids, later_ids = build_tasks(
        w, schedules=args.schedules, due=args.due, due_times=due_times, later_after=later_after
    )
    build_s = time.perf_counter() - built
    if connection.vendor == "postgresql":
        # A live database has planner statistics from autovacuum; a freshly built one has none.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    if ScheduledTask.objects.filter(status=ScheduledTask.Status.ACTIVE).count() != args.schedules:
        raise SystemExit("the schedules were not all made active")
    before_later = {
        pk: (status, next_run_at, last_run_at)
        for pk, status, next_run_at, last_run_at in ScheduledTask.objects.filter(
            pk__in=later_ids
        ).values_list("pk", "status", "next_run_at", "last_run_at")
    }
    notes.append(
        f"{args.schedules:,} schedules built with bulk_create in {build_s:.1f} s "
        f"({ScheduledTask.objects.filter(cron='').count():,} one-offs)."
    )
    claim_qs = (
        ScheduledTask.objects.filter(status=ScheduledTask.Status.ACTIVE, next_run_at__lte=due_times[-1])
        .select_related("student__organisation", "pattern", "owner")
        .order_by("next_run_at")[: settings.PROACTIVE_BATCH]
    )
    plan = [line.strip() for line in claim_qs.explain().splitlines()]
    # The line that says how the due tasks are found (the index on status and next_run_at).
    scans = [
        line for line in plan if "scheduledtask" in line.lower() and re.search(r"scan|search", line, re.I)
    ]
    claim_plan = scans[0] if scans else " / ".join(plan[:3])
    step_cost_us, statement_cost_us = instrumentation_cost()

    if timezone.now() >= start_at - timedelta(seconds=0.5):
        raise SystemExit(f"the schedules took too long to build; raise --lead-s above {args.lead_s}")
    print(
        f"waiting {(start_at - timezone.now()).total_seconds():.1f} s for {start_at.isoformat()} "
        f"(due at {due_times[0].isoformat()}) ...",
        file=sys.stderr,
        flush=True,
    )
    profiler = Profiler()
    passes: list[PassStats] = []
    reports: list[dispatcher.PassReport] = []
    first_due, last_due = due_times[0], due_times[-1]
    give_up = last_due + timedelta(seconds=3 * period + 60)
    run_due_tasks = dispatcher.run_due_tasks
    starts: list[datetime] = []

    def measured_pass(**given: Any) -> dispatcher.PassReport:
        """One pass with its own figures; in the process scenario, what `serve` calls (with the
        pass's `now`)."""
        statements, commits = profiler.statements, profiler.commits
        sql_s = profiler.sql_s + profiler.commit_s
        starts.append(timezone.now())
        began = time.perf_counter()
        with profiler.step(Profiler.ROOT):
            report = run_due_tasks(**given)
        reports.append(report)
        passes.append(
            PassStats(
                claimed=report.claimed,
                started_s=(starts[-1] - first_due).total_seconds(),
                wall_s=time.perf_counter() - began,
                statements=profiler.statements - statements,
                commits=profiler.commits - commits,
                sql_s=profiler.sql_s + profiler.commit_s - sql_s,
            )
        )
        return report

    name = f"scheduler-{args.scenario}-{connection.vendor}-{args.child_repeat}"
    with py_spy(args.py_spy, name, wall=args.py_spy_wall):
        while timezone.now() < start_at:
            time.sleep(max(0.0, (start_at - timezone.now()).total_seconds()))
        load_before = os.getloadavg()[0]
        cpu_started = time.process_time()
        if args.scenario == "process":
            stop = threading.Event()

            def on_pass(report: dispatcher.PassReport) -> None:
                if sum(r.claimed for r in reports) >= args.due or timezone.now() > give_up:
                    stop.set()

            # Should the passes never claim them all, stop anyway (the checks say what is missing).
            deadline = threading.Timer((give_up - timezone.now()).total_seconds(), stop.set)
            deadline.daemon = True
            deadline.start()
            with profiler.installed(), replaced(dispatcher, "run_due_tasks", measured_pass):
                dispatcher.serve(stop, on_pass=on_pass)
            deadline.cancel()
        else:
            with profiler.installed(), context.bind(source="worker"):
                tick = 0
                while True:
                    measured_pass()
                    if args.scenario == "burst" or sum(r.claimed for r in reports) >= args.due:
                        break
                    if timezone.now() > give_up:
                        break  # the checks below say what is missing
                    tick += 1
                    wait = (boundary + timedelta(seconds=period * tick) - timezone.now()).total_seconds()
                    if wait > 0:
                        time.sleep(wait)
        cpu_s = time.process_time() - cpu_started
        load_after = os.getloadavg()[0]
    claiming = [(p, started) for p, started in zip(passes, starts, strict=True) if p.claimed]
    # The passes' own time (without the sleeps between them and the passes that claimed nothing).
    wall_s = sum(p.wall_s for p, _ in claiming)
    pass_start_offset_s = claiming[0][0].started_s if claiming else float("nan")
    claims_from = claiming[0][1] if claiming else starts[0]
    sim = control.get("/_sim/report").json()["data"]

    # The checks: exactly the due tasks ran and were sent once each; nothing else was touched.
    problems = []
    claimed = sum(r.claimed for r in reports)
    statuses: dict[str, int] = defaultdict(int)
    for r in reports:
        for status, n in r.by_status.items():
            statuses[status] += n
    if claimed != args.due or dict(statuses) != {TaskRun.Status.SENT: args.due}:
        problems.append(f"the pass(es) claimed {claimed}: {dict(statuses)}, expected {args.due} sent")
    runs = list(
        TaskRun.objects.values_list(
            "task_id",
            "status",
            "scheduled_for",
            "started_at",
            "dispatch__idempotency_key",
            "dispatch__attempted_at",
        )
    )
    if len(runs) != args.due or {r[1] for r in runs} != {TaskRun.Status.SENT}:
        problems.append(f"{len(runs)} TaskRuns ({ {r[1] for r in runs} }), expected {args.due} sent")
    if sorted(r[0] for r in runs) != sorted(due_ids):
        problems.append("the runs are not one per due task")
    due_at = dict(zip(due_ids, due_times, strict=True))
    if any(r[2] != due_at.get(r[0]) for r in runs):
        problems.append("a run's scheduled_for is not its task's due time")
    dispatches = {d["key"]: d for d in sim["dispatches"]}
    posts = sum(n for path, n in sim["by_path"].items() if path.startswith("POST /v1/students/"))
    if (
        len(dispatches) != args.due
        or posts != args.due
        or sim["replays"]
        or sim["status_counts"] != {"201": args.due}
    ):
        problems.append(
            f"the simulator received {len(dispatches)} dispatches in {posts} POSTs, "
            f"{sim['replays']} replays, "
            f"answers {sim['status_counts']}; expected {args.due} once each"
        )
    if len({d["student"] for d in sim["dispatches"]}) != min(args.due, len(w.students)):
        problems.append("the dispatches are not on distinct students")
    if DispatchLog.objects.filter(idempotency_key__in=[r[4] for r in runs]).count() != args.due:
        problems.append("not one DispatchLog per run")
    moved = ScheduledTask.objects.filter(pk__in=due_ids)
    if (
        moved.exclude(last_run_at__in=set(due_times)).exists()
        or moved.filter(next_run_at__lte=claims_from).exclude(status=ScheduledTask.Status.DONE).exists()
    ):
        problems.append("a due task did not move on")
    if args.scenario == "spread" and moved.exclude(status=ScheduledTask.Status.DONE).exists():
        problems.append("a one-off task is not done")
    after_later = {
        pk: (status, next_run_at, last_run_at)
        for pk, status, next_run_at, last_run_at in ScheduledTask.objects.filter(
            pk__in=later_ids
        ).values_list("pk", "status", "next_run_at", "last_run_at")
    }
    if after_later != before_later:
        changed = sum(1 for pk in before_later if after_later.get(pk) != before_later[pk])
        problems.append(f"{changed} of the {len(later_ids):,} later tasks were touched")
    if problems:
        raise SystemExit("; ".join(problems))

    # An idle pass: nothing due.
    idle = Profiler()
    with idle.installed(), context.bind(source="worker"):
        start = time.perf_counter()
        report = dispatcher.run_due_tasks()
        idle_ms = (time.perf_counter() - start) * 1000
    if report.claimed:
        raise SystemExit(f"the idle pass claimed {report.claimed}")

    platform_s, client_s, started_s = [], [], []
    for _, _, scheduled_for, started_at, key, attempted_at in runs:
        received = datetime.fromisoformat(dispatches[key]["received_at"])
        platform_s.append((received - scheduled_for).total_seconds())
        client_s.append((attempted_at - scheduled_for).total_seconds())
        started_s.append((started_at - scheduled_for).total_seconds())
    recorded_s = [ms / 1000 for report in reports for ms in report.lateness_ms]
    steps = {k.replace("{latency}", str(args.latency_ms)): v for k, v in profiler.steps.items()}
    notes.append(
        f"the simulator's clock and the dispatcher's are the same machine's; the first message reached "
        f"the platform {min(platform_s):.3f} s after its due time."
    )
    if args.scenario in ("burst", "process") and args.due >= 300:
        # Whether a run costs more as the pass goes on (growing tables, contention): the time
        # between arrivals at the platform over the first, middle and last hundred runs.
        arrivals = sorted(platform_s)
        middle = len(arrivals) // 2 - 50
        spans = [(0, 100), (middle, middle + 100), (len(arrivals) - 100, len(arrivals))]
        notes.append(
            "ms a run at the platform over runs "
            + ", ".join(
                f"{a + 1}-{b}: {(arrivals[b - 1] - arrivals[a]) / (b - a - 1) * 1000:.1f}" for a, b in spans
            )
            + "."
        )
    idle_passes = [p for p in passes if not p.claimed]
    if idle_passes:
        notes.append(
            f"{len(passes)} passes, {len(claiming)} of which claimed something; the {len(idle_passes)} "
            f"that claimed nothing took {sum(p.wall_s for p in idle_passes) * 1000:.1f} ms, "
            f"{sum(p.statements for p in idle_passes)} statements and {sum(p.commits for p in idle_passes)} "
            "COMMITs in all."
        )
    return Result(
        repeat=args.child_repeat,
        scenario=args.scenario,
        schedules=args.schedules,
        due=args.due,
        students=len(w.students),
        latency_ms=args.latency_ms,
        batch=settings.PROACTIVE_BATCH,
        concurrency=settings.PROACTIVE_CONCURRENCY,
        platform_concurrency=settings.PLATFORM_CONCURRENCY,
        poll_s=settings.PROACTIVE_POLL_SECONDS,
        lateness=Lateness(
            platform_s=platform_s, client_s=client_s, started_s=started_s, recorded_s=recorded_s
        ),
        passes=passes,
        pass_start_offset_s=pass_start_offset_s,
        wall_s=wall_s,
        cpu_s=cpu_s,
        statements=profiler.statements,
        commits=profiler.commits,
        sql_s=profiler.sql_s,
        commit_s=profiler.commit_s,
        connections_opened=profiler.connections,
        threads=len(profiler.threads),
        timings=profiler.timings,
        steps=steps,
        statement_kinds=dict(profiler.kinds),
        idle_pass_ms=idle_ms,
        idle_pass_statements=idle.statements,
        claim_plan=claim_plan,
        single_dispatch_ms=single_dispatch_ms,
        step_cost_us=step_cost_us,
        statement_cost_us=statement_cost_us,
        engine=connection.vendor,
        engine_name=connection.display_name,
        engine_version=".".join(str(part) for part in connection.get_database_version()),
        django_version=django_version(),
        debug=settings.DEBUG,
        load_before=load_before,
        load_after=load_after,
        notes=notes,
    )


if __name__ == "__main__":
    sys.exit(main())
