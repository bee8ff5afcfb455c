"""The learner orchestrator over real HTTP: p50 and p95 of its four endpoints, and the signal cache's
hit rate over a simulated week, against the targets of seeds/003_* ("Performance").

Usage, from the repo root:

    .venv/bin/python bench/orchestrator.py [--learners 1000] [--requests 300] [--week-learners 200]
        [--concurrency 16] [--latency-ms 300] [--workers 4] [--threads 4] [--keep-alive]
        [--conn-max-age 0] [--database-url URL]

Targets: status < 100 ms, day.done < 200 ms, intent.sync < 500 ms, day.run < 12 s (no research),
judged on p95; the floor of a day.run whose agents are asked is its slowest agent (300 ms, as all
four are asked at once), so its p50 is given as a multiple of that; cache hit rate >= 50 %.

Method
1. A PostgreSQL database of its own (`bench_orchestrator`, dropped afterwards). A subprocess
   migrates it and bulk-creates one organisation and class with N learners (student + learner
   user), each with an active intent begun 14 days ago and a session for each of those 14 days
   (6 of 7 completed), and the learner app's service token; then VACUUM ANALYZE.
2. `manage.py agents_sim --latency-ms 300` serves the four remote agents (ORCHESTRATOR_*_URL
   point at it); gunicorn serves `tutor.wsgi` on loopback with DEBUG=0, no ANTHROPIC_API_KEY (plans
   by the rules: the seed's "without research"), CONN_MAX_AGE=0 (the documented default;
   `--conn-max-age 60` keeps database connections, as the README advises for production) and
   rate limits raised out of the way. Workers are gthread, 4 processes x 4 threads: a day.run
   mostly waits on its agents, so threads keep a process busy meanwhile, and 4 processes share
   the 2 cores past the GIL; 16 threads match the 16 clients.
3. Clients are a thread pool sharing one httpx client that opens a connection per call (as a
   proxy in front of gunicorn does by default; `--keep-alive` keeps them, and then one worker
   accepts every client's connection and does all the work); each call is timed around the
   request, with the service token and `X-User-ID` (and `X-Forwarded-Proto: https`, as the
   TLS-terminating proxy sends). Each endpoint is measured alone, one call per distinct learner:
   status; day.run of today (week 3, day 1) for learners with no cached signals (agents asked,
   201), then again (stored, 200); day.done of those sessions; intent.sync with a changed intent
   (a new one), then the same again. Every answer's status is checked.
4. The week: other learners run day.run for week 3, days 1..7 (all within the allowed week
   ahead), completing each day with day.done. The server's clock cannot move, so between days
   every cached signal is aged by 24 hours (`checked_at`, `fetched_at`): a learner who plans once
   a day at the same hour, so every agent's freshness window (clo 24 h, alex 12 h, socratic 6 h,
   ta 1 h) has passed and each agent is revalidated with If-None-Match. The hit rate is
   sum(cache_hits) / sum(cache_hits + cache_misses) of the responses; the simulator's counts say
   which agents answered 304 (unchanged) or 200 (new data).
5. Peak memory is VmHWM (/proc) of each gunicorn worker at the end, and this process's ru_maxrss.

Caveats: everything (PostgreSQL, gunicorn, the simulator, the clients) shares one machine, so
client-side times include queueing for the CPU; the simulator's answers for ta and socratic
depend on the day and change every day, clo's and alex's once a week (Monday), which caps the
hit rate of daily runs near 2 agents of 4 (less in a week with a Monday after its first day).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.common import (  # noqa: E402 - after the repo root is on sys.path
    bench_env,
    child_pids,
    free_port,
    listening_process,
    peak_rss_kib,
    percentile,
    positive_int,
    postgres_database,
    setup_child,
)

MANAGE = REPO_ROOT / "manage.py"
AGENTS = ("clo", "alex", "ta", "socratic")
AGENT_TOKEN = "bench-agents-token"
BENCH_SECRET_KEY = "bench-orchestrator-not-a-secret"
HISTORY_DAYS = 14
TODAY = {"week": 3, "day": 1}  # programme day 15: the intent began 14 days ago
HIT_RATE_TARGET = 0.5
INTENT = {
    "topic": "Linear equations",
    "depth": "informed",
    "end_goal": "Solve two-step equations without help",
    "time_per_day_min": 30,
    "user_tz": "America/New_York",
    "meta": {"learning_style": "project-first"},
}


def platform_id(learner: int) -> str:
    return f"learner-{learner:05d}"


@dataclass
class Row:
    label: str
    seconds: list[float]
    target_ms: float
    ideal_ms: float | None = None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_output:
        return child_setup(args.learners, Path(args.child_output))
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="bench-orchestrator-") as tmp,
        postgres_database(args.database_url, "bench_orchestrator") as url,
    ):
        sim_port, web_port = free_port(), free_port()
        env = bench_env(
            url,
            debug=False,
            secret_key=BENCH_SECRET_KEY,
            ALLOWED_HOSTS="127.0.0.1",
            ANTHROPIC_API_KEY="",
            LOG_LEVEL="WARNING",
            CONN_MAX_AGE=str(args.conn_max_age),
            ORCHESTRATOR_AGENT_TOKEN=AGENT_TOKEN,
            ORCHESTRATOR_DAY_RUN_PER_MINUTE="100000",
            ORCHESTRATOR_DAY_RUN_BURST="100000",
            ORCHESTRATOR_PER_MINUTE="100000",
            ORCHESTRATOR_BURST="100000",
            **{
                f"ORCHESTRATOR_{name.upper()}_URL": f"http://127.0.0.1:{sim_port}/agents/{name}"
                for name in AGENTS
            },
        )
        print(f"set-up: migrate, {args.learners:,} learners ...", file=sys.stderr, flush=True)
        output = Path(tmp) / "setup.json"
        command = [sys.executable, __file__, f"--learners={args.learners}", f"--child-output={output}"]
        subprocess.run(command, env=env, cwd=REPO_ROOT, check=True, stdout=sys.stderr)
        token = json.loads(output.read_text())["token"]
        setup_s = time.perf_counter() - started
        simulator = [sys.executable, str(MANAGE), "agents_sim", f"--port={sim_port}"]
        simulator += [f"--latency-ms={args.latency_ms}", f"--token={AGENT_TOKEN}"]
        gunicorn = [
            str(Path(sys.executable).parent / "gunicorn"),
            "tutor.wsgi",
            f"--bind=127.0.0.1:{web_port}",
        ]
        gunicorn += [f"--workers={args.workers}", f"--threads={args.threads}", "--worker-class=gthread"]
        with (
            listening_process(simulator, env=env, port=sim_port, log=Path(tmp) / "agents_sim.log"),
            listening_process(gunicorn, env=env, port=web_port, log=Path(tmp) / "gunicorn.log") as web,
        ):
            rows, week = drive(
                args, web_url=f"http://127.0.0.1:{web_port}", sim_port=sim_port, token=token, db=url
            )
            workers_kib = [peak_rss_kib(pid) for pid in child_pids(web.pid)]
    runtime_s = time.perf_counter() - started
    print(render(args, rows, week, workers_kib=workers_kib, setup_s=setup_s, runtime_s=runtime_s))
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="The learner orchestrator's endpoints over HTTP, on PostgreSQL."
    )
    parser.add_argument("--learners", type=positive_int, default=1000, help="learners with history (1000)")
    parser.add_argument("--requests", type=positive_int, default=300, help="calls per endpoint (300)")
    parser.add_argument("--week-learners", type=positive_int, default=200, help="learners of the week (200)")
    parser.add_argument("--concurrency", type=positive_int, default=16, help="concurrent clients (16)")
    parser.add_argument("--latency-ms", type=int, default=300, help="each agent's latency (300)")
    parser.add_argument("--workers", type=positive_int, default=4, help="gunicorn processes (4)")
    parser.add_argument("--threads", type=positive_int, default=4, help="threads per gunicorn process (4)")
    parser.add_argument(
        "--keep-alive", action="store_true", help="clients keep their connections to gunicorn open"
    )
    parser.add_argument(
        "--conn-max-age", type=int, default=0, help="CONN_MAX_AGE of the web processes (0, the default)"
    )
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="the PostgreSQL server, where a database bench_orchestrator is made and dropped",
    )
    parser.add_argument("--child-output", help=argparse.SUPPRESS)  # internal: the set-up subprocess
    args = parser.parse_args(argv)
    if not args.child_output and 2 * args.requests + args.week_learners > args.learners:
        parser.error("needs at least 2 x --requests + --week-learners learners (each group its own)")
    return args


# The set-up, in a subprocess so that this process's peak memory is the clients' alone.


def child_setup(learners: int, output: Path) -> int:
    setup_child()
    from zoneinfo import ZoneInfo

    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from classroom.api_auth import api_token_create, service_account
    from classroom.models import Enrollment, Organisation, SchoolClass, Student, User
    from plans.models import DailySession, LearnerIntent

    call_command("migrate", interactive=False, verbosity=0)
    now = timezone.now()
    organisation = Organisation.objects.create(name="Bench school", slug="bench-school")
    school_class = SchoolClass.objects.create(organisation=organisation, name="Bench", platform_id="bench")
    unusable = make_password(None)
    users = User.objects.bulk_create(
        User(username=platform_id(n), role=User.Role.LEARNER, organisation=organisation, password=unusable)
        for n in range(learners)
    )
    students = Student.objects.bulk_create(
        Student(
            organisation=organisation,
            first_name="Learner",
            last_name=f"{n}",
            platform_id=platform_id(n),
            user=u,
        )
        for n, u in enumerate(users)
    )
    Enrollment.objects.bulk_create(
        Enrollment(student=s, school_class=school_class, enrolled_on=now.date() - timedelta(days=90))
        for s in students
    )
    begun = now - timedelta(days=HISTORY_DAYS)
    intents = LearnerIntent.objects.bulk_create(
        LearnerIntent(student=s, created_at=begun, **INTENT) for s in students
    )
    start = timezone.localtime(begun, ZoneInfo(INTENT["user_tz"])).date()
    sessions = []
    for n, intent in enumerate(intents):
        for offset in range(HISTORY_DAYS):
            done = (n + offset) % 7 != 3
            at = begun + timedelta(days=offset)
            sessions.append(
                DailySession(
                    student_id=intent.student_id,
                    intent=intent,
                    week=offset // 7 + 1,
                    day=offset % 7 + 1,
                    date=start + timedelta(days=offset),
                    plan_md="# Daily Learning Plan",
                    plan_json_summary={
                        "title": f"Day {offset + 1}",
                        "objectives": ["o1"],
                        "total_minutes": 30,
                    },
                    plan_source="rules",
                    created_at=at,
                    completion_time_min=20 + (n + offset) % 20 if done else None,
                    confidence=3 + (n + offset) % 8 if done else None,
                    completed_at=at + timedelta(hours=1) if done else None,
                )
            )
    DailySession.objects.bulk_create(sessions, batch_size=2000)
    token = api_token_create(user=service_account(name="bench-learner-app", organisation=organisation))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    output.write_text(json.dumps({"token": token}))
    return 0


# The clients.


def drive(
    args: argparse.Namespace, *, web_url: str, sim_port: int, token: str, db: str
) -> tuple[list[Row], dict[str, Any]]:
    import httpx
    import psycopg

    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-Proto": "https"}
    # Without --keep-alive every call opens its own connection, as a proxy in front does by
    # default (nginx to its upstream), and the gthread workers share the load. Kept-alive
    # connections stay with the worker that accepted them, and 16 clients connecting at once were
    # all accepted by one worker: one process on one core did all the work (measured: day.run
    # 4.35x its ideal at 16, against 1.63x with a connection per call).
    keepalive = args.concurrency if args.keep_alive else 0
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=keepalive)
    client = httpx.Client(base_url=web_url, headers=headers, limits=limits, timeout=60)
    sim = httpx.Client(base_url=f"http://127.0.0.1:{sim_port}", timeout=10)
    pool = ThreadPoolExecutor(args.concurrency)

    def calls(
        method: str, path: str, learners: Sequence[int], body: Callable[[int], Any], expect: int
    ) -> Any:
        def one(n: int) -> tuple[float, dict[str, Any]]:
            start = time.perf_counter()
            response = client.request(
                method, f"/api/orchestrator/{path}", json=body(n), headers={"X-User-ID": platform_id(n)}
            )
            elapsed = time.perf_counter() - start
            if response.status_code != expect:
                raise SystemExit(f"{path} for {platform_id(n)}: {response.status_code} {response.text[:300]}")
            return elapsed, response.json()

        done = list(pool.map(one, learners))
        return [seconds for seconds, _ in done], [answer for _, answer in done]

    r, w = args.requests, args.week_learners
    fresh, intents, week_group = range(r), range(r, 2 * r), range(2 * r, 2 * r + w)
    spread = [n * args.learners // r for n in range(r)]
    warmup = range(2 * r + w, args.learners)
    with client, sim, pool:
        calls("GET", "status", [*warmup, *spread][: 4 * args.concurrency], lambda n: None, 200)
        calls("POST", "day.run", list(warmup)[: args.concurrency], lambda n: TODAY, 201)

        status, _ = calls("GET", "status", spread, lambda n: None, 200)
        run_fresh, plans = calls("POST", "day.run", fresh, lambda n: TODAY, 201)
        if any(plan["degraded_mode"] or plan["cache_misses"] != len(AGENTS) for plan in plans):
            raise SystemExit("a fresh day.run was degraded, or did not ask every agent")
        run_stored, again = calls("POST", "day.run", fresh, lambda n: TODAY, 200)
        if [plan["session_id"] for plan in again] != [plan["session_id"] for plan in plans]:
            raise SystemExit("day.run of a stored day answered another session")
        session_of = dict(zip(fresh, (plan["session_id"] for plan in plans), strict=True))
        done, _ = calls("POST", "day.done", fresh, lambda n: completion(session_of[n]), 200)
        changed = {**INTENT, "time_per_day_min": 45}
        new_intent, _ = calls("POST", "intent.sync", intents, lambda n: changed, 200)
        same_intent, _ = calls("POST", "intent.sync", intents, lambda n: changed, 200)

        sim.post("/_sim/reset").raise_for_status()
        week_runs: list[float] = []
        by_day = []
        for day in range(1, 8):
            seconds, plans = calls("POST", "day.run", week_group, lambda n, d=day: {"week": 3, "day": d}, 201)
            week_runs += seconds
            by_day.append((sum(p["cache_hits"] for p in plans), sum(p["cache_misses"] for p in plans)))
            session_of = dict(zip(week_group, (plan["session_id"] for plan in plans), strict=True))
            calls("POST", "day.done", week_group, lambda n, ids=session_of: completion(ids[n]), 200)
            with psycopg.connect(db, autocommit=True) as conn:
                conn.execute(
                    "UPDATE tutor_agentsignal SET checked_at = checked_at - interval '1 day', "
                    "fetched_at = fetched_at - interval '1 day'"
                )
        agents = sim.get("/_sim/report").json()["data"]["agents"]

    ideal = float(args.latency_ms)
    rows = [
        Row("status", status, 100),
        Row("day.done", done, 200),
        Row("intent.sync, a changed intent", new_intent, 500),
        Row("intent.sync, the same again", same_intent, 500),
        Row("day.run, a fresh day (agents asked)", run_fresh, 12_000, ideal),
        Row("day.run, a stored day", run_stored, 12_000),
        Row(f"day.run, the week ({w} learners x 7 days)", week_runs, 12_000, ideal),
    ]
    return rows, {"by_day": by_day, "agents": agents}


def completion(session_id: str) -> dict[str, Any]:
    return {"session_id": session_id, "completion_time_min": 30, "confidence": 7, "notes": "fine"}


def render(
    args: argparse.Namespace,
    rows: list[Row],
    week: dict[str, Any],
    *,
    workers_kib: list[int],
    setup_s: float,
    runtime_s: float,
) -> str:
    lines = [
        "# The learner orchestrator over HTTP, PostgreSQL",
        "",
        f"Machine: nproc {len(os.sched_getaffinity(0))}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}. {args.learners:,} learners; gunicorn gthread "
        f"{args.workers} x {args.threads}, DEBUG=0; agents at {args.latency_ms} ms each; "
        f"CONN_MAX_AGE={args.conn_max_age}; {args.concurrency} concurrent clients "
        f"({'keeping their connections' if args.keep_alive else 'a connection per call'}), "
        "one call per distinct learner.",
        "",
        "| endpoint | calls | p50 ms | p95 ms | target (p95) | p50 / ideal | |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        p50, p95 = statistics.median(row.seconds) * 1000, percentile(row.seconds, 95) * 1000
        ratio = f"{p50 / row.ideal_ms:.2f}x" if row.ideal_ms else ""
        verdict = "ok" if p95 < row.target_ms else "MISSED"
        target = f"< {row.target_ms:,.0f} ms"
        lines.append(
            f"| {row.label} | {len(row.seconds)} | {p50:.0f} | {p95:.0f} | {target} | {ratio} | {verdict} |"
        )
    hits = sum(h for h, _ in week["by_day"])
    asked = sum(h + m for h, m in week["by_day"])
    warm_hits = sum(h for h, _ in week["by_day"][1:])
    warm_asked = sum(h + m for h, m in week["by_day"][1:])
    verdict = "ok" if hits / asked >= HIT_RATE_TARGET else "MISSED"
    per_day = ", ".join(f"{h / (h + m):.0%}" for h, m in week["by_day"])
    per_agent = ", ".join(f"{name} {c['304']} x 304 / {c['200']} x 200" for name, c in week["agents"].items())
    lines += [
        "",
        f"- Cache hit rate over the week: {hits / asked:.1%} ({hits:,} of {asked:,}), target >= "
        f"{HIT_RATE_TARGET:.0%}: {verdict}; on days 2-7 (yesterday's signals cached) "
        f"{warm_hits / warm_asked:.1%}. "
        f"By day: {per_day}.",
        f"- The agents in the week: {per_agent}.",
        f"- Peak RSS (VmHWM) of the gunicorn workers: {', '.join(f'{k / 1024:.0f}' for k in workers_kib)} "
        "MiB; "
        f"of this process (clients): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB.",
        f"- Script runtime {runtime_s:.0f} s, of which set-up (migrate, learners) {setup_s:.0f} s.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
