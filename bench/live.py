"""Live class sessions at scale (issue 15): 200 sessions of 30 participants on PostgreSQL, their
signal batches over real HTTP, the tick that scores them, how soon injected changes are detected
and how often a calm class raises an anomaly.

Usage, from the repo root:

    .venv/bin/python bench/live.py [--sessions 200] [--minutes 20] [--concurrency 16] [--database-url URL]

Goals: the platform's batches taken in at least as fast as they come (one per session every 5 s);
a tick of every live session well inside its 5-s period (under 1 s); an injected change detected
with a p99 under 10 s; under one false alarm per calm session-hour.

Method
1. A PostgreSQL database of its own (`bench_live`, dropped afterwards). A subprocess migrates it
   and creates one organisation with a `live_secret`, one class per session (platform ids
   live-0000, ...), and starts each class's session with `session_start(..., now=START)`.
2. Virtual time: START is the run's length plus 3 hours ago, on the 5-s tick grid, so that every
   event lies in the past (the API refuses events more than 5 minutes ahead of its clock, not
   past ones) and hours of class are played in minutes of wall time. Every class is a
   `classroom.platform.live_class.LiveClass` of 30 participants, seed = its index. Of the
   sessions, a tenth each (rounded) gets one change, at a known second staggered evenly over
   40-60 % of the run (8-12 minutes of 20): a sudden drop (activity 0.15 from then on), a mass
   exit (12 of the 30 leave) or a gradual decline (activity ramps to 0.15 over 5 minutes and stays
   there); the rest are calm throughout (activity 1).
3. Every session's batch of each 5-s step (the events of its seconds [5k, 5k + 5), empty or not:
   the platform sends a batch every step) is generated and signed (HMAC-SHA256 of the raw body
   under the live secret, `X-Platform-Signature`) before any server starts, in a process pool,
   so the driver spends its time on HTTP only.
4. gunicorn serves `tutor.wsgi` on loopback with DEBUG=0, CONN_MAX_AGE=60, gthread 4 processes x
   4 threads. A tick process of its own (this script, set up with `setup_child()`, on the same
   database) waits for a time on its stdin, runs `classroom.live.services.tick(all session ids,
   now=time)` and answers how long that call took.
5. The loop, for each step k: a thread pool of `--concurrency` clients sharing one httpx client
   that opens a connection per call posts every session's batch of step k (the step's ingest wall
   time is kept), then the tick process ticks at START + 5 (k + 1). A batch's time is taken
   around its request; every answer must be 200 with `accepted` the batch's event count and no
   duplicate. Before step 0, four empty batches per client warm the workers up (not timed).
6. Afterwards the tick process reads every anomaly. A change's detection latency is the `at` of
   the first anomaly of its type (SUDDEN_DROP, MASS_EXIT, GRADUAL_DECLINE) at or after the
   change, minus the change's time; none by the end of the run is "never". False alarms are every
   anomaly of a calm session, per calm session-hour (the sessions' whole length), and, apart,
   those raised in the calm part (before the change) of the changed sessions. The events and
   ticks stored are checked against those sent and run.
7. Peak memory is VmHWM (/proc) of each gunicorn worker and of the tick process at the end, and
   this process's ru_maxrss (which holds every pre-signed batch).

Caveats: everything (PostgreSQL, gunicorn, the tick process, the clients) shares one machine, so
times include queueing for the CPU, and ingest and tick never overlap here (in production the
conductor ticks while batches arrive). A tick's anomaly carries the tick's time, so a latency is
at least the wait for the next tick (0-5 s) and a mass exit is seen at the first tick after the
leaves. A gradual decline is a change of minutes: its rule needs a fall over a 3-minute window,
so its latency measures the rule's window rather than the pipeline's speed. Session-hours are
virtual: the tables grow as in 20 minutes of 200 classes, not as in hours of wall time.
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
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
from classroom.platform.live_class import LiveClass, Phase  # noqa: E402
from classroom.platform.live_player import sign  # noqa: E402

BENCH_SECRET_KEY = "bench-live-not-a-secret"
LIVE_SECRET = "bench-live-secret"
STEP_S = 5
WORKERS, THREADS = 4, 4
CONN_MAX_AGE = 60
PARTICIPANTS = 30
EXIT_LEAVERS = 12
LOW_ACTIVITY = 0.15
DECLINE_RAMP_S = 300
CHANGED_SHARE = 0.1  # of the sessions, for each kind of change
CHANGE_FROM, CHANGE_TO = 0.4, 0.6  # of the run, where the changes are staggered
TICK_TARGET_S = 1.0
LATENCY_TARGET_S = 10.0
FALSE_ALARM_TARGET = 1.0  # per calm session-hour
EXPECTED = {"drop": "SUDDEN_DROP", "exit": "MASS_EXIT", "decline": "GRADUAL_DECLINE"}


@dataclass(frozen=True)
class Plan:
    """One session's class: its index (the seed) and its change, if any, at `change_s`."""

    index: int
    kind: str  # calm, or a key of EXPECTED
    change_s: int | None


