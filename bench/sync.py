"""Platform sync of a class against the simulator: wall time against the ideal, and peak memory by size.

Usage, from the repo root:

    .venv/bin/python bench/sync.py [--students 1000] [--latency-ms 50] [--concurrency 1,16]
        [--first-sync 1] [--memory-sizes 250,500,1000] [--memory-latency-ms 5] [--memory-concurrency 16]
        [--simulator process|thread] [--database-url URL] [--debug]

The goal (from the issue): 1,000 students at 50 ms of platform latency and concurrency 16 sync
within 1.5 times the ideal, students x latency / concurrency; peak memory does not grow with the
number of students.

Method
1. Every configuration (a concurrency of the timing part, a size of the memory part) runs in a
   subprocess of this script with `DATABASE_URL` set to a database of its own: a SQLite file in a
   temporary directory by default, or, with `--database-url postgres://...`, a database
   `bench_sync_<n>` created on that server and dropped afterwards. The developer's db.sqlite3 is
   never opened. `migrate` and `seed_demo --class-size N` run in subprocesses of their own first,
   so the measured process's ru_maxrss is not the seed's. The class `bio-p3` then has exactly N
   students; the run is a class-scope run of it (`sync_run_request` + `sync_run_execute`, as
   `manage.py sync_platform --class` does, with a `PlatformClient` of the given concurrency).
2. The platform is the project's simulator (`classroom.platform.simulator.PlatformServer`) on
   loopback with the given latency. By default it is a separate process (this script with
   `--child-simulator`, serving as `manage.py platform_sim` does) shared by all configurations,
   so it takes neither the sync's GIL nor its traced memory; `--simulator thread` runs it in a
   thread of the measured process instead (`start_in_thread`).
   Each configuration checks the platform it got: the median of 10 single
   fetches one at a time, which should be the latency plus a millisecond or two.
3. Before the timed run, one student of the class is synced (untimed warm-up: imports, the first
   connections), every student's sync cursor is reset (`StudentSyncState.cursor = None`, so each
   is fully fetched) and the simulator's counters are reset. Two cases: a re-sync ("kept": the
   platform sends back what the mirrors already hold, which the upserts compare and leave alone)
   and, with `--first-sync 1`, a first sync ("empty": the class's mirrors and sync states deleted,
   so every row is inserted). After it, the run must have
   succeeded with every student, and the simulator must have received exactly one GET per student.
4. Wall time is `time.perf_counter()` around `sync_run_execute`, which includes its end (the counts
   from the per-student rows and the risk alerts of the class, recomputed). Where the time goes
   is measured on the main thread, which stores the fetched students in batches, by wrapping
   the sync module's `_store`, `_save_progress`, `_finish` and `alerts_recompute` with timers and
   the connection with `execute_wrapper` (SQL time); the rest of the main thread's time is mostly
   waiting for fetches. Fetch times are the per-student `duration_ms` the run records (platform
   latency plus HTTP and JSON decoding on the client's threads). CPU is the process's
   (`time.process_time()`, all threads).
5. The memory part runs the same sync under `tracemalloc` (started just before `sync_run_execute`,
   its peak read just after), at a small latency since only the number of students matters
   there; its wall times are slowed by tracemalloc and not comparable with the timing part.
   ru_maxrss (the process's resident peak, including what tracemalloc does not see, such as the
   database driver's buffers) is given before and after the sync.

Settings are what `tutor.settings` reads from the environment, with DEBUG=0 (as a worker runs in
production; with DEBUG=1 Django keeps the last 9,000 queries of the connection) unless `--debug`,
and Q_SYNC=0, so the task `sync_run_request` enqueues is only written to the queue.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
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
CLASS_PLATFORM_ID = "bio-p3"
POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql")
BENCH_SECRET_KEY = "bench-sync-not-a-secret"
GOAL_RATIO = 1.5


@dataclass(frozen=True)
class Config:
    """One measured sync: `kind` is "time" (the timing part) or "memory" (under tracemalloc)."""

    kind: str
    students: int
    latency_ms: int
    concurrency: int
    # "kept": a re-sync, the platform sending back what the mirrors already hold (rows compared,
    # unchanged ones left alone); "empty": a first sync, every row inserted.
    mirrors: str = "kept"

    @property
    def ideal_s(self) -> float:
        return self.students * self.latency_ms / 1000 / self.concurrency


@dataclass
class Result:
    config: Config
    wall_s: float
    cpu_s: float
    status: str
    total: int
    succeeded: int
    failed: int
    rows: dict[str, int]
    gets: int
    distinct_gets: int
    statuses: dict[str, int]
    store_s: float
    store_sql_s: float
    sql_s: float
    progress_s: float
    finish_s: float
    alerts_s: float
    fetch_median_ms: float
    fetch_p95_ms: float
    peak_kib: float | None
    loop_peak_kib: float | None
    finish_peak_kib: float | None
    maxrss_before_kib: int
    maxrss_after_kib: int
    engine: str
    engine_name: str
    engine_version: str
    django_version: str
    debug: bool
    simulator: str
    single_fetch_ms: float
    setup_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.wall_s / self.config.ideal_s if self.config.ideal_s else float("nan")

    @property
    def waiting_s(self) -> float:
        return self.wall_s - self.store_s - self.progress_s - self.finish_s


# The parent: the simulator, one database and one subprocess per configuration, then the tables.


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_config is not None:
        return child_main(args)
    if args.child_simulator:
        return serve_simulator()
    started = time.perf_counter()
    configs = [Config("time", args.students, args.latency_ms, c) for c in args.concurrency]
    configs += [
        Config("time", args.students, args.latency_ms, max(args.concurrency), mirrors="empty")
        for _ in range(args.first_sync)
    ]
    configs += [
        Config("memory", size, args.memory_latency_ms, args.memory_concurrency) for size in args.memory_sizes
    ]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp, simulator(args, Path(tmp)) as sim:
        for number, config in enumerate(configs, start=1):
            name = f"bench_sync_{number}"
            with database_for(name, server_url=args.database_url, tmp=Path(tmp)) as url:
                results.append(
                    run_child(config, name=name, url=url, simulator_url=sim, args=args, tmp=Path(tmp))
                )
    runtime_s = time.perf_counter() - started
    markdown = render_markdown(results, args=args, runtime_s=runtime_s)
    print(markdown)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"sync-{results[0].engine}.md"
    out.write_text(markdown + "\n")
    print(f"\nWritten to {out.relative_to(REPO_ROOT)}", file=sys.stderr)
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Wall time of a class sync against the ideal by concurrency, and its peak memory by size."
    )
    parser.add_argument(
        "--students", type=positive_int, default=1000, help="students in the timed class (1000)"
    )
    parser.add_argument("--latency-ms", type=positive_int, default=50, help="simulated platform latency (50)")
    parser.add_argument(
        "--concurrency",
        type=_numbers,
        default=[1, 16],
        help="client concurrencies to time, comma-separated (1,16)",
    )
    parser.add_argument(
        "--first-sync",
        type=int,
        choices=(0, 1),
        default=1,
        help="also time a first sync (mirrors emptied, every row inserted) at the highest concurrency (1)",
    )
    parser.add_argument(
        "--memory-sizes",
        type=_numbers_or_none,
        default=[250, 500, 1000],
        help="class sizes synced under tracemalloc, comma-separated, or 'none' (250,500,1000)",
    )
    parser.add_argument(
        "--memory-latency-ms", type=int, default=5, help="simulated latency for the memory part (5)"
    )
    parser.add_argument(
        "--memory-concurrency", type=positive_int, default=16, help="concurrency for the memory part (16)"
    )
    parser.add_argument(
        "--simulator",
        choices=("process", "thread"),
        default="process",
        help="run the platform simulator in a separate process (default) or a thread of the measured one",
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to use, e.g. postgres://postgres@127.0.0.1:5432/postgres; the bench "
        "creates and drops a database bench_sync_<n> there per configuration (default: SQLite files "
        "in a temporary directory)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="run with DEBUG=1 (default DEBUG=0, as a worker)"
    )
    # Internal: how the parent runs one configuration in a subprocess.
    parser.add_argument("--child-config", help=argparse.SUPPRESS)
    parser.add_argument("--child-simulator-url", help=argparse.SUPPRESS)
    parser.add_argument("--child-simulator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.database_url and urlsplit(args.database_url).scheme not in POSTGRES_SCHEMES:
        parser.error("--database-url must be a postgres:// URL (SQLite is the default)")
    if args.memory_latency_ms < 0:
        parser.error("--memory-latency-ms must be zero or more")
    return args


def _numbers(value: str) -> list[int]:
    numbers = [positive_int(part) for part in value.split(",") if part.strip()]
    if not numbers:
        raise argparse.ArgumentTypeError("give at least one number")
    return numbers


def _numbers_or_none(value: str) -> list[int]:
    return [] if value.strip().lower() in ("", "none") else _numbers(value)


def child_env(url: str, args: argparse.Namespace) -> dict[str, str]:
    # A worker's settings: the task that sync_run_request enqueues must not run in-line.
    return bench_env(url, debug=args.debug, secret_key=BENCH_SECRET_KEY, Q_SYNC="0")


@contextmanager
def simulator(args: argparse.Namespace, tmp: Path) -> Iterator[str | None]:
    """The simulator as a process of its own; None with --simulator thread (it runs in the child)."""
    if args.simulator == "thread":
        yield None
        return
    # The simulator opens no database; the URL only keeps it off the developer's db.sqlite3.
    with simulator_process(
        Path(__file__).resolve(), child_env(f"sqlite:///{tmp / 'simulator.sqlite3'}", args)
    ) as url:
        yield url


def run_child(
    config: Config, *, name: str, url: str, simulator_url: str | None, args: argparse.Namespace, tmp: Path
) -> Result:
    env = child_env(url, args)
    label = (
        f"{config.kind} {config.students} students, {config.latency_ms} ms, "
        f"concurrency {config.concurrency}, mirrors {config.mirrors}"
    )
    print(f"{label}: migrate, seed ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    # The child's stdout goes to stderr so that stdout carries only the tables.
    for command in (["migrate", "--verbosity", "0"], ["seed_demo", "--class-size", str(config.students)]):
        subprocess.run(
            [sys.executable, str(MANAGE), *command], env=env, cwd=REPO_ROOT, check=True, stdout=sys.stderr
        )
    setup_s = time.perf_counter() - started
    print(f"{label}: sync ...", file=sys.stderr, flush=True)
    output = tmp / f"{name}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        f"--child-config={json.dumps(asdict(config))}",
        f"--child-output={output}",
    ]
    if simulator_url:
        command.append(f"--child-simulator-url={simulator_url}")
    subprocess.run(command, env=env, cwd=REPO_ROOT, check=True, stdout=sys.stderr)
    data = json.loads(output.read_text())
    result = Result(**{**data, "config": Config(**data["config"])})
    result.setup_s = setup_s
    print(
        f"{label}: setup {setup_s:.1f} s, sync {result.wall_s:.2f} s ({result.ratio:.2f}x ideal)",
        file=sys.stderr,
        flush=True,
    )
    return result


def render_markdown(results: list[Result], *, args: argparse.Namespace, runtime_s: float) -> str:
    first = results[0]
    timed = [r for r in results if r.config.kind == "time"]
    memory = [r for r in results if r.config.kind == "memory"]
    simulator = (
        "a separate process (`PlatformServer`, as `manage.py platform_sim`)"
        if first.simulator == "process"
        else "a thread of the measured process (`start_in_thread`)"
    )
    lines = [
        f"# Platform sync of one class, {first.engine_name}",
        "",
        f"Machine: nproc {len(os.sched_getaffinity(0))}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, Django {first.django_version}, "
        f"DB {first.engine_name} {first.engine_version}, DEBUG={first.debug}. "
        f"Simulator on loopback in {simulator}. Class-scope run of a class of N students "
        f"(`seed_demo --class-size N`), every cursor reset so each student is fully fetched, "
        "one GET per student checked on the simulator.",
    ]
    if timed:
        lines += [
            "",
            "## Wall time against the ideal (students x latency / concurrency)",
            "",
            "| students | mirrors | latency ms | single fetch ms | concurrency | wall s | ideal s | ratio "
            "| students/s | run | ok / failed | GETs |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
        ]
        for r in timed:
            c = r.config
            lines.append(
                f"| {c.students:,} | {c.mirrors} | {c.latency_ms} | {r.single_fetch_ms:.1f} "
                f"| {c.concurrency} "
                f"| {r.wall_s:.2f} | {c.ideal_s:.2f} | {r.ratio:.2f} | {c.students / r.wall_s:.0f} "
                f"| {r.status} | {r.succeeded:,} / {r.failed} | {r.gets:,} |"
            )
        lines += [
            "",
            "## Where the time goes",
            "",
            "Main thread: storing the fetched students, a batch per transaction (`_store`, of which SQL), "
            "progress saves, the end of the "
            "run (`_finish`, of which the alerts recompute) and the rest, mostly waiting for fetches. "
            "SQL is the statements' time through the cursor (not the transactions' COMMIT). "
            "Fetch: per student on the client's threads (latency, HTTP, JSON). CPU: the whole process.",
            "",
            "| concurrency | mirrors | wall s | store s | of which SQL s | store ms / student | progress s "
            "| finish s | of which alerts s | rest (waiting) s | fetch median ms | fetch p95 ms | CPU s |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in timed:
            lines.append(
                f"| {r.config.concurrency} | {r.config.mirrors} | {r.wall_s:.2f} | {r.store_s:.2f} "
                f"| {r.store_sql_s:.2f} "
                f"| {r.store_s / r.config.students * 1000:.2f} | {r.progress_s:.2f} | {r.finish_s:.2f} "
                f"| {r.alerts_s:.2f} | {r.waiting_s:.2f} | {r.fetch_median_ms:.0f} | {r.fetch_p95_ms:.0f} "
                f"| {r.cpu_s:.2f} |"
            )
    if memory:
        lines += [
            "",
            "## Peak memory by number of students (tracemalloc around `sync_run_execute`)",
            "",
            "Peak KiB: of the whole `sync_run_execute`; of its loop (fetching and storing students); of "
            "its end (`_finish`: the counts, and the alerts recomputed in chunks of 500 students).",
            "",
            "| students | latency ms | concurrency | wall s (traced) | peak KiB | loop peak KiB "
            "| finish peak KiB | ru_maxrss before MiB | ru_maxrss after MiB | run | ok / failed | GETs |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
        ]
        for r in memory:
            c = r.config
            lines.append(
                f"| {c.students:,} | {c.latency_ms} | {c.concurrency} | {r.wall_s:.2f} | {r.peak_kib:,.0f} "
                f"| {r.loop_peak_kib or 0:,.0f} | {r.finish_peak_kib or 0:,.0f} "
                f"| {r.maxrss_before_kib / 1024:.1f} | {r.maxrss_after_kib / 1024:.1f} | {r.status} "
                f"| {r.succeeded:,} / {r.failed} | {r.gets:,} |"
            )
    lines.append("")
    for r in timed:
        if r.config.concurrency > 1:
            verdict = "within" if r.ratio <= GOAL_RATIO else "NOT within"
            lines.append(
                f"- Concurrency {r.config.concurrency}, mirrors {r.config.mirrors}: {r.ratio:.2f}x the "
                f"ideal, {verdict} the goal of "
                f"{GOAL_RATIO}x ({r.config.ideal_s * GOAL_RATIO:.2f} s)."
            )
    if len(memory) > 1:
        by_size = sorted(memory, key=lambda r: r.config.students)
        small, large = by_size[0], by_size[-1]
        assert small.peak_kib and large.peak_kib
        growth = large.peak_kib / small.peak_kib
        lines.append(
            f"- Peak traced memory at {large.config.students:,} students is {growth:.2f}x that at "
            f"{small.config.students:,} ({large.config.students / small.config.students:.0f}x the students)."
        )
    for r in results:
        lines.extend(
            f"- {r.config.kind} {r.config.students:,} / {r.config.concurrency}: {note}" for note in r.notes
        )
    setup_s = sum(r.setup_s for r in results)
    lines.append(f"- Script runtime {runtime_s:.0f} s, of which migrate and seed {setup_s:.0f} s.")
    return "\n".join(lines)


# The child: one configuration in its own database.


def child_main(args: argparse.Namespace) -> int:
    setup_child()
    config = Config(**json.loads(args.child_config))
    result = measure(config, simulator_url=args.child_simulator_url)
    Path(args.child_output).write_text(json.dumps(asdict(result)))
    return 0


class Timers:
    """Wraps the sync module's steps with timers for the duration of one run."""

    def __init__(self) -> None:
        # Under tracemalloc: the peak until `_finish` starts (fetching and storing), and in it.
        self.loop_peak_kib: float | None = None
        self.totals = {
            "store": 0.0,
            "store_sql": 0.0,
            "sql": 0.0,
            "progress": 0.0,
            "finish": 0.0,
            "alerts": 0.0,
        }
        self._in_store = False

    @contextmanager
    def installed(self) -> Iterator[None]:
        from django.db import connection

        from classroom.platform import sync

        names = {
            "_store": "store",
            "_save_progress": "progress",
            "_finish": "finish",
            "alerts_recompute": "alerts",
        }
        originals = {name: getattr(sync, name) for name in names}
        for name, key in names.items():
            setattr(sync, name, self._timed(originals[name], key))
        try:
            with connection.execute_wrapper(self._sql):
                yield
        finally:
            for name, original in originals.items():
                setattr(sync, name, original)

    def _timed(self, function: Any, key: str) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if key == "finish" and tracemalloc.is_tracing():
                self.loop_peak_kib = tracemalloc.get_traced_memory()[1] / 1024
                tracemalloc.reset_peak()
            start = time.perf_counter()
            if key == "store":
                self._in_store = True
            try:
                return function(*args, **kwargs)
            finally:
                self.totals[key] += time.perf_counter() - start
                if key == "store":
                    self._in_store = False

        return timed

    def _sql(self, execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - start
            self.totals["sql"] += elapsed
            if self._in_store:
                self.totals["store_sql"] += elapsed


def measure(config: Config, *, simulator_url: str | None) -> Result:
    import httpx
    from django.conf import settings
    from django.db import connection

    from audit import context
    from classroom.models import (
        Assignment,
        DailyPerformance,
        Enrollment,
        SchoolClass,
        Student,
        StudentSyncState,
        StudyPlanProgress,
        SyncRun,
        SyncRunStudent,
    )
    from classroom.platform.client import PlatformClient
    from classroom.platform.simulator import SimulatorConfig, start_in_thread
    from classroom.platform.sync import sync_run_execute, sync_run_request

    school_class = SchoolClass.objects.select_related("organisation").get(platform_id=CLASS_PLATFORM_ID)
    organisation = school_class.organisation
    roster = Student.objects.filter(
        enrollments__school_class=school_class, enrollments__status=Enrollment.Status.ACTIVE
    ).order_by("pk")
    if roster.count() != config.students:
        raise SystemExit(
            f"class {CLASS_PLATFORM_ID} has {roster.count()} students, expected {config.students}"
        )
    if connection.vendor == "postgresql":
        # A live database has planner statistics from autovacuum; a freshly seeded one has none.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")

    server = None
    if simulator_url is None:
        server = start_in_thread(SimulatorConfig(latency_ms=config.latency_ms), host="127.0.0.1", port=0)
        simulator_url = server.url
    notes: list[str] = []
    try:
        with httpx.Client(base_url=simulator_url, timeout=10) as control, context.bind(source="command"):
            control.post("/_sim/config", json={"latency_ms": config.latency_ms}).raise_for_status()

            # Warm-up, untimed: the platform's round trip one at a time, then one student synced.
            first = roster.first()
            assert first is not None
            with PlatformClient(base_url=simulator_url, concurrency=1) as client:
                single = []
                for _ in range(11):
                    start = time.perf_counter()
                    client.fetch_changes(first.platform_id, since=None)
                    single.append((time.perf_counter() - start) * 1000)
            single_fetch_ms = statistics.median(single[1:])
            run, _ = sync_run_request(
                organisation=organisation, student=first, trigger=SyncRun.Trigger.COMMAND
            )
            with PlatformClient(base_url=simulator_url, concurrency=config.concurrency) as client:
                warm = sync_run_execute(run_id=run.pk, client=client)
            if warm.status != SyncRun.Status.SUCCEEDED:
                raise SystemExit(f"warm-up sync {warm.status}: {warm.error} {warm.hint}")

            StudentSyncState.objects.update(cursor=None)
            if config.mirrors == "empty":
                for model in (DailyPerformance, Assignment, StudyPlanProgress, StudentSyncState):
                    model.objects.filter(student__in=roster).delete()
            control.post("/_sim/reset").raise_for_status()
            run, created = sync_run_request(
                organisation=organisation, school_class=school_class, trigger=SyncRun.Trigger.COMMAND
            )
            if not created:
                raise SystemExit(f"a run for {school_class} was already active: {run}")

            timers = Timers()
            client = PlatformClient(base_url=simulator_url, concurrency=config.concurrency)
            gc.collect()
            maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            peak_kib = finish_peak_kib = None
            with timers.installed():
                if config.kind == "memory":
                    tracemalloc.start()
                cpu_started, started = time.process_time(), time.perf_counter()
                finished = sync_run_execute(run_id=run.pk, client=client)
                wall_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
                if config.kind == "memory":
                    finish_peak_kib = tracemalloc.get_traced_memory()[1] / 1024
                    tracemalloc.stop()
                    peak_kib = max(finish_peak_kib, timers.loop_peak_kib or 0)
            maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            client.close()
            report = control.get("/_sim/report").json()["data"]
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()

    # The run must be the run we mean to time: everyone synced, one GET each.
    gets = {path: n for path, n in report["by_path"].items() if path.startswith("GET /v1/students/")}
    problems = []
    if finished.status != SyncRun.Status.SUCCEEDED or finished.failed:
        problems.append(f"run {finished.status}, {finished.failed} failed: {finished.error} {finished.hint}")
    if finished.total != config.students or finished.succeeded != config.students:
        problems.append(
            f"run total {finished.total}, succeeded {finished.succeeded}, expected {config.students}"
        )
    if (
        len(gets) != config.students
        or sum(gets.values()) != config.students
        or report["requests"] != sum(gets.values())
    ):
        problems.append(
            f"simulator saw {report['requests']} requests, {sum(gets.values())} student GETs on "
            f"{len(gets)} paths, expected {config.students} on {config.students}"
        )
    if set(report["status_counts"]) != {"200"}:
        problems.append(f"simulator answered {report['status_counts']}")
    if problems:
        raise SystemExit("; ".join(problems))

    durations = list(SyncRunStudent.objects.filter(run=finished).values_list("duration_ms", flat=True))
    if config.kind == "time":
        notes.append("rows upserted: " + ", ".join(f"{name} {n:,}" for name, n in finished.rows.items()))
    return Result(
        config=config,
        wall_s=wall_s,
        cpu_s=cpu_s,
        status=finished.status,
        total=finished.total,
        succeeded=finished.succeeded,
        failed=finished.failed,
        rows=finished.rows,
        gets=sum(gets.values()),
        distinct_gets=len(gets),
        statuses=report["status_counts"],
        store_s=timers.totals["store"],
        store_sql_s=timers.totals["store_sql"],
        sql_s=timers.totals["sql"],
        progress_s=timers.totals["progress"],
        finish_s=timers.totals["finish"],
        alerts_s=timers.totals["alerts"],
        fetch_median_ms=statistics.median(durations),
        fetch_p95_ms=percentile(durations, 95),
        peak_kib=peak_kib,
        loop_peak_kib=timers.loop_peak_kib,
        finish_peak_kib=finish_peak_kib,
        maxrss_before_kib=maxrss_before,
        maxrss_after_kib=maxrss_after,
        engine=connection.vendor,
        engine_name=connection.display_name,
        engine_version=".".join(str(part) for part in connection.get_database_version()),
        django_version=django_version(),
        debug=settings.DEBUG,
        simulator="thread" if server is not None else "process",
        single_fetch_ms=single_fetch_ms,
        notes=notes,
    )


if __name__ == "__main__":
    sys.exit(main())
