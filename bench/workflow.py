"""Bulk activation of a 30-student cluster (TAW_11): `POST /api/workflow/activate`, and the service alone.

Usage, from the repo root:

    .venv/bin/python bench/workflow.py [--students 30] [--runs 30] [--warmup 5] [--repeat 1]
        [--database-url URL] [--debug]

The goal (from the issue): the median time of one bulk activation of a cluster of 30 students
(`POST /api/workflow/activate` with a `clusterId`, `workflow.services.activate`), on PostgreSQL,
with its query count and where the time goes. There is no target figure in the issue; the verdict
line holds it against `--budget-ms` (100), the "tens of milliseconds, not seconds" an activation of
30 rows should take.

Method
1. Each repeat (`--repeat`) runs in a subprocess of this script with `DATABASE_URL` set to a
   database of its own: a SQLite file in a temporary directory by default, or, with
   `--database-url postgres://...`, a database `bench_workflow_<n>` created on that server and
   dropped afterwards. The developer's db.sqlite3 is never opened.
2. The subprocess runs `migrate`, then makes, by the ORM: an organisation, a teacher with an API
   token (`classroom.api_auth.api_token_create`), a class (subject "Mathematics") the teacher
   teaches, N students enrolled in it, each with 28 days of `DailyPerformance` up to today (mastery
   measured every day and rising 0.6 points a day, so +7.8 over the last 14 days; confidence 3-4,
   then 1-2 on the last three days), and the demo school's bundles (`workflow.demo.BUNDLES`). The
   profile engine (`workflow.engines.profile`: at least 10 measured days, gain >= STALL_GAIN,
   last three ratings <= LOW_CONFIDENCE) then recommends the COMPOSITE bundle BND-MATH-CONF at
   Level_2, small group, to every student. `services.recommendations_refresh` runs once (timed,
   cold, given as a note); there must then be exactly one cluster, of N members, none excluded,
   and no open acute-regression alert. The teacher has a draft at TAW_10 (activation
   confirmation) with nobody taken out, as after going through the steps, so the activation reads
   it and moves it to TAW_13. On PostgreSQL, `VACUUM ANALYZE` (the statistics autovacuum keeps).
3. Two ways of activating, each after `--warmup` untimed runs, then `--runs` timed runs each,
   alternating (API, service; service, API; ...) so that drift hits both alike:
   - API: `django.test.Client().post("/api/workflow/activate", {"classId", "clusterId"})` with
     `Authorization: Bearer <token>`, over HTTPS (`secure=True`: with DEBUG=0 the settings
     redirect plain HTTP): the whole middleware stack, the token lookup, the class scope check,
     the schema, then the service and the JSON response, without a socket.
   - Service: `workflow.services.activate(teacher=..., school_class=..., cluster_id=...)` with
     the teacher and class loaded once beforehand, inside `audit.context.bind(source="api")`.
   Both run the advisory lock on (org, class) (PostgreSQL only: SQLite serialises writers), N
   bundle assignments with their scaffold rows and first history rows, N teacher action log rows,
   the draft moved to TAW_13 and one `workflow.activated` audit event on the organisation's hash
   chain, in one transaction.
   Every run is checked: status 200, kind "activated", N activated and none deferred, excluded or
   already active. After each run (untimed) what it made is deleted and counted: the bundle
   assignments (cascading to the scaffold rows and history rows, which must number as the bundle
   says) and the teacher action log rows; the draft goes back to TAW_10. The audit events stay
   (on PostgreSQL a trigger makes the log append-only), one more per run; their number is checked
   at the end.
4. `time.perf_counter()` around the call. SQL ms is the time inside the cursor's execute
   (`connection.execute_wrapper`, every statement including the savepoints and the lock); COMMIT
   ms is the time in the connection's `commit()` (not a cursor statement, so not in SQL); the
   rest is Python: the ORM building queries and objects, ninja, the middleware, hashing the audit
   event. CPU ms is this process's CPU time (`time.process_time()`) in the call: well under the
   wall time means waiting, for the database or for a core another process holds. The query
   count comes from one more run of each kind under `CaptureQueriesContext` (which also counts
   the BEGIN and COMMIT Django logs), kept out of the timed ones. The statements through the
   cursor are grouped by kind and table over the timed API runs, with their time per activation,
   to show the biggest costs; those that run once per student are summed in a note.

Caveats: Django's test client does not close the database connection between requests, so this
is a web process with persistent connections (`CONN_MAX_AGE` > 0); with the default
`CONN_MAX_AGE=0` every real request also pays for a new connection (measured, given as a note).
Settings are what `tutor.settings` reads from the environment, with DEBUG=0 (as production; with
DEBUG=1 Django also keeps every query of the connection) unless `--debug`. p95 is the
nearest-rank percentile: of 30 runs, the second slowest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
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
    setup_child,
)

RESULTS_DIR = REPO_ROOT / "bench" / "results"
POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql")
BENCH_SECRET_KEY = "bench-workflow-not-a-secret"
BUNDLE_CODE = "BND-MATH-CONF"
TIER = "Level_2"
DAYS = 28
ENDPOINT = "/api/workflow/activate"


@dataclass
class Timing:
    """One way of activating (API or service), over the timed runs."""

    label: str
    total_ms: list[float]
    sql_ms: list[float]
    commit_ms: list[float]
    cpu_ms: list[float]
    queries: int
    query_kinds: dict[str, int]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.total_ms)

    def median(self, name: str) -> float:
        return statistics.median(getattr(self, name))

    @property
    def rest_ms(self) -> list[float]:
        return [t - s - c for t, s, c in zip(self.total_ms, self.sql_ms, self.commit_ms, strict=True)]


@dataclass
class Result:
    repeat: int
    students: int
    api: Timing
    service: Timing
    # Over the timed API runs: statement kind -> [statements, seconds] in all.
    statements: dict[str, list[float]]
    scaffold_rows_each: int
    notes: list[str]
    engine: str
    engine_name: str
    engine_version: str
    django_version: str
    debug: bool
    setup_s: float
    timing_s: float
    load_before: float
    load_after: float
    connect_ms: float
    refresh_ms: float
    runs: int
    warmup: int
    extra: dict[str, Any] = field(default_factory=dict)


# The parent: one subprocess and one database per repeat, then the tables.


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_repeat is not None:
        return child_main(args)
    started = time.perf_counter()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-workflow-") as tmp:
        for number in range(1, args.repeat + 1):
            name = f"bench_workflow_{number}"
            with database_for(name, server_url=args.database_url, tmp=Path(tmp)) as url:
                results.append(run_child(number, url=url, args=args, tmp=Path(tmp)))
    runtime_s = time.perf_counter() - started
    markdown = render_markdown(results, args=args, runtime_s=runtime_s)
    print(markdown)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"workflow-{results[0].engine}.md"
    out.write_text(markdown + "\n")
    print(f"\nWritten to {out.relative_to(REPO_ROOT)}", file=sys.stderr)
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Median, p95, queries and SQL time of one bulk activation of a cluster (TAW_11)."
    )
    parser.add_argument("--students", type=positive_int, default=30, help="students in the cluster (30)")
    parser.add_argument("--runs", type=positive_int, default=30, help="timed activations of each kind (30)")
    parser.add_argument("--warmup", type=positive_int, default=5, help="untimed activations of each kind (5)")
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        help="whole measurements, one after the other, each in a database of its own (1)",
    )
    parser.add_argument(
        "--budget-ms",
        type=float,
        default=100.0,
        help="the verdict's bound on the API median (100: tens of milliseconds, not seconds)",
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to use, e.g. postgres://postgres@127.0.0.1:5432/postgres; the bench "
        "creates and drops a database bench_workflow_<n> there per repeat (default: SQLite files in a "
        "temporary directory)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="run with DEBUG=1 (default DEBUG=0, as production)"
    )
    # Internal: how the parent runs one repeat in a subprocess.
    parser.add_argument("--child-repeat", type=positive_int, help=argparse.SUPPRESS)
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.database_url and urlsplit(args.database_url).scheme not in POSTGRES_SCHEMES:
        parser.error("--database-url must be a postgres:// URL (SQLite is the default)")
    return args


def child_env(url: str, args: argparse.Namespace) -> dict[str, str]:
    return bench_env(url, debug=args.debug, secret_key=BENCH_SECRET_KEY, ALLOWED_HOSTS="testserver")


def run_child(number: int, *, url: str, args: argparse.Namespace, tmp: Path) -> Result:
    output = tmp / f"result-{number}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        f"--child-repeat={number}",
        f"--students={args.students}",
        f"--runs={args.runs}",
        f"--warmup={args.warmup}",
        f"--child-output={output}",
    ]
    print(f"repeat {number}: migrate, seed, time ...", file=sys.stderr, flush=True)
    # The child's stdout goes to stderr so that stdout carries only the table.
    subprocess.run(command, env=child_env(url, args), cwd=REPO_ROOT, check=True, stdout=sys.stderr)
    data = json.loads(output.read_text())
    result = Result(**{**data, "api": Timing(**data["api"]), "service": Timing(**data["service"])})
    print(
        f"repeat {number}: setup {result.setup_s:.1f} s, timing {result.timing_s:.1f} s, "
        f"API median {result.api.median_ms:.1f} ms",
        file=sys.stderr,
        flush=True,
    )
    return result


def render_markdown(results: list[Result], *, args: argparse.Namespace, runtime_s: float) -> str:
    first = results[0]
    n = first.students
    lines = [
        f"# Bulk activation of a {n}-student cluster (TAW_11), {first.engine_name}",
        "",
        f"Machine: nproc {len(os.sched_getaffinity(0))}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, Django {first.django_version}, "
        f"DB {first.engine_name} {first.engine_version}"
        f"{' on loopback' if first.engine == 'postgresql' else ''}, DEBUG={first.debug}. "
        "The cores are shared with other work: load average "
        + ", ".join(f"{r.load_before:.2f} → {r.load_after:.2f}" for r in results)
        + f" (start → end of each repeat's timing). {first.runs} timed activations of each kind per "
        f"repeat (alternating, after {first.warmup} warm-up each), in-process; each activates the same "
        f"{n} students ({n} bundle assignments, {n * first.scaffold_rows_each} scaffold rows, {n} history "
        f"rows, {n} action log rows, 1 audit event), and what it made is deleted before the next.",
        "",
        "| repeat | activation | median ms | p95 ms | min ms | max ms | SQL ms (median) "
        "| COMMIT ms (median) | rest ms (median) | CPU ms (median) | ms / student | queries |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for timing in (r.api, r.service):
            lines.append(
                f"| {r.repeat} | {timing.label} | {timing.median_ms:.1f} "
                f"| {percentile(timing.total_ms, 95):.1f} "
                f"| {min(timing.total_ms):.1f} | {max(timing.total_ms):.1f} | {timing.median('sql_ms'):.1f} "
                f"| {timing.median('commit_ms'):.1f} | {statistics.median(timing.rest_ms):.1f} "
                f"| {timing.median('cpu_ms'):.1f} | {timing.median_ms / n:.2f} | {timing.queries} |"
            )
    lines += [
        "",
        "## Where the time goes (the statements of the timed API runs, by kind)",
        "",
        "Per activation: the mean number of statements and the mean time inside the cursor's execute, "
        "over the timed API runs of each repeat; the share is of all SQL time. `SAVEPOINT` covers "
        "SAVEPOINT and RELEASE SAVEPOINT.",
        "",
        "| repeat | statement | per activation | SQL ms per activation | share of SQL |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in results:
        total = sum(seconds for _, seconds in r.statements.values()) or 1.0
        ranked = sorted(r.statements.items(), key=lambda item: -item[1][1])
        for kind, (count, seconds) in ranked:
            lines.append(
                f"| {r.repeat} | `{kind}` | {count / r.runs:.0f} | {seconds / r.runs * 1000:.2f} "
                f"| {seconds / total:.0%} |"
            )
    lines.append("")
    for r in results:
        total = sum(seconds for _, seconds in r.statements.values()) or 1.0
        per_student = {k: v for k, v in r.statements.items() if round(v[0] / r.runs) == n}
        count = sum(v[0] for v in per_student.values()) / r.runs
        seconds = sum(v[1] for v in per_student.values()) / r.runs
        statements = sum(v[0] for v in r.statements.values()) / r.runs
        lines.append(
            f"- Repeat {r.repeat}: {count:.0f} of the {statements:.0f} statements through the cursor "
            f"of an API activation run once per student ({len(per_student)} single-row "
            f"statements x {n}: {', '.join(f'`{k}`' for k in sorted(per_student))}), "
            f"{seconds * 1000:.1f} ms of its {total / r.runs * 1000:.1f} ms of SQL "
            f"({seconds / total * r.runs:.0%})."
        )
    for r in results:
        api, service = r.api, r.service
        verdict = "within" if api.median_ms <= args.budget_ms else "NOT within"
        lines.append(
            f"- Repeat {r.repeat}: the API activates {n} students in {api.median_ms:.1f} ms (median; p95 "
            f"{percentile(api.total_ms, 95):.1f}), {verdict} {args.budget_ms:.0f} ms; the service alone "
            f"takes {service.median_ms:.1f} ms, so the API's own cost (auth, scope check, schema, "
            f"middleware, JSON) is {api.median_ms - service.median_ms:.1f} ms. "
            f"{api.queries} queries through the API, {service.queries} in the service."
        )
    for r in results:
        lines.extend(f"- Repeat {r.repeat}: {note}" for note in r.notes)
    lines.append(
        f"- Script runtime {runtime_s:.0f} s, of which migrate and seed "
        f"{sum(r.setup_s for r in results):.0f} s."
    )
    return "\n".join(lines)


# The child: one repeat in its own database.


def child_main(args: argparse.Namespace) -> int:
    setup_child()
    result = measure(args.child_repeat, students=args.students, runs=args.runs, warmup=args.warmup)
    Path(args.child_output).write_text(json.dumps(asdict(result)))
    return 0


@dataclass
class World:
    """What the setup made, for the runs to use."""

    teacher: Any
    school_class: Any
    cluster_id: int
    token: str
    bundle: Any
    student_ids: list[int]


def seed(students: int) -> World:
    """The organisation, teacher, class, students with their history, bundles, recommendations."""
    from django.utils import timezone

    from audit import context
    from classroom.api_auth import api_token_create
    from classroom.models import (
        DailyPerformance,
        Enrollment,
        Organisation,
        SchoolClass,
        Student,
        TeacherAssignment,
        User,
    )
    from workflow.demo import BUNDLES
    from workflow.models import Bundle, WorkflowDraft

    now = timezone.now()
    today = timezone.localdate(now)
    with context.bind(source="command"):
        organisation = Organisation.objects.create(name="Bench School", slug="bench-school")
        teacher = User.objects.create_user(
            username="bench.teacher",
            first_name="Bench",
            last_name="Teacher",
            organisation=organisation,
            role=User.Role.TEACHER,
        )
        school_class = SchoolClass.objects.create(
            organisation=organisation, name="Maths 9B", subject="Mathematics", platform_id="bench-maths-9b"
        )
        TeacherAssignment.objects.create(teacher=teacher, school_class=school_class)
        roster = Student.objects.bulk_create(
            Student(
                organisation=organisation,
                first_name=f"Student{k:03d}",
                last_name=f"Bench{k:03d}",
                platform_id=f"bench-stu-{k:03d}",
            )
            for k in range(students)
        )
        Enrollment.objects.bulk_create(
            Enrollment(student=s, school_class=school_class, enrolled_on=today - timedelta(days=90))
            for s in roster
        )
        days = []
        for k, student in enumerate(roster):
            base = 0.40 + (k % 5) * 0.01
            for d in range(DAYS):
                # Confidence 3-4, then 1-2 on the last three days; mastery +0.006 a day.
                confidence = 1 + (k + d) % 2 if d >= DAYS - 3 else 3 + (k + d) % 2
                days.append(
                    DailyPerformance(
                        student=student,
                        date=today - timedelta(days=DAYS - 1 - d),
                        study_minutes=20 + (k + d) % 15,
                        mastery=round(base + 0.006 * d, 4),
                        confidence=confidence,
                        checked_in=True,
                        synced_at=now,
                    )
                )
        DailyPerformance.objects.bulk_create(days)
        for code, title, kind, subject, anchor, supporting, bridge in BUNDLES:
            Bundle.objects.create(
                organisation=organisation,
                code=code,
                title=title,
                object_type=kind,
                subject=subject,
                anchor_skill=anchor,
                supporting_threads=supporting,
                asset_bridge=bridge,
            )
        token = api_token_create(user=teacher, name="bench")
        WorkflowDraft.objects.create(
            organisation=organisation,
            teacher=teacher,
            school_class=school_class,
            step="TAW_10",
            state={"excluded": []},
            updated_at=now,
            expires_at=now + timedelta(days=7),
        )
    return World(
        teacher=teacher,
        school_class=school_class,
        cluster_id=0,
        token=token,
        bundle=Bundle.objects.get(organisation=organisation, code=BUNDLE_CODE),
        student_ids=[s.pk for s in roster],
    )


def check_recommendations(world: World) -> None:
    """One cluster of every student, on the composite bundle at Level_2, nobody held back."""
    from workflow.models import AcuteRegressionAlert, Cluster, ClusterMember, Recommendation

    n = len(world.student_ids)
    recs = list(Recommendation.objects.filter(school_class=world.school_class).select_related("bundle"))
    wrong = [
        (r.student_id, r.object_type, r.bundle.code if r.bundle else None, r.recommended_tier, r.rationale)
        for r in recs
        if r.bundle_id != world.bundle.pk
        or r.recommended_tier != TIER
        or r.do_not_decide_yet
        or r.qa_exclusion
    ]
    if len(recs) != n or wrong:
        raise SystemExit(f"{len(recs)} recommendations, expected {n} on {BUNDLE_CODE} {TIER}: {wrong[:3]}")
    clusters = list(Cluster.objects.filter(school_class=world.school_class))
    if len(clusters) != 1:
        raise SystemExit(f"{len(clusters)} clusters, expected 1: {[c.identity for c in clusters]}")
    members = ClusterMember.objects.filter(cluster=clusters[0])
    if members.count() != n or members.exclude(excluded_code="").exists():
        raise SystemExit(f"the cluster has {members.count()} members, expected {n}, none excluded")
    if AcuteRegressionAlert.objects.filter(student_id__in=world.student_ids).exists():
        raise SystemExit("an acute-regression alert was opened; the guardrail would refuse the activation")
    world.cluster_id = clusters[0].pk


_KIND = re.compile(
    r'^\s*(?:(INSERT INTO)|(UPDATE)|(DELETE FROM)|(SELECT)\b.*?\bFROM)\s+"?(\w+)"?', re.IGNORECASE | re.DOTALL
)


def statement_kind(sql: str) -> str:
    """`INSERT workflow_scaffoldrow`, `SELECT classroom_apitoken`, `SAVEPOINT`, ..."""
    head = sql.lstrip()[:40].upper()
    if head.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")):
        return "SAVEPOINT"
    if "PG_ADVISORY_XACT_LOCK" in sql[:200].upper():
        return "SELECT pg_advisory_xact_lock (advisory lock)"
    match = _KIND.match(sql)
    if match is None:
        return sql.split(None, 1)[0].upper() if sql.strip() else "?"
    verb = next(g for g in match.groups()[:4] if g).split()[0].upper()
    return f"{verb} {match.group(5)}"


class Meter:
    """SQL time and statements through `execute_wrapper`, COMMIT time through the connection."""

    def __init__(self) -> None:
        self.sql_s = 0.0
        self.commit_s = 0.0
        self.by_kind: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        self.recording = False

    def reset(self) -> None:
        self.sql_s = self.commit_s = 0.0

    @contextmanager
    def installed(self) -> Iterator[None]:
        from django.db import connection, connections

        wrapper = connections["default"]
        original_commit = wrapper.commit

        def timed_commit() -> None:
            start = time.perf_counter()
            try:
                original_commit()
            finally:
                self.commit_s += time.perf_counter() - start

        wrapper.commit = timed_commit
        try:
            with connection.execute_wrapper(self._sql):
                yield
        finally:
            del wrapper.commit

    def _sql(self, execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - start
            self.sql_s += elapsed
            if self.recording:
                kind = self.by_kind[statement_kind(sql)]
                kind[0] += 1
                kind[1] += elapsed


def measure(repeat: int, *, students: int, runs: int, warmup: int) -> Result:
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from audit import context
    from audit.models import ActivityEvent
    from workflow import services
    from workflow.models import BundleAssignment, TeacherActionLog, WorkflowDraft

    started = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    world = seed(students)
    refresh_started = time.perf_counter()
    refreshed = services.recommendations_refresh(school_class=world.school_class)
    refresh_ms = (time.perf_counter() - refresh_started) * 1000
    if refreshed != students:
        raise SystemExit(f"recommendations_refresh made {refreshed} recommendations, expected {students}")
    check_recommendations(world)
    if connection.vendor == "postgresql":
        # A live database has planner statistics from autovacuum; a freshly seeded one has none.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    setup_s = time.perf_counter() - started

    bundle = world.bundle
    scaffold_each = 1 + len(bundle.supporting_threads) + (1 if bundle.asset_bridge else 0)
    expected_deleted = {
        "workflow.BundleAssignment": students,
        "workflow.ScaffoldRow": students * scaffold_each,
        "workflow.AssignmentHistory": students,
    }
    client = Client(HTTP_AUTHORIZATION=f"Bearer {world.token}")
    body = json.dumps({"classId": world.school_class.pk, "clusterId": world.cluster_id})
    # The service's inputs, as the view has them after auth and the scope check.
    teacher = type(world.teacher).objects.get(pk=world.teacher.pk)
    school_class = services.class_for_teacher(teacher, world.school_class.pk)
    activations = 0

    def check(kind: str, result: dict[str, Any]) -> None:
        problems = []
        if result.get("kind") != "activated" or result.get("bundleId") != BUNDLE_CODE:
            problems.append(f"kind {result.get('kind')} on {result.get('bundleId')}")
        activated = result.get("activated", [])
        if len(activated) != students or {a["scaffoldTier"] for a in activated} != {TIER}:
            problems.append(f"{len(activated)} activated, expected {students} at {TIER}")
        for key in ("deferred", "excluded", "alreadyActive"):
            if result.get(key):
                problems.append(f"{key}: {result[key]}")
        if problems:
            raise SystemExit(f"{kind} activation: {'; '.join(problems)}")

    def via_api() -> None:
        response = client.post(ENDPOINT, body, content_type="application/json", secure=True)
        if response.status_code != 200:
            raise SystemExit(f"{ENDPOINT}: status {response.status_code}: {response.content[:300]!r}")
        check("API", response.json())

    def via_service() -> None:
        with context.bind(source="api"):
            result = services.activate(
                teacher=teacher, school_class=school_class, cluster_id=world.cluster_id
            )
        check("service", result.as_json())

    def undo() -> None:
        """Delete what one activation made (untimed), and check it made what it should."""
        nonlocal activations
        activations += 1
        with transaction.atomic():
            _, deleted = BundleAssignment.objects.filter(school_class=world.school_class).delete()
            logs, _ = TeacherActionLog.objects.filter(school_class=world.school_class).delete()
            moved = WorkflowDraft.objects.filter(
                teacher=teacher, school_class=world.school_class, step="TAW_13"
            )
            drafts = moved.update(step="TAW_10")
        if dict(deleted) != expected_deleted or logs != students or drafts != 1:
            raise SystemExit(
                f"an activation made {dict(deleted)}, {logs} action log rows and moved {drafts} drafts; "
                f"expected {expected_deleted}, {students} and 1"
            )

    kinds: dict[str, Callable[[], None]] = {"API": via_api, "service": via_service}
    for _ in range(warmup):
        for do in kinds.values():
            do()
            undo()
    queries: dict[str, int] = {}
    query_kinds: dict[str, dict[str, int]] = {}
    for label, do in kinds.items():
        with CaptureQueriesContext(connection) as captured:
            do()
        undo()
        queries[label] = len(captured.captured_queries)
        counted: dict[str, int] = defaultdict(int)
        for query in captured.captured_queries:
            counted[statement_kind(query["sql"])] += 1
        query_kinds[label] = dict(counted)

    samples: dict[str, dict[str, list[float]]] = {
        label: {"total_ms": [], "sql_ms": [], "commit_ms": [], "cpu_ms": []} for label in kinds
    }
    meter = Meter()
    api_statements: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    load_before = os.getloadavg()[0]
    timing_started = time.perf_counter()
    with meter.installed():
        for run in range(runs):
            order = list(kinds) if run % 2 == 0 else list(reversed(kinds))
            for label in order:
                meter.reset()
                meter.by_kind = defaultdict(lambda: [0, 0.0])
                meter.recording = label == "API"
                cpu_start, start = time.process_time(), time.perf_counter()
                kinds[label]()
                elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
                sql_s, commit_s = meter.sql_s, meter.commit_s
                meter.recording = False
                for kind, (count, seconds) in meter.by_kind.items():
                    api_statements[kind][0] += count
                    api_statements[kind][1] += seconds
                samples[label]["total_ms"].append(elapsed * 1000)
                samples[label]["sql_ms"].append(sql_s * 1000)
                samples[label]["commit_ms"].append(commit_s * 1000)
                samples[label]["cpu_ms"].append(cpu * 1000)
                undo()
    timing_s = time.perf_counter() - timing_started
    load_after = os.getloadavg()[0]

    events = ActivityEvent.objects.filter(verb="workflow.activated").count()
    if events != activations:
        raise SystemExit(f"{events} workflow.activated audit events after {activations} activations")

    # What a request pays for a new connection when CONN_MAX_AGE=0 (the default).
    connects = []
    for _ in range(11):
        connection.close()
        start = time.perf_counter()
        connection.ensure_connection()
        connects.append((time.perf_counter() - start) * 1000)
    connect_ms = statistics.median(connects[1:])

    notes = [
        f"recommendations_refresh of the class (engines, {students} recommendations, the cluster), once, "
        f"cold: {refresh_ms:.0f} ms.",
        f"a new database connection (what a request also pays with CONN_MAX_AGE=0): {connect_ms:.1f} ms "
        "(median of 10).",
        f"{activations} activations in all, each checked and undone; {events} `workflow.activated` audit "
        "events on the chain at the end, one per activation.",
    ]
    top = sorted(query_kinds["API"].items(), key=lambda item: -item[1])
    notes.append(
        f"queries of one API activation ({queries['API']}): "
        + ", ".join(f"{kind} {count}" for kind, count in top)
        + "."
    )
    kinds_either = sorted(set(query_kinds["API"]) | set(query_kinds["service"]))
    differ = [
        f"{kind} {query_kinds['service'].get(kind, 0)} (API {query_kinds['API'].get(kind, 0)})"
        for kind in kinds_either
        if query_kinds["API"].get(kind, 0) != query_kinds["service"].get(kind, 0)
    ]
    notes.append(
        f"queries of one service activation ({queries['service']}): the same but "
        + (", ".join(differ) if differ else "nothing")
        + "."
    )
    return Result(
        repeat=repeat,
        students=students,
        api=Timing(
            label="API `POST /api/workflow/activate`",
            queries=queries["API"],
            query_kinds=query_kinds["API"],
            **samples["API"],
        ),
        service=Timing(
            label="service `services.activate`",
            queries=queries["service"],
            query_kinds=query_kinds["service"],
            **samples["service"],
        ),
        statements={kind: [count, seconds] for kind, (count, seconds) in api_statements.items()},
        scaffold_rows_each=scaffold_each,
        notes=notes,
        engine=connection.vendor,
        engine_name=connection.display_name,
        engine_version=".".join(str(part) for part in connection.get_database_version()),
        django_version=django_version(),
        debug=settings.DEBUG,
        setup_s=setup_s,
        timing_s=timing_s,
        load_before=load_before,
        load_after=load_after,
        connect_ms=connect_ms,
        refresh_ms=refresh_ms,
        runs=runs,
        warmup=warmup,
    )


if __name__ == "__main__":
    sys.exit(main())