@dataclass(frozen=True)
class Batch:
    body: bytes
    signature: str
    events: int


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_setup:
        return child_setup(args.sessions, datetime.fromisoformat(args.start), Path(args.child_setup))
    if args.child_ticker:
        return child_ticker(Path(args.child_ticker))
    started = time.perf_counter()
    duration_s = args.minutes * 60
    now = datetime.now(UTC) - timedelta(hours=3, seconds=duration_s)
    start = datetime.fromtimestamp(now.timestamp() // STEP_S * STEP_S, tz=UTC)
    plans = make_plans(args.sessions, duration_s)
    with (
        tempfile.TemporaryDirectory(prefix="bench-live-") as tmp,
        postgres_database(args.database_url, "bench_live") as url,
    ):
        web_port = free_port()
        env = bench_env(
            url,
            debug=False,
            secret_key=BENCH_SECRET_KEY,
            ALLOWED_HOSTS="127.0.0.1",
            LOG_LEVEL="WARNING",
            CONN_MAX_AGE=str(CONN_MAX_AGE),
        )
        print(
            f"set-up: migrate, {args.sessions} sessions from {start:%H:%M:%S} ...",
            file=sys.stderr,
            flush=True,
        )
        setup = Path(tmp) / "setup.json"
        command = [sys.executable, __file__, f"--sessions={args.sessions}", f"--start={start.isoformat()}"]
        subprocess.run(
            [*command, f"--child-setup={setup}"], env=env, cwd=REPO_ROOT, check=True, stdout=sys.stderr
        )
        ids = json.loads(setup.read_text())["session_ids"]
        setup_s = time.perf_counter() - started
        print(f"generating and signing {args.sessions} x {duration_s // STEP_S} batches ...", file=sys.stderr)
        generated = time.perf_counter()
        with ProcessPoolExecutor(len(os.sched_getaffinity(0))) as pool:
            batches = list(pool.map(signed_batches, plans, [start] * len(plans), [duration_s] * len(plans)))
        generate_s = time.perf_counter() - generated
        gunicorn = [
            str(Path(sys.executable).parent / "gunicorn"),
            "tutor.wsgi",
            f"--bind=127.0.0.1:{web_port}",
        ]
        gunicorn += [f"--workers={WORKERS}", f"--threads={THREADS}", "--worker-class=gthread"]
        with (
            listening_process(gunicorn, env=env, port=web_port, log=Path(tmp) / "gunicorn.log") as web,
            Ticker([sys.executable, __file__, f"--child-ticker={setup}"], env=env) as ticker,
        ):
            looped = time.perf_counter()
            run = drive(
                args,
                web_url=f"http://127.0.0.1:{web_port}",
                ids=ids,
                batches=batches,
                ticker=ticker,
                start=start,
            )
            loop_s = time.perf_counter() - looped
            workers_kib = [peak_rss_kib(pid) for pid in child_pids(web.pid)]
            ticker_kib = peak_rss_kib(ticker.process.pid)
            stored = ticker.finish()
    check_stored(stored, batches, run)
    runtime_s = time.perf_counter() - started
    detection = detect_results(plans, ids, stored["anomalies"], start)
    print(
        render(
            args,
            run,
            detection,
            batches=batches,
            memory={"workers": workers_kib, "ticker": ticker_kib},
            times={"setup": setup_s, "generate": generate_s, "loop": loop_s, "runtime": runtime_s},
        )
    )
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Live sessions' ingest, tick and detection, on PostgreSQL.")
    parser.add_argument("--sessions", type=positive_int, default=200, help="live sessions (200)")
    parser.add_argument("--minutes", type=positive_int, default=20, help="virtual minutes of class (20)")
    parser.add_argument("--concurrency", type=positive_int, default=16, help="concurrent clients (16)")
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="the PostgreSQL server, where a database bench_live is made and dropped",
    )
    parser.add_argument("--start", help=argparse.SUPPRESS)  # internal: the set-up's START
    parser.add_argument("--child-setup", help=argparse.SUPPRESS)  # internal: the set-up subprocess
    parser.add_argument("--child-ticker", help=argparse.SUPPRESS)  # internal: the tick subprocess
    args = parser.parse_args(argv)
    if args.minutes < 4:
        parser.error(
            "needs at least 4 minutes: a sudden drop's baseline is the 2 minutes before the last one"
        )
    return args


