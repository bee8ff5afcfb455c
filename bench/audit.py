"""The activity log at a million events on PostgreSQL: the CSV export against COPY, and the search page.

Usage, from the repo root:

    .venv/bin/python bench/audit.py --database-url postgres://postgres@127.0.0.1:5432/postgres
        [--events 1000000] [--class-size 200] [--runs 20] [--warmup 3] [--seed 4] [--keep | --reuse]

The goal (from issue 4): with 1,000,000 events on PostgreSQL, the export's rows per second and
peak memory, and the search page's median time for three typical filters, beside PostgreSQL's
own `COPY ... TO STDOUT` rate for the same rows as the floor.

Method
1. A database `bench_audit` is created on the given server (dropped first if left over, dropped
   at the end unless `--keep`). `manage.py migrate` runs in a subprocess, then `seed_demo
   --class-size N` in a subprocess of this script whose clock (`django.utils.timezone.now`) is
   set back by the history plus a day: the demo school (1 organisation, 3 classes, 3 x N
   students, the teachers ms.rivera and mr.okafor, the compliance user) and the events the seed
   records then sit at the start of its organisation's chain, a year and a day ago, and the
   loaded history can follow them in time up to now. (A chain must be in time order: verify_audit
   refuses an event older than the one before it, so a year of history cannot come after a seed
   made now.)
2. The events are loaded by a subprocess of this script: they continue the organisation's chain
   from its `ChainHead` (checked against its newest event), each with its `seq`, its
   `personal_digest` and its `hash` from `audit.chain.personal_digest` and `audit.chain.event_hash`,
   as `audit.services.record` computes them, and are written by one `COPY audit_activityevent
   (...) FROM STDIN` in the transaction that then moves the `ChainHead` to the last one; the
   table keeps all its indexes and its append-only trigger (which refuses UPDATE and DELETE,
   not COPY). Then `VACUUM ANALYZE` (the statistics and visibility map autovacuum keeps on a live
   database). The history is generated with a fixed seed as episodes sharing a correlation id:
   class syncs (sync.requested, a student.updated with field changes or a sync.student_failed per
   changed student, sync.finished; some are platform outages), one-student refreshes, alerts
   opened by the worker, acknowledged and resolved by the teachers, dispatches, study plans drafted
   by the agent (pending approval) and published or rejected by a teacher, sign-ins, teachers'
   edits, exports. Their start times are spread over the last 365 days with a school's rhythm
   (weekdays, school hours), in increasing order. The mix actually generated (failed and pending
   shares, details sizes) is given under the tables.
3. `manage.py verify_audit` then runs in a subprocess, timed; it must pass.
4. The measurements run in another subprocess, in-process through `django.test.Client` (the whole
   middleware stack, no socket), logged in as `compliance` (the whole organisation) with
   `force_login`, over HTTPS (`secure=True`: with DEBUG=0 the settings redirect plain HTTP), with
   static files collected into a temporary STATIC_ROOT so the manifest storage of DEBUG=0 works.
   - Search: `GET /audit/` with three typical filters, one student's events in the last 30 days
     (`student=<name>&since=`: a last name if one names a single student, else a full name, as the
     demo school repeats its last names), the organisation's failures in the last 7 days
     (`status=failed&since=`) and its next page (the `after=` link of the first),
     `action=sync&q=timeout` (a word in some failures' rationale); beside them the page with no
     filter and a `@login_required` floor view (bench/urls.py). After `--warmup` untimed
     requests each, `--runs` timed requests each round-robin, `time.perf_counter()` around
     `client.get`; SQL ms is the time inside the cursor's execute (`connection.execute_wrapper`),
     queries come from one more request under `CaptureQueriesContext`. Every response is checked
     against a count of the same filter made by plain SQL: status 200, the number of rows on the
     page, and whether it offers a next page.
   - Export: `GET /audit/export.csv`, with no filter (every event of the organisation) and with
     `status=failed`; `response.streaming_content` is read to the end, counting bytes and lines;
     rows/s is rows over the wall time of the request and the reading. The rows must equal the
     organisation's events counted after the export (the export records its own `audit.exported`
     event first, and exports it too). Each export runs twice: once timed, with ru_maxrss before
     and after; once under `tracemalloc` for the peak of Python allocations (slower, so its wall
     time is not the rate). The floor is `COPY (SELECT <selectors.EXPORT_COLUMNS> FROM
     audit_activityevent WHERE organisation_id = X [AND status = 'failed'] ORDER BY occurred_at
     DESC, id DESC) TO STDOUT WITH CSV` on the same connection through psycopg's `cursor.copy`,
     every block read and its lines counted. A first COPY, untimed, reads the table and its index
     into the caches before anything is timed.

Settings are what `tutor.settings` reads from the environment, with DEBUG=0 (as production; with
DEBUG=1 Django keeps the last 9,000 queries of the connection), a bench SECRET_KEY if none is set,
and ALLOWED_HOSTS=testserver. The test client keeps its database connection between requests, as
a web process with `CONN_MAX_AGE` > 0 does. p95 is the nearest-rank percentile.
"""

from __future__ import annotations

import argparse
import gc
import html
import json
import os
import platform
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.common import (  # noqa: E402 - after the repo root is on sys.path
    database_url,
    django_version,
    percentile,
    positive_int,
    postgres_database,
)

RESULTS_DIR = REPO_ROOT / "bench" / "results"
MANAGE = REPO_ROOT / "manage.py"
POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql")
DATABASE_NAME = "bench_audit"
BENCH_SECRET_KEY = "bench-audit-not-a-secret"
COMPLIANCE_USER = "compliance"
HISTORY_DAYS = 365
SEARCH_WORD = "timeout"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COPY_COLUMNS = (
    "occurred_at",
    "organisation_id",
    "actor_id",
    "actor_name",
    "verb",
    "target_type",
    "target_id",
    "student_id",
    "class_id",
    "why",
    "status",
    "source",
    "correlation_id",
    "details",
    "seq",
    "personal_digest",
    "key_id",
    "hash",
)


# The parent: the database, then migrate, seed, load, verify and measure, each in a subprocess.


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child == "seed":
        return child_seed(args)
    if args.child == "load":
        return child_load(args)
    if args.child == "measure":
        return child_measure(args)
    started = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp, database(args) as url:
        env = child_env(url)
        setup: dict[str, Any] = {"reused": args.reuse}
        if not args.reuse:
            setup.update(prepare(args, env=env, tmp=Path(tmp)))
        measured = run_child(args, "measure", env=env, tmp=Path(tmp))
    runtime_s = time.perf_counter() - started
    markdown = render_markdown(
        setup, measured, args=args, runtime_s=runtime_s, load=(load_before, os.getloadavg())
    )
    print(markdown)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / "audit-postgresql.md"
    out.write_text(markdown + "\n")
    print(f"\nWritten to {out.relative_to(REPO_ROOT)}", file=sys.stderr)
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="CSV export rows/s and peak memory against COPY, and /audit/ search times, "
        "at a million events on PostgreSQL."
    )
    parser.add_argument(
        "--database-url",
        help="the PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/postgres; the bench creates "
        f"a database {DATABASE_NAME} there and drops it at the end",
    )
    parser.add_argument("--events", type=positive_int, default=1_000_000, help="events to load (1000000)")
    parser.add_argument(
        "--class-size",
        type=positive_int,
        default=200,
        help="students per demo class, seed_demo --class-size (200)",
    )
    parser.add_argument("--runs", type=positive_int, default=20, help="timed requests per search page (20)")
    parser.add_argument("--warmup", type=positive_int, default=3, help="untimed requests per search page (3)")
    parser.add_argument("--seed", type=int, default=4, help="random seed of the generated history (4)")
    parser.add_argument("--keep", action="store_true", help=f"keep the database {DATABASE_NAME} afterwards")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help=f"measure a database {DATABASE_NAME} left by --keep (no migrate, seed, load, verify; kept)",
    )
    # Internal: how the parent runs a step in a subprocess.
    parser.add_argument("--child", choices=("seed", "load", "measure"), help=argparse.SUPPRESS)
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return args
    if not args.database_url:
        parser.error("--database-url is required: this bench measures PostgreSQL (postgres://...)")
    if urlsplit(args.database_url).scheme not in POSTGRES_SCHEMES:
        parser.error("--database-url must be a postgres:// URL")
    return args


