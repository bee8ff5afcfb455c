"""Server time of `GET /dashboard/` for rosters of 30, 300 and 2,000 students, against a floor.

Usage, from the repo root:

    .venv/bin/python bench/dashboard.py [--sizes 30,300,2000] [--requests 30] [--database-url URL]

Method
1. Each roster size N runs in a subprocess of this script with `DATABASE_URL` set to a database
   of its own: a SQLite file in a temporary directory by default, or, with
   `--database-url postgres://...`, a database `bench_dashboard_<N>` created on that server and
   dropped afterwards. The developer's db.sqlite3 is never opened.
2. The subprocess runs `migrate` and `seed_demo --class-size N` (three classes of N students;
   mr.okafor teaches exactly one of them, so his roster is N), on PostgreSQL `VACUUM ANALYZE`
   (the statistics autovacuum keeps on a live database), and logs in as mr.okafor with
   `django.test.Client.force_login`.
3. Each request is timed in-process with `time.perf_counter()` around `client.get(...)`: the whole
   Django request/response cycle (middleware, session and user lookups, view, queries, template
   rendering) without a socket or a WSGI server. After a few warm-up requests the views are timed
   round-robin, so drift (CPU frequency, caches, other load) hits all of them alike. Every
   response is checked: status 200, the roster present with the expected count and rows.
4. The floor is a `@login_required` view returning `HttpResponse("ok")` (`bench/urls.py`, mounted
   with `override_settings(ROOT_URLCONF=...)`) on the same settings, middleware, session and
   database: what any logged-in page costs before it does any work.
5. The query count of each view comes from one extra request under `CaptureQueriesContext`, kept
   out of the timed ones because it forces the debug cursor. The "SQL ms" column is the time spent
   inside the database cursor's execute during the timed requests (`connection.execute_wrapper`);
   the rest is Python: building and compiling the ORM queries, turning rows into objects,
   rendering the template, the middleware.

Caveats: Django's test client does not close the database connection between requests, so this
is a web process with persistent connections (`CONN_MAX_AGE` > 0); with the default
`CONN_MAX_AGE=0` every real request also pays for a new connection. Settings are what
`tutor.settings` reads from the environment (DEBUG=1 unless set). p95 is the nearest-rank
percentile: of 30 requests, the second slowest.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.common import (  # noqa: E402 - after the repo root is on sys.path
    database_for,
    django_version,
    percentile,
    positive_int,
    setup_child,
)

RESULTS_DIR = REPO_ROOT / "bench" / "results"
TEACHER = "mr.okafor"
POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql")


@dataclass(frozen=True)
class Probe:
    """One URL to time, with what its response must contain."""

    label: str
    path: str
    htmx: bool = False
    must_contain: tuple[str, ...] = ()
    must_not_contain: tuple[str, ...] = ()
    roster_rows: int | None = None


@dataclass
class Row:
    label: str
    median_ms: float
    p95_ms: float
    sql_median_ms: float
    queries: int


@dataclass
class SizeResult:
    size: int
    rows: list[Row]
    notes: list[str]
    engine: str
    engine_name: str
    engine_version: str
    django_version: str
    debug: bool
    setup_s: float
    timing_s: float


# The parent: one subprocess and one database per roster size, then the table.


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_size is not None:
        return child_main(args)
    started = time.perf_counter()
    results: list[SizeResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        for size in args.sizes:
            with database_for(f"bench_dashboard_{size}", server_url=args.database_url, tmp=Path(tmp)) as url:
                results.append(run_child(size, url=url, args=args, tmp=Path(tmp)))
    runtime_s = time.perf_counter() - started
    markdown = render_markdown(results, args=args, runtime_s=runtime_s)
    print(markdown)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"dashboard-{results[0].engine}.md"
    out.write_text(markdown + "\n")
    print(f"\nWritten to {out.relative_to(REPO_ROOT)}", file=sys.stderr)
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Median and p95 server time of /dashboard/ by roster size, against a floor view."
    )
    parser.add_argument(
        "--sizes", type=_sizes, default=[30, 300, 2000], help="roster sizes, comma-separated (30,300,2000)"
    )
    parser.add_argument("--requests", type=positive_int, default=30, help="timed requests per view (30)")
    parser.add_argument("--warmup", type=positive_int, default=5, help="untimed requests per view first (5)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to use, e.g. postgres://postgres@127.0.0.1:5432/postgres; the bench "
        "creates and drops a database bench_dashboard_<N> there per size (default: SQLite files in a "
        "temporary directory)",
    )
    # Internal: how the parent runs one size in a subprocess.
    parser.add_argument("--child-size", type=positive_int, help=argparse.SUPPRESS)
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.database_url and urlsplit(args.database_url).scheme not in POSTGRES_SCHEMES:
        parser.error("--database-url must be a postgres:// URL (SQLite is the default)")
    return args


def _sizes(value: str) -> list[int]:
    sizes = [positive_int(part) for part in value.replace("_", "").split(",") if part.strip()]
    if not sizes:
        raise argparse.ArgumentTypeError("give at least one roster size")
    return sizes


def run_child(size: int, *, url: str, args: argparse.Namespace, tmp: Path) -> SizeResult:
    output = tmp / f"result-{size}.json"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "tutor.settings"}
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        f"--child-size={size}",
        f"--requests={args.requests}",
        f"--warmup={args.warmup}",
        f"--child-output={output}",
    ]
    print(f"roster {size}: migrate, seed, time ...", file=sys.stderr, flush=True)
    # The child's stdout goes to stderr so that stdout carries only the table.
    subprocess.run(command, env=env, cwd=REPO_ROOT, check=True, stdout=sys.stderr)
    data = json.loads(output.read_text())
    result = SizeResult(**{**data, "rows": [Row(**row) for row in data["rows"]]})
    print(
        f"roster {size}: setup {result.setup_s:.1f} s, timing {result.timing_s:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    return result


def render_markdown(results: list[SizeResult], *, args: argparse.Namespace, runtime_s: float) -> str:
    first = results[0]
    engine = f"{first.engine_name} {first.engine_version}"
    lines = [
        f"# `GET /dashboard/` server time, {first.engine_name}",
        "",
        f"Machine: nproc {len(os.sched_getaffinity(0))}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, Django {first.django_version}, DB {engine}, "
        f"DEBUG={first.debug}. {args.requests} timed requests per view (round-robin, "
        f"after {args.warmup} warm-up), in-process through the whole middleware stack.",
        "",
        "| roster | view | median ms | p95 ms | median over floor ms | SQL ms (median) | queries |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        floor = result.rows[0].median_ms
        for row in result.rows:
            over = "" if row is result.rows[0] else f"{row.median_ms - floor:.1f}"
            lines.append(
                f"| {result.size:,} | {row.label} | {row.median_ms:.1f} | {row.p95_ms:.1f} | {over} "
                f"| {row.sql_median_ms:.1f} | {row.queries} |"
            )
    lines.append("")
    for result in results:
        lines.extend(f"- roster {result.size:,}: {note}" for note in result.notes)
    lines.append(
        f"- Script runtime {runtime_s:.0f} s, of which migrate and seed "
        f"{sum(r.setup_s for r in results):.0f} s."
    )
    return "\n".join(lines)


# The child: one roster size in its own database.


def child_main(args: argparse.Namespace) -> int:
    setup_child()
    result = measure_size(args.child_size, requests=args.requests, warmup=args.warmup)
    Path(args.child_output).write_text(json.dumps(asdict(result)))
    return 0


def measure_size(size: int, *, requests: int, warmup: int) -> SizeResult:
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    from classroom.models import User

    started = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("seed_demo", class_size=size, stdout=io.StringIO())
    if connection.vendor == "postgresql":
        # A live database has planner statistics from autovacuum; a freshly seeded one has none
        # (the planner then guesses 1 row per table), which made the page ~45% slower at 2,000.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    setup_s = time.perf_counter() - started

    page_size = settings.ROSTER_PAGE_SIZE
    count = f'<span class="roster-count">{size} student'
    probes = [
        Probe("floor: `@login_required` view, `ok`", "/bench/floor/", must_contain=("ok",)),
        Probe(
            "`/dashboard/`",
            "/dashboard/",
            must_contain=('id="roster"', 'class="class-cards"', count),
            roster_rows=min(size, page_size),
        ),
    ]
    notes = []
    if size > page_size:
        probes.append(
            Probe(
                "`/dashboard/?page=2`",
                "/dashboard/?page=2",
                must_contain=('id="roster"', count, "Page 2 of"),
                roster_rows=min(size - page_size, page_size),
            )
        )
    else:
        notes.append(f"the roster fits on one page of {page_size}, so page 2 is not measured.")
    probes.append(
        Probe(
            "htmx `/dashboard/?sort=-trend`",
            "/dashboard/?sort=-trend",
            htmx=True,
            must_contain=('id="roster"', count),
            must_not_contain=("<html",),
            roster_rows=min(size, page_size),
        )
    )

    with override_settings(ROOT_URLCONF="bench.urls", ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "testserver"]):
        client = Client()
        client.force_login(User.objects.get(username=TEACHER))

        def get(probe: Probe) -> Any:
            headers = {"HTTP_HX_REQUEST": "true"} if probe.htmx else {}
            return client.get(probe.path, **headers)

        for probe in probes:
            for _ in range(warmup):
                check(probe, get(probe))
        queries = {}
        for probe in probes:
            with CaptureQueriesContext(connection) as captured:
                check(probe, get(probe))
            queries[probe] = len(captured.captured_queries)

        in_sql = 0.0

        def sql_timer(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
            nonlocal in_sql
            start = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                in_sql += time.perf_counter() - start

        timings: dict[Probe, list[float]] = {probe: [] for probe in probes}
        sql_timings: dict[Probe, list[float]] = {probe: [] for probe in probes}
        timing_started = time.perf_counter()
        with connection.execute_wrapper(sql_timer):
            for _ in range(requests):
                for probe in probes:
                    in_sql = 0.0
                    start = time.perf_counter()
                    response = get(probe)
                    timings[probe].append(time.perf_counter() - start)
                    sql_timings[probe].append(in_sql)
                    check(probe, response)
        timing_s = time.perf_counter() - timing_started

    return SizeResult(
        size=size,
        rows=[
            Row(
                label=probe.label,
                median_ms=statistics.median(timings[probe]) * 1000,
                p95_ms=percentile(timings[probe], 95) * 1000,
                sql_median_ms=statistics.median(sql_timings[probe]) * 1000,
                queries=queries[probe],
            )
            for probe in probes
        ],
        notes=notes,
        engine=connection.vendor,
        engine_name=connection.display_name,
        engine_version=".".join(str(part) for part in connection.get_database_version()),
        django_version=django_version(),
        debug=settings.DEBUG,
        setup_s=setup_s,
        timing_s=timing_s,
    )


def check(probe: Probe, response: Any) -> None:
    """Fail loudly when a timed page is not the page we mean to time."""
    if response.status_code != 200:
        raise SystemExit(f"{probe.path}: status {response.status_code}, expected 200")
    body = response.content.decode()
    missing = [text for text in probe.must_contain if text not in body]
    unwanted = [text for text in probe.must_not_contain if text in body]
    if missing or unwanted:
        raise SystemExit(f"{probe.path}: missing {missing}, unexpected {unwanted}")
    if probe.roster_rows is not None:
        table = body.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
        if table.count("<tr") != probe.roster_rows:
            raise SystemExit(f"{probe.path}: {table.count('<tr')} roster rows, expected {probe.roster_rows}")


if __name__ == "__main__":
    sys.exit(main())