# The classes and their batches.


def make_plans(sessions: int, duration_s: int) -> list[Plan]:
    """A tenth of the sessions (rounded) for each kind of change, staggered evenly over 40-60 % of
    the run; the rest calm."""
    per_kind = round(sessions * CHANGED_SHARE)
    plans = []
    for kind in EXPECTED:
        for n in range(per_kind):
            share = CHANGE_FROM + (CHANGE_TO - CHANGE_FROM) * n / max(per_kind - 1, 1)
            plans.append(Plan(len(plans), kind, round(duration_s * share)))
    plans += [Plan(index, "calm", None) for index in range(len(plans), sessions)]
    return plans


def script_of(plan: Plan, duration_s: int) -> tuple[Phase, ...]:
    """The plan's phases; the last runs past the end of the run (its events are never asked)."""
    if plan.change_s is None:
        return (Phase(duration_s),)
    calm = Phase(plan.change_s)
    if plan.kind == "drop":
        return calm, Phase(duration_s, activity=LOW_ACTIVITY)
    if plan.kind == "exit":
        return calm, Phase(duration_s, leave=EXIT_LEAVERS)
    return (
        calm,
        Phase(DECLINE_RAMP_S, activity=LOW_ACTIVITY, ramp=True),
        Phase(duration_s, activity=LOW_ACTIVITY),
    )


def signed_batches(plan: Plan, start: datetime, duration_s: int) -> list[Batch]:
    """The session's batch of every step, its body signed as the platform signs it."""
    live_class = LiveClass(
        start=start, script=script_of(plan, duration_s), participants=PARTICIPANTS, seed=plan.index
    )
    out = []
    for second in range(0, duration_s, STEP_S):
        events = live_class.events(second, second + STEP_S)
        out.append(signed({"events": events}, len(events)))
    return out


def signed(payload: dict[str, Any], events: int) -> Batch:
    body = json.dumps(payload).encode()
    return Batch(body, sign(body, LIVE_SECRET), events)


# The subprocesses: the set-up, and the tick.


def child_setup(sessions: int, start: datetime, output: Path) -> int:
    setup_child()
    from django.core.management import call_command

    from classroom.live.services import session_start
    from classroom.models import Organisation, SchoolClass

    call_command("migrate", interactive=False, verbosity=0)
    organisation = Organisation.objects.create(
        name="Bench school", slug="bench-school", live_secret=LIVE_SECRET
    )
    classes = SchoolClass.objects.bulk_create(
        SchoolClass(organisation=organisation, name=f"Live {n}", platform_id=f"live-{n:04d}")
        for n in range(sessions)
    )
    ids = [session_start(school_class=c, topic="Linear equations", by=None, now=start).pk for c in classes]
    output.write_text(json.dumps({"session_ids": ids}))
    return 0