def child_env(url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "tutor.settings",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
        # Nothing the pages or the seed enqueue may run in-line.
        "Q_SYNC": "0",
        "PYTHONUNBUFFERED": "1",
    }
    if not os.environ.get("SECRET_KEY"):
        env["SECRET_KEY"] = BENCH_SECRET_KEY
    if not os.environ.get("AUDIT_CHAIN_KEY"):
        env["AUDIT_CHAIN_KEY"] = f"{env['SECRET_KEY']}-audit-chain"
    return env


@contextmanager
def database(args: argparse.Namespace) -> Iterator[str]:
    """The DATABASE_URL of `bench_audit`: created fresh and dropped afterwards, even when the run
    fails; with --reuse the existing one, kept; with --keep kept."""
    if args.reuse:
        import psycopg

        url = database_url(args.database_url, DATABASE_NAME)
        with psycopg.connect(url):
            pass  # fails clearly if there is nothing to reuse
        yield url
        return
    with postgres_database(args.database_url, DATABASE_NAME, keep=args.keep) as url:
        yield url


def prepare(args: argparse.Namespace, *, env: dict[str, str], tmp: Path) -> dict[str, Any]:
    """migrate, the seed, the load and verify_audit, each in a subprocess, timed."""
    timings: dict[str, Any] = {}
    # Children's stdout goes to stderr so that stdout carries only the tables.
    print("migrate ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, str(MANAGE), "migrate", "--verbosity", "0"],
        env=env,
        cwd=REPO_ROOT,
        check=True,
        stdout=sys.stderr,
    )
    timings["migrate_s"] = time.perf_counter() - started
    print(f"seed_demo --class-size {args.class_size} (a year and a day ago) ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    timings["seed"] = run_child(args, "seed", env=env, tmp=tmp)
    timings["seed_s"] = time.perf_counter() - started
    print(f"load {args.events:,} events ...", file=sys.stderr, flush=True)
    timings["load"] = run_child(args, "load", env=env, tmp=tmp)
    print(
        f"loaded in {timings['load']['total_s']:.1f} s "
        f"({args.events / timings['load']['copy_s']:,.0f} events/s through COPY); verify_audit ...",
        file=sys.stderr,
        flush=True,
    )
    started = time.perf_counter()
    verify = subprocess.run(
        [sys.executable, str(MANAGE), "verify_audit"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    timings["verify_s"] = time.perf_counter() - started
    timings["verify_output"] = (verify.stdout + verify.stderr).strip()
    if verify.returncode != 0:
        raise SystemExit(f"verify_audit failed (exit {verify.returncode}): {timings['verify_output']}")
    print(f"verify_audit: {timings['verify_output']} ({timings['verify_s']:.1f} s)", file=sys.stderr)
    return timings


def run_child(args: argparse.Namespace, step: str, *, env: dict[str, str], tmp: Path) -> dict[str, Any]:
    output = tmp / f"{step}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        f"--child={step}",
        f"--child-output={output}",
        f"--events={args.events}",
        f"--class-size={args.class_size}",
        f"--runs={args.runs}",
        f"--warmup={args.warmup}",
        f"--seed={args.seed}",
    ]
    subprocess.run(command, env=env, cwd=REPO_ROOT, check=True, stdout=sys.stderr)
    return json.loads(output.read_text())


def render_markdown(
    setup: dict[str, Any],
    measured: dict[str, Any],
    *,
    args: argparse.Namespace,
    runtime_s: float,
    load: tuple[tuple[float, ...], tuple[float, ...]],
) -> str:
    m = measured
    events = m["organisation_events"]
    lines = [
        f"# The activity log at {events:,} events, {m['engine_name']}",
        "",
        f"Machine: nproc {len(os.sched_getaffinity(0))}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, Django {m['django_version']}, "
        f"DB {m['engine_name']} {m['engine_version']} on loopback (shared_buffers {m['shared_buffers']}, "
        f"work_mem {m['work_mem']}), DEBUG={m['debug']}. The cores are shared with other work: load "
        f"average {load[0][0]:.2f} at the start, {load[1][0]:.2f} at the end. In-process through the "
        f"whole middleware stack (`django.test.Client`, HTTPS), as `{COMPLIANCE_USER}` (the whole "
        f"organisation). Table: {m['table_mib']:,.0f} MiB of rows, {m['index_mib']:,.0f} MiB of "
        f"indexes ({m['indexes']}).",
        "",
        "## CSV export against PostgreSQL's COPY of the same rows",
        "",
        "Export: `GET /audit/export.csv` read to the end (rows over wall time, header excluded). "
        "COPY: `COPY (SELECT <the export's columns> ... ORDER BY occurred_at DESC, id DESC) TO STDOUT "
        "WITH CSV` through psycopg, every block read.",
        "",
        "| export | rows | export MiB | export s | export rows/s | COPY MiB | COPY s | COPY rows/s "
        "| COPY / export | export SQL s | export queries |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in m["exports"]:
        lines.append(
            f"| {e['label']} | {e['rows']:,} | {e['bytes'] / 2**20:,.1f} | {e['wall_s']:.2f} "
            f"| {e['rows'] / e['wall_s']:,.0f} | {e['copy_bytes'] / 2**20:,.1f} | {e['copy_s']:.2f} "
            f"| {e['copy_rows'] / e['copy_s']:,.0f} "
            f"| {(e['copy_rows'] / e['copy_s']) / (e['rows'] / e['wall_s']):.1f}x "
            f"| {e['sql_s']:.2f} | {e['queries']:,} |"
        )
    lines += [
        "",
        "## Peak memory of the export",
        "",
        "tracemalloc: the peak of Python allocations during a second run of the same export under "
        "tracemalloc (its wall time, slowed by tracing, is not the rate). ru_maxrss: the process's "
        "resident peak before and after the timed run (it includes what tracemalloc does not see, "
        "such as psycopg's buffers; it never goes down, so the second export can only show growth "
        "beyond the first).",
        "",
        "| export | rows | tracemalloc peak MiB | traced wall s | ru_maxrss before MiB "
        "| ru_maxrss after MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for e in m["exports"]:
        lines.append(
            f"| {e['label']} | {e['traced_rows']:,} | {e['peak_kib'] / 1024:,.1f} | {e['traced_wall_s']:.2f} "
            f"| {e['maxrss_before_kib'] / 1024:,.1f} | {e['maxrss_after_kib'] / 1024:,.1f} |"
        )
    lines += [
        "",
        "## Search page `GET /audit/`",
        "",
        f"{m['runs']} timed requests per page, round-robin after {m['warmup']} warm-up; page size "
        f"{m['page_size']}, newest first. Matches: the filter's events counted by plain SQL; every response "
        "was checked for that many rows (up to a page) and for a next-page link when there are more.",
        "",
        "| page | query | matches | rows | median ms | p95 ms | median over floor ms | SQL ms (median) "
        "| queries |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    floor = m["pages"][0]["median_ms"]
    for p in m["pages"]:
        query = f"`{p['query']}`" if p["query"] else ""
        over = "" if p is m["pages"][0] else f"{p['median_ms'] - floor:.1f}"
        matches = "" if p["matches"] is None else f"{p['matches']:,}"
        rows = "" if p["rows"] is None else str(p["rows"])
        lines.append(
            f"| {p['label']} | {query} | {matches} | {rows} | {p['median_ms']:.1f} | {p['p95_ms']:.1f} "
            f"| {over} | {p['sql_median_ms']:.1f} | {p['queries']} |"
        )
    lines += ["", "## Loading and verifying", ""]
    if setup.get("reused"):
        lines.append(f"The database {DATABASE_NAME} was reused (`--reuse`): no load or verify this run.")
    else:
        ld = setup["load"]
        lines += [
            "| step | s | |",
            "|---|---:|---|",
            f"| migrate | {setup['migrate_s']:.1f} | |",
            f"| seed_demo --class-size {args.class_size} | {setup['seed_s']:.1f} "
            f"| {ld['students']:,} students, {ld['classes']} classes, "
            f"{ld['seed_events']} events in the chain |",
            f"| generate, hash and COPY {ld['events']:,} events | {ld['copy_s']:.1f} "
            f"| {ld['events'] / ld['copy_s']:,.0f} events/s; Python CPU {ld['cpu_s']:.1f} s, "
            f"of which hashing {ld['hash_s']:.1f} s |",
            f"| commit and move the chain head | {ld['commit_s']:.1f} | |",
            f"| VACUUM ANALYZE | {ld['vacuum_s']:.1f} | |",
            f"| load in all | {ld['total_s']:.1f} | {ld['events'] / ld['total_s']:,.0f} events/s |",
            f"| `manage.py verify_audit` | {setup['verify_s']:.1f} | {setup['verify_output']} |",
        ]
        mix = ld["mix"]
        lines += [
            "",
            f"Generated history: {ld['events']:,} events in {ld['episodes']:,} episodes (correlation ids), "
            f"{mix['first']} to {mix['last']}; failed {mix['failed_pct']:.1f}%, pending "
            f"{mix['pending_pct']:.1f}%; with a student {mix['with_student_pct']:.0f}%, with a class "
            f"{mix['with_class_pct']:.0f}%; details {mix['details_min']}-{mix['details_max']} bytes "
            f"(mean {mix['details_mean']:.0f}); sources "
            + ", ".join(f"{k} {v:.0f}%" for k, v in mix["sources_pct"].items())
            + ". Verbs: "
            + ", ".join(f"{k} {v:,}" for k, v in mix["verbs"].items())
            + ".",
        ]
    lines.append("")
    lines.extend(f"- {note}" for note in m["notes"])
    lines.append(f"- Script runtime {runtime_s:.0f} s.")
    return "\n".join(lines)


# Child: the demo school, seeded a year and a day ago.


def _django_setup() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutor.settings")
    django.setup()
    from django.conf import settings

    database_settings = settings.DATABASES["default"]
    if not database_settings["ENGINE"].endswith("postgresql"):
        raise SystemExit("this bench runs on PostgreSQL only; run it via the parent with --database-url")
    if database_settings["NAME"] != DATABASE_NAME:
        raise SystemExit(f"refusing to run against {database_settings['NAME']!r}; run via the parent")


def child_seed(args: argparse.Namespace) -> int:
    from django.utils import timezone

    real_now = timezone.now
    shift = timedelta(days=HISTORY_DAYS + 1)
    # Before django.setup(), so every module and field default sees the shifted clock.
    timezone.now = lambda: real_now() - shift
    _django_setup()
    from django.core.management import call_command

    call_command("seed_demo", class_size=args.class_size, stdout=sys.stderr)
    Path(args.child_output).write_text(json.dumps({"shift_days": shift.days}))
    return 0


# Child: a year of history appended to the demo school's chain with COPY.


@dataclass(frozen=True)
class Kid:
    id: int
    first: str
    last: str
    platform_id: str
    class_id: int

    @property
    def scope(self) -> tuple[int, int]:
        return (self.id, self.class_id)


@dataclass
class World:
    organisation_id: int
    classes: dict[int, tuple[str, str]]  # id -> (name, platform id)
    roster: dict[int, list[Kid]]  # class id -> students
    teachers: dict[int, tuple[int, str]]  # class id -> (user id, username)
    users: dict[str, int]  # username -> id

    @property
    def students(self) -> list[Kid]:
        return [kid for kids in self.roster.values() for kid in kids]


TOPICS = (
    "linear equations",
    "quadratics",
    "factorising",
    "simultaneous equations",
    "cell biology",
    "photosynthesis",
    "genetics",
    "ecosystems",
)
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Safari/605.1",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0",
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
)
ACKNOWLEDGEMENTS = (
    "Spoke with {first} after class; agreed to hand in the {topic} work by Friday.",
    "Called home: {first} was ill last week and is catching up on {topic}.",
    "Moved {first} to the Tuesday small-group session for {topic}.",
    "{first} knows; I will check the {topic} homework again next lesson.",
    "Emailed {first}'s form tutor; extra time agreed for the {topic} assessment.",
    "Seen. {first} finds {topic} hard; paired with a peer mentor for two weeks.",
)
RESOLUTIONS = (
    "Resolved: the overdue work was handed in.",
    "Resolved after the catch-up session on {topic}.",
    "Resolved: mastery is moving again after the practice set.",
)
STUDENT_FAILURES = (
    "Platform timeout after 15 s fetching {pid}; gave up after 4 attempts.",
    "Platform answered 503 Service Unavailable for {pid} after 4 attempts.",
    "Platform rejected the sync token (401) for {pid}; check PLATFORM_TOKEN.",
    "Platform rate limit (429) asked to wait 120 s for {pid}, longer than the 60 s allowed.",
)
OUTAGE = "Platform unavailable (connection refused) for {pid}; the circuit breaker stopped the run."
ALERT_KINDS = ("overdue", "stalled", "low_confidence", "draft_expiring")
OK, FAILED, PENDING = "succeeded", "failed", "pending"
RELEASE = "2026.11.3"
SYNC: tuple[int | None, str] = (None, "system:sync")
ALERTS: tuple[int | None, str] = (None, "system:alerts")
DISPATCH: tuple[int | None, str] = (None, "system:dispatch")
AGENT: tuple[int | None, str] = (None, "system:agent")
NO_TARGET = ("", "")
NO_SCOPE = (None, None)
# An event before it is chained: the arguments of History._row.
Spec = tuple[Any, ...]
REMEDIATION = {
    "timeout": "Retry the refresh; if it times out again the platform is slow, check its status page.",
    "503": "The platform is down or overloaded; the nightly sync retries, or refresh later.",
    "401": "The platform token was rejected: an admin renews PLATFORM_TOKEN.",
    "429": "The platform is rate limiting: wait a few minutes before refreshing again.",
    "outage": "The platform cannot be reached: check PLATFORM_BASE_URL and the platform's status.",
}


class History:
    """Episodes of activity, each sharing a correlation id, as chained COPY rows."""

    # Kind of episode and its weight; the number of events of an episode comes from `_count`.
    KINDS = (
        ("sync_class", 16),
        ("sync_student", 6),
        ("alert_opened", 14),
        ("alert_handled", 14),
        ("dispatch", 10),
        ("plan_draft", 5),
        ("plan_review", 4),
        ("login", 18),
        ("teacher_edit", 6),
        ("audit", 1),
    )

    def __init__(
        self, world: World, *, events: int, seed: int, first_seq: int, prev_hash: str, start: datetime
    ) -> None:
        self.world = world
        self.events = events
        self.rng = random.Random(seed)
        self.seq = first_seq - 1
        from audit import chain

        self.prev_hash = prev_hash
        self.key_id = chain.keyring().current.id
        self.start = start
        self.end = datetime.now(UTC) - timedelta(minutes=2)
        self.clock = self.last_us = _us(start)
        self.usernames = {user_id: name for name, user_id in world.users.items()}
        self.teacher_ids = sorted({teacher for teacher, _ in world.teachers.values()})
        self.counters = Counter[str]()
        self.hash_s = 0.0
        self.episodes = 0
        self.statuses, self.sources, self.verbs = Counter[str](), Counter[str](), Counter[str]()
        self.with_student = self.with_class = self.details_total = self.details_max = 0
        self.details_min = 10**9

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """Every event as a row of COPY_COLUMNS, in time order, chained."""
        plan = self._plan()
        starts = self._times(len(plan))
        self.episodes = len(plan)
        for (kind, count), start in zip(plan, starts, strict=True):
            self.clock = start
            corr = f"{self.rng.getrandbits(128):032x}"
            for spec in getattr(self, f"_{kind}")(count, corr)[:count]:
                yield self._row(*spec)

    def _plan(self) -> list[tuple[str, int]]:
        """(kind, number of events) per episode, adding up to exactly `events`."""
        kinds, weights = zip(*self.KINDS, strict=True)
        plan: list[tuple[str, int]] = []
        total = 0
        while total < self.events:
            kind = self.rng.choices(kinds, weights)[0]
            count = min(self._count(kind), self.events - total)
            plan.append((kind, count))
            total += count
        return plan

    def _count(self, kind: str) -> int:
        rng = self.rng
        counts = {
            "sync_class": lambda: 2 + rng.randint(2, 10),
            "sync_student": lambda: 3,
            "alert_opened": lambda: rng.randint(1, 3),
            "alert_handled": lambda: 2 if rng.random() < 0.3 else 1,
            "dispatch": lambda: 2 if rng.random() < 0.2 else 1,
            "teacher_edit": lambda: rng.randint(1, 2),
        }
        return counts.get(kind, lambda: 1)()

    def _times(self, n: int) -> list[int]:
        """n episode start times (microseconds since the epoch), sorted, with a school's rhythm:
        weekdays busier than weekends, school hours busier than evenings and nights."""
        rng = self.rng
        lo, hi = _us(self.start), _us(self.end)
        out: list[int] = []
        while len(out) < n:
            t = rng.randint(lo, hi)
            moment = EPOCH + timedelta(microseconds=t)
            weight = 1.0 if moment.weekday() < 5 else 0.15
            weight *= 1.0 if 7 <= moment.hour < 18 else (0.3 if 18 <= moment.hour < 23 else 0.08)
            if rng.random() < weight:
                out.append(t)
        out.sort()
        return out

    def _row(
        self,
        t_us: int,
        actor: tuple[int | None, str],
        verb: str,
        target: tuple[str, Any],
        scope: tuple[int | None, int | None],
        why: str,
        details: dict[str, Any],
        status: str,
        source: str,
        correlation_id: str,
    ) -> tuple[Any, ...]:
        """One event as a COPY row; seq, personal digest and hash as audit.services.record makes them."""
        from audit import chain

        self.last_us = t_us = max(t_us, self.last_us)  # never older than the event before it
        occurred_at = EPOCH + timedelta(microseconds=t_us)
        self.seq += 1
        details = {**details, "context": self._context(source, verb, correlation_id)}
        started = time.perf_counter()
        details_json = chain.canonical(details).decode()
        digest = chain.personal_digest(actor[1], why, details)
        fields = {
            "seq": self.seq,
            "organisation_id": self.world.organisation_id,
            "occurred_at": occurred_at,
            "actor_id": actor[0],
            "verb": verb,
            "target_type": target[0],
            "target_id": str(target[1]),
            "student_id": scope[0],
            "class_id": scope[1],
            "status": status,
            "source": source,
            "correlation_id": correlation_id,
            "personal_digest": digest,
            "key_id": self.key_id,
        }
        self.prev_hash = chain.event_hash(self.prev_hash, fields)
        self.hash_s += time.perf_counter() - started
        self.statuses[status] += 1
        self.sources[source] += 1
        self.verbs[verb] += 1
        self.with_student += scope[0] is not None
        self.with_class += scope[1] is not None
        size = len(details_json.encode())
        self.details_total += size
        self.details_min, self.details_max = min(self.details_min, size), max(self.details_max, size)
        return (
            occurred_at,
            self.world.organisation_id,
            actor[0],
            actor[1],
            verb,
            target[0],
            fields["target_id"],
            scope[0],
            scope[1],
            why,
            status,
            source,
            correlation_id,
            details_json,
            self.seq,
            digest,
            self.key_id,
            self.prev_hash,
        )

    def _context(self, source: str, verb: str, correlation_id: str) -> dict[str, str]:
        """Where the event was recorded: the web request or the task, as a deployment would note it."""
        if source == "page":
            return {"host": "web-1", "request_id": correlation_id[:20], "release": RELEASE}
        task = {"sync": "sync_run_execute", "alert": "alerts_recompute", "dispatch": "dispatch_weekly"}
        name = task.get(verb.split(".")[0], verb)
        return {"host": f"{source}-1", "task": name, "task_id": correlation_id[8:28], "release": RELEASE}

    def mix(self) -> dict[str, Any]:
        n = max(sum(self.statuses.values()), 1)
        return {
            "failed_pct": 100 * self.statuses["failed"] / n,
            "pending_pct": 100 * self.statuses["pending"] / n,
            "with_student_pct": 100 * self.with_student / n,
            "with_class_pct": 100 * self.with_class / n,
            "details_mean": self.details_total / n,
            "details_min": self.details_min,
            "details_max": self.details_max,
            "sources_pct": {k: 100 * v / n for k, v in self.sources.most_common()},
            "verbs": dict(self.verbs.most_common()),
        }

    # Episodes: each returns its events as `_row` arguments, in time order.

    def _tick(self, low_ms: int, high_ms: int) -> int:
        self.clock += self.rng.randint(low_ms * 1000, high_ms * 1000)
        return self.clock

    def _next(self, name: str) -> int:
        self.counters[name] += 1
        return self.counters[name]

    def _class(self) -> tuple[int, str, str, list[Kid], tuple[int, str]]:
        class_id = self.rng.choice(list(self.world.classes))
        name, platform_id = self.world.classes[class_id]
        return class_id, name, platform_id, self.world.roster[class_id], self.world.teachers[class_id]

    def _stamp(self, t_us: int) -> str:
        return (EPOCH + timedelta(microseconds=t_us)).isoformat(timespec="seconds")

    def _field_history(self, kid: Kid, corr: str, actor: tuple[int | None, str], source: str) -> Spec:
        """student.updated as django-auditlog's field history reaches the log (audit.signals)."""
        rng = self.rng
        t = self._tick(20, 400)
        if source == "page":
            note = rng.choice(("Prefers written feedback", "Extra time in tests", "Sits at the front"))
            changes = {"support_notes": ["", note], "updated_by": [None, actor[1]]}
        else:
            old = rng.randint(20, 90)
            changes = {"mastery": [f"0.{old:02d}", f"0.{min(old + rng.randint(-3, 6), 99):02d}"]}
            if rng.random() < 0.6:
                changes["last_active_at"] = [
                    self._stamp(t - rng.randint(1, 5) * 86_400_000_000),
                    self._stamp(t),
                ]
            if rng.random() < 0.4:
                overdue = rng.randint(0, 4)
                changes["overdue_count"] = [str(overdue), str(max(overdue + rng.choice((-1, 1)), 0))]
        details = {
            "changes": changes,
            "log_entry_id": self._next("log_entry"),
            "object": f"{kid.first} {kid.last}",
        }
        target = ("classroom.student", kid.id)
        return (t, actor, "student.updated", target, kid.scope, "field history", details, OK, source, corr)

    def _student_failed(self, kid: Kid, corr: str, run: int, *, outage: bool) -> Spec:
        rng = self.rng
        if outage:
            error, why = "outage", OUTAGE.format(pid=kid.platform_id)
        else:
            index = rng.randrange(len(STUDENT_FAILURES))
            error, why = (
                ("timeout", "503", "401", "429")[index],
                STUDENT_FAILURES[index].format(pid=kid.platform_id),
            )
        details = {
            "run": run,
            "student": kid.platform_id,
            "error": error,
            "attempts": 1 if error in ("401", "outage") else 4,
            "remediation": REMEDIATION[error],
            "severity": "high" if error in ("401", "outage") else "normal",
        }
        t = self._tick(50, 15_000 if error == "timeout" else 800)
        target = ("classroom.syncrunstudent", self._next("run_student"))
        return (t, SYNC, "sync.student_failed", target, kid.scope, why, details, FAILED, "worker", corr)

    def _sync_class(self, count: int, corr: str) -> list[Spec]:
        """A class sync: requested, one event per changed student, finished (some are outages)."""
        rng = self.rng
        class_id, name, platform_id, kids, teacher = self._class()
        run = ("classroom.syncrun", self._next("sync_run"))
        trigger = rng.choices(("page", "schedule", "command"), (40, 45, 15))[0]
        actor, source, why = {
            "page": (teacher, "page", "Refresh requested from the class page"),
            "schedule": (SYNC, "worker", f"Nightly sync of {name}"),
            "command": (SYNC, "command", f"sync_platform --class {platform_id}"),
        }[trigger]
        scope = (None, class_id)
        details = {
            "run": run[1],
            "scope": "class",
            "class": platform_id,
            "trigger": trigger,
            "students": len(kids),
        }
        specs = [(self.clock, actor, "sync.requested", run, scope, why, details, OK, source, corr)]
        changed = rng.sample(kids, min(count - 2, len(kids)))
        outage = rng.random() < 0.03
        failed = 0
        for kid in changed:
            if outage or rng.random() < 0.03:
                failed += 1
                specs.append(self._student_failed(kid, corr, run[1], outage=outage))
            else:
                specs.append(self._field_history(kid, corr, SYNC, "worker"))
        why = (
            f"{failed} of {len(kids)} students failed; the platform could not be reached"
            if outage
            else f"Synced {len(kids) - failed} of {len(kids)} students ({len(changed) - failed} changed)"
        )
        details = {
            "run": run[1],
            "succeeded": len(kids) - failed,
            "failed": failed,
            "duration_ms": rng.randint(800, 9000),
            "rows": {"assignments": rng.randint(0, 40), "performance": len(changed) - failed},
        }
        status = FAILED if outage else OK
        specs.append(
            (self._tick(100, 3000), SYNC, "sync.finished", run, scope, why, details, status, "worker", corr)
        )
        return specs

    def _sync_student(self, count: int, corr: str) -> list[Spec]:
        """A teacher's refresh of one student."""
        _, _, _, kids, teacher = self._class()
        kid = self.rng.choice(kids)
        name = f"{kid.first} {kid.last}"
        run = ("classroom.syncrun", self._next("sync_run"))
        details = {"run": run[1], "scope": "student", "student": kid.platform_id, "trigger": "page"}
        why = f"Refresh of {name} requested from the student page"
        requested = (self.clock, teacher, "sync.requested", run, kid.scope, why, details, OK, "page", corr)
        failed = self.rng.random() < 0.04
        middle = (
            self._student_failed(kid, corr, run[1], outage=False)
            if failed
            else self._field_history(kid, corr, SYNC, "worker")
        )
        details = {"run": run[1], "succeeded": int(not failed), "failed": int(failed)}
        why, status = (f"The refresh of {name} failed", FAILED) if failed else (f"Synced {name}", OK)
        t = self._tick(50, 500)
        return [
            requested,
            middle,
            (t, SYNC, "sync.finished", run, kid.scope, why, details, status, "worker", corr),
        ]

    def _alert_opened(self, count: int, corr: str) -> list[Spec]:
        """The worker's alert recompute opening alerts for a few students of a class."""
        rng = self.rng
        specs = []
        kids = self._class()[3]
        for kid in rng.sample(kids, min(count, len(kids))):
            kind, topic, value = rng.choice(ALERT_KINDS), rng.choice(TOPICS), rng.randint(1, 5)
            why = {
                "overdue": f"Overdue: {value} assignment(s) in {topic} past due by more than 24 hours",
                "stalled": f"Stalled mastery in {topic}: +0.0{value - 1} over 14 days",
                "low_confidence": f"Low confidence in {topic} for {value + 2} days running",
                "draft_expiring": f"The draft study plan for {topic} expires within 48 hours",
            }[kind]
            alert = ("classroom.alert", self._next("alert"))
            details = {
                "alert": alert[1],
                "kind": kind,
                "topic": topic,
                "value": value,
                "thresholds": "default",
            }
            t = self._tick(5, 200)
            specs.append((t, ALERTS, "alert.opened", alert, kid.scope, why, details, OK, "worker", corr))
        return specs

    def _alert_handled(self, count: int, corr: str) -> list[Spec]:
        """A teacher acknowledging an alert with a note, and sometimes resolving it."""
        rng = self.rng
        _, _, _, kids, teacher = self._class()
        kid, topic = rng.choice(kids), rng.choice(TOPICS)
        alert = ("classroom.alert", rng.randint(1, max(self.counters["alert"], 1)))
        note = rng.choice(ACKNOWLEDGEMENTS).format(first=kid.first, topic=topic)
        details = {"alert": alert[1], "kind": rng.choice(ALERT_KINDS[:3]), "note": note}
        t = self._tick(0, 5)
        acknowledged = (t, teacher, "alert.acknowledged", alert, kid.scope, note, details, OK, "page", corr)
        why = rng.choice(RESOLUTIONS).format(topic=topic)
        details = {"alert": alert[1], "open_days": rng.randint(1, 21), "resolution": "teacher"}
        t = self._tick(2000, 60_000)
        return [
            acknowledged,
            (t, teacher, "alert.resolved", alert, kid.scope, why, details, OK, "page", corr),
        ]

    def _dispatch(self, count: int, corr: str) -> list[Spec]:
        """The weekly summary to a student's guardian (and to the student)."""
        rng = self.rng
        _, _, _, kids, _ = self._class()
        kid, topic = rng.choice(kids), rng.choice(TOPICS)
        specs = []
        for audience in ("guardian", "student"):
            dispatch = ("classroom.dispatchlog", self._next("dispatch"))
            failed = rng.random() < 0.06
            who = f"the {audience} of {kid.first} {kid.last}"
            why = (
                f"Email bounced: mailbox unavailable for {who}"
                if failed
                else f"Weekly progress summary on {topic} sent to {who}"
            )
            details = {
                "dispatch": dispatch[1],
                "channel": "email",
                "audience": audience,
                "template": "weekly_summary",
                "idempotency_key": f"{rng.getrandbits(96):024x}",
                "attempt": 1,
            }
            status = FAILED if failed else OK
            t = self._tick(10, 2000)
            specs.append(
                (t, DISPATCH, "dispatch.sent", dispatch, kid.scope, why, details, status, "worker", corr)
            )
        return specs

    def _plan_draft(self, count: int, corr: str) -> list[Spec]:
        """The agent drafting a study plan, pending a teacher's approval."""
        rng = self.rng
        kid, topic = rng.choice(self._class()[3]), rng.choice(TOPICS)
        plan = ("plans.studyplan", self._next("plan"))
        why = f"Draft study plan for {kid.first}: stalled mastery in {topic}; awaiting approval"
        details = {"plan": plan[1], "topic": topic, "steps": rng.randint(3, 6), "model": "tutor-planner-2"}
        return [
            (self._tick(0, 50), AGENT, "plan.drafted", plan, kid.scope, why, details, PENDING, "agent", corr)
        ]

    def _plan_review(self, count: int, corr: str) -> list[Spec]:
        rng = self.rng
        _, _, _, kids, teacher = self._class()
        kid, topic = rng.choice(kids), rng.choice(TOPICS)
        plan = ("plans.studyplan", rng.randint(1, max(self.counters["plan"], 1)))
        verb, why = (
            (
                "plan.published",
                f"Reviewed and published {kid.first}'s plan for {topic}; added a practice quiz",
            )
            if rng.random() < 0.8
            else ("plan.rejected", f"Rejected: {kid.first} already has a tutor for {topic}")
        )
        details = {
            "plan": plan[1],
            "topic": topic,
            "edited_steps": rng.randint(0, 3),
            "reviewed_by": teacher[1],
        }
        return [(self._tick(0, 50), teacher, verb, plan, kid.scope, why, details, OK, "page", corr)]

    def _login(self, count: int, corr: str) -> list[Spec]:
        """A sign-in, sign-out or failed sign-in (no student or class)."""
        rng = self.rng
        user_id = rng.choice([*self.teacher_ids, *self.teacher_ids, *self.world.users.values()])
        username = self.usernames[user_id]
        ip = f"10.20.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        details = {"ip": ip, "user_agent": rng.choice(USER_AGENTS), "session_days": rng.randint(1, 14)}
        roll, t = rng.random(), self._tick(0, 5)
        if roll < 0.04:
            why = "wrong username or password"
            return [
                (
                    t,
                    (None, username),
                    "user.login_failed",
                    NO_TARGET,
                    NO_SCOPE,
                    why,
                    details,
                    FAILED,
                    "page",
                    corr,
                )
            ]
        verb = "user.logged_out" if roll < 0.25 else "user.logged_in"
        target = ("classroom.user", user_id)
        return [(t, (user_id, username), verb, target, NO_SCOPE, "", details, OK, "page", corr)]

    def _teacher_edit(self, count: int, corr: str) -> list[Spec]:
        _, _, _, kids, teacher = self._class()
        return [
            self._field_history(kid, corr, teacher, "page")
            for kid in self.rng.sample(kids, min(count, len(kids)))
        ]

    def _audit(self, count: int, corr: str) -> list[Spec]:
        """An export by the compliance user, or the nightly verify_audit."""
        rng, t = self.rng, self._tick(0, 5)
        if rng.random() < 0.5:
            compliance = (self.world.users[COMPLIANCE_USER], COMPLIANCE_USER)
            why = "CSV export of the activity log"
            since = self._stamp(self.clock - 30 * 86_400_000_000)[:10]
            details = {
                "filters": {"status": "failed", "since": since},
                "columns": ["id", "occurred_at", "why"],
            }
            return [(t, compliance, "audit.exported", NO_TARGET, NO_SCOPE, why, details, OK, "page", corr)]
        details = {"chains": 1, "events": self.seq, "redacted": 0, "milliseconds": rng.randint(1000, 90_000)}
        actor = (None, "system:verify_audit")
        return [(t, actor, "audit.verified", NO_TARGET, NO_SCOPE, "", details, OK, "command", corr)]


def _us(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def read_world() -> World:
    from classroom.models import Enrollment, SchoolClass, Student, TeacherAssignment, User

    compliance = User.objects.get(username=COMPLIANCE_USER)
    organisation_id = compliance.organisation_id
    classes = {
        pk: (name, platform_id)
        for pk, name, platform_id in SchoolClass.objects.filter(organisation_id=organisation_id)
        .order_by("pk")
        .values_list("pk", "name", "platform_id")
    }
    names = {
        pk: (first, last, platform_id)
        for pk, first, last, platform_id in Student.objects.filter(
            organisation_id=organisation_id
        ).values_list("pk", "first_name", "last_name", "platform_id")
    }
    roster: dict[int, list[Kid]] = {pk: [] for pk in classes}
    enrollments = Enrollment.objects.filter(school_class_id__in=classes, status=Enrollment.Status.ACTIVE)
    for student_id, class_id in enrollments.order_by("pk").values_list("student_id", "school_class_id"):
        first, last, platform_id = names[student_id]
        roster[class_id].append(Kid(student_id, first, last, platform_id, class_id))
    teachers = {}
    for class_id, teacher_id, username in TeacherAssignment.objects.filter(
        school_class_id__in=classes
    ).values_list("school_class_id", "teacher_id", "teacher__username"):
        teachers.setdefault(class_id, (teacher_id, username))
    users = dict(User.objects.filter(organisation_id=organisation_id).values_list("username", "pk"))
    missing = [name for pk, (name, _) in classes.items() if not roster[pk] or pk not in teachers]
    if missing:
        raise SystemExit(f"classes without students or a teacher: {missing}")
    return World(organisation_id, classes, roster, teachers, users)


def child_load(args: argparse.Namespace) -> int:
    _django_setup()
    from django.db import connection, transaction

    from audit.models import ActivityEvent, ChainHead

    world = read_world()
    total_started = time.perf_counter()
    cpu_started = time.process_time()
    with transaction.atomic():
        head = ChainHead.objects.select_for_update().get(organisation_id=world.organisation_id)
        last = (
            ActivityEvent.objects.filter(organisation_id=world.organisation_id)
            .order_by("-seq")
            .values("seq", "hash", "occurred_at")
            .first()
        )
        if last is None or (last["seq"], last["hash"]) != (head.seq, head.hash):
            raise SystemExit(f"the chain head {head.seq} does not match the newest event {last}")
        seed_events = last["seq"]
        start = max(
            last["occurred_at"] + timedelta(milliseconds=1), datetime.now(UTC) - timedelta(days=HISTORY_DAYS)
        )
        history = History(
            world,
            events=args.events,
            seed=args.seed,
            first_seq=last["seq"] + 1,
            prev_hash=head.hash,
            start=start,
        )
        first = last_moment = None
        copy_started = time.perf_counter()
        statement = f"COPY audit_activityevent ({', '.join(COPY_COLUMNS)}) FROM STDIN"
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in history.rows():
                copy.write_row(row)
                last_moment = row[0]
                if first is None:
                    first = row[0]
        copy_s = time.perf_counter() - copy_started
        cpu_s = time.process_time() - cpu_started
        commit_started = time.perf_counter()
        ChainHead.objects.filter(organisation_id=world.organisation_id).update(
            seq=history.seq, hash=history.prev_hash
        )
    commit_s = time.perf_counter() - commit_started
    vacuum_started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    vacuum_s = time.perf_counter() - vacuum_started
    mix = history.mix()
    mix["first"] = f"{first:%Y-%m-%d}"
    mix["last"] = f"{last_moment:%Y-%m-%d %H:%M} UTC"
    result = {
        "events": args.events,
        "episodes": history.episodes,
        "seed_events": seed_events,
        "students": len(world.students),
        "classes": len(world.classes),
        "copy_s": copy_s,
        "cpu_s": cpu_s,
        "hash_s": history.hash_s,
        "commit_s": commit_s,
        "vacuum_s": vacuum_s,
        "total_s": time.perf_counter() - total_started,
        "mix": mix,
    }
    Path(args.child_output).write_text(json.dumps(result))
    return 0


# Child: the measurements.


@dataclass
class Probe:
    """One search page to time, with what its response must show."""

    label: str
    params: dict[str, str]
    path: str = "/audit/"
    matches: int | None = None  # events matching, counted by plain SQL
    skip: int = 0  # events on the pages before this one
    rows: int | None = None

    @property
    def url(self) -> str:
        return self.path + (f"?{urlencode(self.params)}" if self.params else "")

    @property
    def query(self) -> str:
        """The query string as the table shows it, the cursor elided."""
        shown = urlencode({k: v for k, v in self.params.items() if k != "after"})
        return shown + ("&after=<cursor>" if "after" in self.params else "")


@dataclass
class PageResult:
    label: str
    query: str
    matches: int | None
    rows: int | None
    median_ms: float
    p95_ms: float
    sql_median_ms: float
    queries: int


@dataclass
class ExportResult:
    label: str
    query: str
    rows: int = 0
    bytes: int = 0
    wall_s: float = 0.0
    sql_s: float = 0.0
    queries: int = 0
    maxrss_before_kib: int = 0
    maxrss_after_kib: int = 0
    traced_rows: int = 0
    traced_wall_s: float = 0.0
    peak_kib: float = 0.0
    copy_rows: int = 0
    copy_bytes: int = 0
    copy_s: float = 0.0


@dataclass
class Measured:
    pages: list[PageResult]
    exports: list[ExportResult]
    organisation_events: int
    runs: int
    warmup: int
    page_size: int
    engine: str
    engine_name: str
    engine_version: str
    django_version: str
    debug: bool
    shared_buffers: str
    work_mem: str
    table_mib: float
    index_mib: float
    indexes: int
    notes: list[str] = field(default_factory=list)


class SqlTimer:
    """Time and count the statements through the connection (`execute_wrapper`)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.count = 0

    def reset(self) -> None:
        self.seconds, self.count = 0.0, 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - start
            self.count += 1


def child_measure(args: argparse.Namespace) -> int:
    _django_setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings

    from classroom.models import User

    with tempfile.TemporaryDirectory(prefix="bench-audit-static-") as static_root:
        with override_settings(
            ROOT_URLCONF="bench.urls",
            ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "testserver"],
            STATIC_ROOT=static_root,
        ):
            # DEBUG=0 serves static files through the manifest of collectstatic: make one.
            call_command("collectstatic", interactive=False, verbosity=0)
            client = Client()
            user = User.objects.get(username=COMPLIANCE_USER)
            client.force_login(user)
            organisation_id = user.organisation_id
            notes: list[str] = []
            exports = measure_exports(client, organisation_id, notes)
            pages = measure_pages(client, organisation_id, runs=args.runs, warmup=args.warmup, notes=notes)
        with connection.cursor() as cursor:
            cursor.execute("SHOW shared_buffers")
            shared_buffers = cursor.fetchone()[0]
            cursor.execute("SHOW work_mem")
            work_mem = cursor.fetchone()[0]
            cursor.execute(
                "SELECT pg_relation_size('audit_activityevent'), pg_indexes_size('audit_activityevent'), "
                "(SELECT count(*) FROM pg_indexes WHERE tablename = 'audit_activityevent'), "
                "(SELECT count(*) FROM audit_activityevent WHERE organisation_id = %s)",
                [organisation_id],
            )
            table, indexes_size, indexes, events = cursor.fetchone()
    result = Measured(
        pages=pages,
        exports=exports,
        organisation_events=events,
        runs=args.runs,
        warmup=args.warmup,
        page_size=settings.AUDIT_PAGE_SIZE,
        engine=connection.vendor,
        engine_name=connection.display_name,
        engine_version=".".join(str(part) for part in connection.get_database_version()),
        django_version=django_version(),
        debug=settings.DEBUG,
        shared_buffers=shared_buffers,
        work_mem=work_mem,
        table_mib=table / 2**20,
        index_mib=indexes_size / 2**20,
        indexes=indexes,
        notes=notes,
    )
    Path(args.child_output).write_text(json.dumps(asdict(result)))
    return 0


def export_columns() -> tuple[str, ...]:
    from audit.selectors import EXPORT_COLUMNS

    return tuple(EXPORT_COLUMNS)


def copy_floor(organisation_id: int, where: str = "") -> tuple[int, int, float]:
    """PostgreSQL's own CSV of the same rows in the same order: (rows, bytes, seconds)."""
    from django.db import connection

    columns = ", ".join(export_columns())
    statement = (
        f"COPY (SELECT {columns} FROM audit_activityevent WHERE organisation_id = {int(organisation_id)}"
        f"{where} ORDER BY occurred_at DESC, id DESC) TO STDOUT WITH CSV"
    )
    lines = size = 0
    started = time.perf_counter()
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for block in copy:
            data = bytes(block)
            size += len(data)
            lines += data.count(b"\n")
    return lines, size, time.perf_counter() - started


def count_events(organisation_id: int, where: str = "", params: Sequence[Any] = ()) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM audit_activityevent WHERE organisation_id = %s{where}",
            [organisation_id, *params],
        )
        return int(cursor.fetchone()[0])


def read_export(client: Any, url: str) -> tuple[int, int, bytes]:
    """GET the export and read it to the end: (lines, bytes, the first line)."""
    response = client.get(url, secure=True)
    if response.status_code != 200 or not response.streaming:
        raise SystemExit(f"{url}: status {response.status_code}, streaming {response.streaming}")
    lines = size = 0
    header = b""
    try:
        for chunk in response.streaming_content:
            if not header:
                header = chunk.split(b"\n", 1)[0] + b"\n"
            size += len(chunk)
            lines += chunk.count(b"\n")
    finally:
        response.close()
    return lines, size, header


def measure_exports(client: Any, organisation_id: int, notes: list[str]) -> list[ExportResult]:
    from django.db import connection

    exports = [
        ExportResult("every event of the organisation", ""),
        ExportResult("`status=failed`", "status=failed"),
    ]
    where = {"": "", "status=failed": " AND status = 'failed'"}
    expected_header = ",".join(export_columns()).encode() + b"\r\n"
    # Untimed: the table and its index into the caches, as the timed runs will all find them.
    copy_floor(organisation_id)
    for export in exports:
        url = "/audit/export.csv" + (f"?{export.query}" if export.query else "")
        print(f"export {export.label} ...", file=sys.stderr, flush=True)
        timer = SqlTimer()
        gc.collect()
        export.maxrss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with connection.execute_wrapper(timer):
            started = time.perf_counter()
            lines, export.bytes, header = read_export(client, url)
            export.wall_s = time.perf_counter() - started
        export.maxrss_after_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        export.sql_s, export.queries = timer.seconds, timer.count
        export.rows = lines - 1
        if header != expected_header:
            raise SystemExit(f"{url}: header {header!r}, expected {expected_header!r}")
        expected = count_events(organisation_id, where[export.query])
        if export.rows != expected:
            raise SystemExit(f"{url}: {export.rows:,} rows, the database has {expected:,}")
        export.copy_rows, export.copy_bytes, export.copy_s = copy_floor(organisation_id, where[export.query])
        if export.copy_rows != count_events(organisation_id, where[export.query]):
            raise SystemExit(f"COPY of {export.label}: {export.copy_rows:,} rows, expected {expected:,}")
        print(
            f"export {export.label}: {export.rows:,} rows in {export.wall_s:.1f} s, "
            f"COPY {export.copy_s:.1f} s; traced ...",
            file=sys.stderr,
            flush=True,
        )
        gc.collect()
        tracemalloc.start()
        started = time.perf_counter()
        lines, _, _ = read_export(client, url)
        export.traced_wall_s = time.perf_counter() - started
        export.peak_kib = tracemalloc.get_traced_memory()[1] / 1024
        tracemalloc.stop()
        export.traced_rows = lines - 1
        if export.traced_rows != count_events(organisation_id, where[export.query]):
            raise SystemExit(f"{url} (traced): {export.traced_rows:,} rows, expected more or less")
    notes.append(
        "Each export records an `audit.exported` event before it reads, and the unfiltered export "
        "includes it, so successive unfiltered exports differ by one row."
    )
    return exports


def measure_pages(
    client: Any, organisation_id: int, *, runs: int, warmup: int, notes: list[str]
) -> list[PageResult]:
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    size = settings.AUDIT_PAGE_SIZE
    today = timezone.localdate()
    name, students, sharing = pick_student(organisation_id)
    month = (today - timedelta(days=30)).isoformat()
    week = (today - timedelta(days=7)).isoformat()
    probes = [
        Probe("floor: `@login_required` view, `ok`", {}, path="/bench/floor/"),
        Probe("no filter (the page as opened)", {}),
        Probe("(1) one student, last 30 days", {"student": name, "since": month}),
        Probe("(2) failures, last 7 days", {"status": "failed", "since": week}),
        Probe("(3) `sync` actions with a word", {"action": "sync", "q": SEARCH_WORD}),
    ]
    # Matches by plain SQL, the way the filters are documented (not through audit.selectors).
    since = " AND occurred_at >= %s"
    probes[1].matches = count_events(organisation_id)
    probes[2].matches = count_events(
        organisation_id, f" AND student_id = ANY(%s){since}", [students, _day_start(month)]
    )
    probes[3].matches = count_events(organisation_id, f" AND status = 'failed'{since}", [_day_start(week)])
    probes[4].matches = count_events(
        organisation_id,
        " AND (verb = 'sync' OR verb LIKE 'sync.%%') AND (why || ' ' || actor_name || ' ' || verb || ' ' "
        "|| target_id) ILIKE %s",
        [f"%{SEARCH_WORD}%"],
    )
    if sharing > 1:
        notes.append(
            f"Filter (1) names its student in full, `student={name}`: the demo school's last names repeat "
            f"({sharing} students share this one); the search matches each word in first or last names."
        )
    for probe in probes[1:]:
        probe.rows = min(size, probe.matches or 0)

    def get(probe: Probe) -> Any:
        return client.get(probe.url, secure=True)

    # The next page of (2): the cursor the first page links to.
    failures = probes[3]
    body = check(failures, get(failures))
    match = re.search(r'href="\?([^"]*after=[^"]*)"', body)
    if match is not None:
        params = dict(_pairs(html.unescape(match[1])))
        following = Probe("(2) failures, last 7 days: next page", params, matches=failures.matches, skip=size)
        following.rows = min(size, max((failures.matches or 0) - size, 0))
        probes.insert(4, following)
    else:
        notes.append(f"Filter (2) has {failures.matches} matches, one page: its next page is not measured.")

    for probe in probes:
        for _ in range(warmup):
            check(probe, get(probe))
    queries = {}
    for probe in probes:
        with CaptureQueriesContext(connection) as captured:
            check(probe, get(probe))
        queries[probe.label] = len(captured.captured_queries)
    timer = SqlTimer()
    timings: dict[str, list[float]] = {probe.label: [] for probe in probes}
    sql: dict[str, list[float]] = {probe.label: [] for probe in probes}
    with connection.execute_wrapper(timer):
        for _ in range(runs):
            for probe in probes:
                timer.reset()
                started = time.perf_counter()
                response = get(probe)
                timings[probe.label].append(time.perf_counter() - started)
                sql[probe.label].append(timer.seconds)
                check(probe, response)
    return [
        PageResult(
            label=probe.label,
            query=probe.query,
            matches=probe.matches,
            rows=probe.rows,
            median_ms=statistics.median(timings[probe.label]) * 1000,
            p95_ms=percentile(timings[probe.label], 95) * 1000,
            sql_median_ms=statistics.median(sql[probe.label]) * 1000,
            queries=queries[probe.label],
        )
        for probe in probes
    ]


def _pairs(query: str) -> Iterator[tuple[str, str]]:
    from urllib.parse import parse_qsl

    yield from parse_qsl(query, keep_blank_values=True)


def _day_start(day: str) -> datetime:
    from django.utils import timezone

    return timezone.make_aware(datetime.fromisoformat(day))


def pick_student(organisation_id: int) -> tuple[str, list[int], int]:
    """A name the search resolves to exactly one student: a last name if one is unique, else a full
    name (the demo school repeats a few dozen last names). Returns it, the ids it names (as the
    search matches: every word in the first or last name, or the platform id) and how many
    students share the last name."""
    from django.db import connection

    def named(text: str) -> list[int]:
        where = " AND ".join(
            ["(first_name ILIKE %s OR last_name ILIKE %s OR platform_id = %s)"] * len(text.split())
        )
        params: list[Any] = [organisation_id]
        for word in text.split():
            params += [f"%{word}%", f"%{word}%", word]
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id FROM classroom_student WHERE organisation_id = %s AND {where}", params)
            return [pk for (pk,) in cursor.fetchall()]

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT first_name, last_name FROM classroom_student WHERE organisation_id = %s ORDER BY id",
            [organisation_id],
        )
        students = cursor.fetchall()
    for _, last in students:
        ids = named(last)
        if len(ids) == 1:
            return last, ids, 1
    for first, last in students:
        ids = named(f"{first} {last}")
        if len(ids) == 1:
            return f"{first} {last}", ids, len(named(last))
    raise SystemExit("no student of the demo school has a name of their own")


def check(probe: Probe, response: Any) -> str:
    """Fail loudly when a timed page is not the page we mean to time."""
    if response.status_code != 200:
        raise SystemExit(f"{probe.url}: status {response.status_code}, expected 200")
    body = response.content.decode()
    if probe.rows is None:
        if body != "ok":
            raise SystemExit(f"{probe.url}: {body[:200]!r}")
        return body
    table = body.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = table.count('<tr class="status-')
    more = probe.matches is not None and probe.matches > probe.skip + probe.rows
    linked = 'rel="next"' in body
    if rows != probe.rows or linked != more:
        raise SystemExit(
            f"{probe.url}: {rows} rows (expected {probe.rows}), next link {linked} (expected {more}) "
            f"for {probe.matches} matches"
        )
    return body


if __name__ == "__main__":
    sys.exit(main())