def child_ticker(setup: Path) -> int:
    """For each time on stdin, one tick of every session, answered on stdout with its duration;
    at the end of stdin, every anomaly and the counts of what was stored."""
    setup_child()
    from audit import context
    from classroom.live.models import LiveAnomaly, LiveEvent, LiveTick
    from classroom.live.services import tick

    ids = json.loads(setup.read_text())["session_ids"]
    for line in sys.stdin:
        now = datetime.fromisoformat(line.strip())
        with context.bind(source="worker"):  # as the conductor does, a correlation id per tick
            begun = time.perf_counter()
            ticked = tick(ids, now=now)
            seconds = time.perf_counter() - begun
        anomalies = sum(len(t.anomalies) for t in ticked)
        print(json.dumps({"seconds": seconds, "ticked": len(ticked), "anomalies": anomalies}), flush=True)
    anomalies = [
        [session_id, type_, severity, at.isoformat()]
        for session_id, type_, severity, at in LiveAnomaly.objects.values_list(
            "session_id", "type", "severity", "at"
        )
    ]
    summary = {"anomalies": anomalies, "events": LiveEvent.objects.count(), "ticks": LiveTick.objects.count()}
    print(json.dumps(summary), flush=True)
    return 0


class Ticker:
    """The tick process, driven one line at a time over its stdin and stdout."""

    def __init__(self, command: list[str], *, env: dict[str, str]) -> None:
        self.command, self.env = command, env

    def __enter__(self) -> Ticker:
        self.process = subprocess.Popen(
            self.command,
            env={**self.env, "PYTHONUNBUFFERED": "1"},
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def tick(self, now: datetime) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{now.isoformat()}\n")
        self.process.stdin.flush()
        return self._answer()

    def finish(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.close()
        answer = self._answer()
        if self.process.wait(timeout=60) != 0:
            raise SystemExit(f"the tick process ended with {self.process.returncode}")
        return answer

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        try:
            return json.loads(line)
        except ValueError:
            raise SystemExit(f"the tick process answered {line!r} (exit {self.process.poll()})") from None


# The loop.


@dataclass
class Run:
    batch_s: list[float]
    step_ingest_s: list[float]
    tick_s: list[float]
    tick_anomalies: int


def drive(
    args: argparse.Namespace,
    *,
    web_url: str,
    ids: list[int],
    batches: list[list[Batch]],
    ticker: Ticker,
    start: datetime,
) -> Run:
    import httpx

    # A connection per call, as a proxy in front of gunicorn does by default (see bench/orchestrator.py).
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=0)
    headers = {"Content-Type": "application/json", "X-Forwarded-Proto": "https"}
    client = httpx.Client(base_url=web_url, headers=headers, limits=limits, timeout=60)
    pool = ThreadPoolExecutor(args.concurrency)

    def post(session_id: int, batch: Batch) -> float:
        begun = time.perf_counter()
        response = client.post(
            f"/api/live/sessions/{session_id}/signals",
            content=batch.body,
            headers={"X-Platform-Signature": batch.signature},
        )
        elapsed = time.perf_counter() - begun
        if response.status_code != 200:
            raise SystemExit(f"signals of session {session_id}: {response.status_code} {response.text[:300]}")
        answer = response.json()
        if answer != {"accepted": batch.events, "duplicates": 0}:
            raise SystemExit(f"signals of session {session_id}: {answer}, sent {batch.events} new events")
        return elapsed

    empty = signed({"events": []}, 0)
    run = Run([], [], [], 0)
    steps = len(batches[0])
    with client, pool:
        warm = [ids[n % len(ids)] for n in range(4 * args.concurrency)]
        list(pool.map(post, warm, [empty] * len(warm)))
        for step in range(steps):
            begun = time.perf_counter()
            run.batch_s += pool.map(post, ids, [of_session[step] for of_session in batches])
            run.step_ingest_s.append(time.perf_counter() - begun)
            ticked = ticker.tick(start + timedelta(seconds=(step + 1) * STEP_S))
            if ticked["ticked"] != len(ids):
                raise SystemExit(f"tick of step {step} scored {ticked['ticked']} of {len(ids)} sessions")
            run.tick_s.append(ticked["seconds"])
            run.tick_anomalies += ticked["anomalies"]
            if (step + 1) % (60 // STEP_S) == 0:
                print(
                    f"minute {(step + 1) * STEP_S // 60}/{args.minutes}: "
                    f"ingest {run.step_ingest_s[-1]:.2f} s, tick {ticked['seconds']:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
    return run


def check_stored(stored: dict[str, Any], batches: list[list[Batch]], run: Run) -> None:
    """What the database holds against what was sent and ticked."""
    sent = sum(b.events for of_session in batches for b in of_session)
    if stored["events"] != sent:
        raise SystemExit(f"{stored['events']:,} events stored of {sent:,} sent")
    ticks = len(run.tick_s) * len(batches)
    if stored["ticks"] != ticks:
        raise SystemExit(f"{stored['ticks']:,} ticks stored of {ticks:,} run")
    if len(stored["anomalies"]) != run.tick_anomalies:
        raise SystemExit(
            f"{len(stored['anomalies'])} anomalies stored, the ticks raised {run.tick_anomalies}"
        )


# The results.


@dataclass
class Detection:
    kind: str
    latencies_s: list[float]
    never: int
    others: Counter[str]  # other anomalies of these sessions after the change, by type


@dataclass
class Results:
    detections: list[Detection]
    calm_sessions: int
    calm: Counter[tuple[str, str]]  # (type, severity) of the calm sessions' anomalies
    calm_part_s: int  # the changed sessions' seconds before their change
    calm_part: Counter[tuple[str, str]]


def detect_results(plans: list[Plan], ids: list[int], anomalies: list[list[Any]], start: datetime) -> Results:
    by_session: dict[int, list[tuple[str, str, float]]] = {}
    for session_id, type_, severity, at in anomalies:
        offset = (datetime.fromisoformat(at) - start).total_seconds()
        by_session.setdefault(session_id, []).append((type_, severity, offset))
    detections = {kind: Detection(kind, [], 0, Counter()) for kind in EXPECTED}
    calm: Counter[tuple[str, str]] = Counter()
    calm_part: Counter[tuple[str, str]] = Counter()
    for plan, session_id in zip(plans, ids, strict=True):
        raised = sorted(by_session.get(session_id, []), key=lambda a: a[2])
        if plan.change_s is None:
            calm.update((type_, severity) for type_, severity, _ in raised)
            continue
        calm_part.update((type_, severity) for type_, severity, at in raised if at < plan.change_s)
        after = [a for a in raised if a[2] >= plan.change_s]
        detection = detections[plan.kind]
        first = next((at for type_, _, at in after if type_ == EXPECTED[plan.kind]), None)
        if first is None:
            detection.never += 1
        else:
            detection.latencies_s.append(first - plan.change_s)
        detection.others.update(type_ for type_, _, _ in after if type_ != EXPECTED[plan.kind])
    changed = [p for p in plans if p.change_s is not None]
    return Results(
        detections=[d for d in detections.values() if d.latencies_s or d.never],
        calm_sessions=len(plans) - len(changed),
        calm=calm,
        calm_part_s=sum(p.change_s or 0 for p in changed),
        calm_part=calm_part,
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def by_type(counts: Counter[tuple[str, str]]) -> str:
    return ", ".join(f"{n} {t} ({s.lower()})" for (t, s), n in sorted(counts.items())) or "none"


def render(
    args: argparse.Namespace,
    run: Run,
    results: Results,
    *,
    batches: list[list[Batch]],
    memory: dict[str, Any],
    times: dict[str, float],
) -> str:
    steps = len(batches[0])
    events = sum(b.events for of_session in batches for b in of_session)
    empty = sum(b.events == 0 for of_session in batches for b in of_session)
    ingest_s = sum(run.step_ingest_s)
    needed = args.sessions / STEP_S
    lines = [
        "# Live sessions at scale, PostgreSQL",
        "",
        f"Machine: nproc {len(os.sched_getaffinity(0))}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}. {args.sessions} sessions of {PARTICIPANTS} participants, "
        f"{args.minutes} virtual minutes ({steps} steps of {STEP_S} s); gunicorn gthread "
        f"{WORKERS} x {THREADS}, DEBUG=0, CONN_MAX_AGE={CONN_MAX_AGE}; {args.concurrency} concurrent "
        "clients, a connection per call; each step's batches posted, then one tick of every session.",
        "",
        "## Ingest",
        "",
        "| batches | events | empty batches | batches/s | events/s | needed in real time | p50 ms | p95 ms "
        "| max ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {len(run.batch_s):,} | {events:,} | {empty:,} | {len(run.batch_s) / ingest_s:,.1f} "
        f"| {events / ingest_s:,.1f} | {needed:,.0f} batches/s | {ms(statistics.median(run.batch_s))} "
        f"| {ms(percentile(run.batch_s, 95))} | {ms(max(run.batch_s))} |",
        "",
        f"- A step's {args.sessions} batches took p50 {statistics.median(run.step_ingest_s):.2f} s, "
        f"p95 {percentile(run.step_ingest_s, 95):.2f} s, max {max(run.step_ingest_s):.2f} s of wall time, "
        f"against the {STEP_S}-s period: "
        f"{'ok' if len(run.batch_s) / ingest_s >= needed else 'MISSED'} (batches/s against the need).",
        "",
        "## Tick",
        "",
        "| ticks | sessions each | p50 ms | p95 ms | max ms | over 1 s | target (p95) | |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| {len(run.tick_s)} | {args.sessions} | {ms(statistics.median(run.tick_s))} | "
        f"{ms(percentile(run.tick_s, 95))} | {ms(max(run.tick_s))} | "
        f"{sum(s > TICK_TARGET_S for s in run.tick_s)} | < {ms(TICK_TARGET_S)} ms | "
        f"{'ok' if percentile(run.tick_s, 95) < TICK_TARGET_S else 'MISSED'} |",
        "",
        "## Detection latency",
        "",
        "| change | sessions | detected | never | p50 s | p99 s | max s | target (p99) | | also raised after "
        "the change |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for d in results.detections:
        found = d.latencies_s
        p50, p99, worst = (
            (f"{statistics.median(found):.0f}", f"{percentile(found, 99):.0f}", f"{max(found):.0f}")
            if found
            else ("-", "-", "-")
        )
        verdict = "ok" if found and not d.never and percentile(found, 99) < LATENCY_TARGET_S else "MISSED"
        others = ", ".join(f"{n} {t}" for t, n in sorted(d.others.items())) or "nothing"
        lines.append(
            f"| {EXPECTED[d.kind]} ({d.kind}) | {len(found) + d.never} | {len(found)} | {d.never} "
            f"| {p50} | {p99} | {worst} | < {LATENCY_TARGET_S:.0f} s | {verdict} | {others} |"
        )
    calm_hours = results.calm_sessions * args.minutes / 60
    calm_rate = sum(results.calm.values()) / calm_hours if calm_hours else 0.0
    part_hours = results.calm_part_s / 3600
    part_rate = sum(results.calm_part.values()) / part_hours if part_hours else 0.0
    lines += [
        "",
        "## False alarms",
        "",
        f"- Calm sessions: {_anomalies(sum(results.calm.values()))} in {calm_hours:.1f} session-hours "
        f"({results.calm_sessions} sessions): {calm_rate:.2f} per session-hour, target < "
        f"{FALSE_ALARM_TARGET:.0f}: {'ok' if calm_rate < FALSE_ALARM_TARGET else 'MISSED'}. "
        f"By type: {by_type(results.calm)}.",
        "- The calm part (before the change) of the changed sessions: "
        f"{_anomalies(sum(results.calm_part.values()))} in {part_hours:.1f} session-hours: "
        f"{part_rate:.2f} per session-hour. "
        f"By type: {by_type(results.calm_part)}.",
        "",
        "## Memory and time",
        "",
        "- Peak RSS (VmHWM) of the gunicorn workers: "
        f"{', '.join(f'{k / 1024:.0f}' for k in memory['workers'])} MiB; "
        f"of the tick process: {memory['ticker'] / 1024:.0f} MiB; of this process (clients, every "
        f"batch pre-signed): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB.",
        f"- Script runtime {times['runtime']:.0f} s: set-up (migrate, sessions) {times['setup']:.0f} s, "
        f"generating the batches {times['generate']:.0f} s, the loop {times['loop']:.0f} s (ingest "
        f"{ingest_s:.0f} s, ticks {sum(run.tick_s):.0f} s).",
    ]
    return "\n".join(lines)


def _anomalies(count: int) -> str:
    return f"{count} anomal{'y' if count == 1 else 'ies'}"


if __name__ == "__main__":
    sys.exit(main())
