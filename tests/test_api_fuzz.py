"""Schemathesis over the whole OpenAPI document, in-process, against the demo school (issue 13).

Every request goes through the real WSGI application (middleware, CSRF, authentication), as a
client's would. Three callers:

- a teacher (`ms.rivera`'s bearer token) on every operation;
- a learner (one of her students, with a login of their own) on every operation too: the
  learner routes (`/api/schedules*`, `/api/proactive/*`) answer them, the others refuse them
  as documented;
- nobody, and a made-up token, on every operation: every valid request is refused with 401.

A case fails on a 5xx, a status the document does not list for the operation, a content type it
does not list, or a body that breaks the documented schema: schemathesis' own checks. Generation
is deterministic (derandomized, fixed seed, no example database) and bounded: schemathesis'
boundary-value cases, then `MAX_EXAMPLES` generated ones per operation. Two things steer it
where plain generation rarely goes: values past what the databases store (EDGES) in every
parameter and body field, and, in valid input, values the server accepts (KNOWN: the ids of the
teacher's classes, students and schedules, the workflow's step ids and codes, crons and time
zones), so that requests get past the lookups and into the code behind them. The operations and
cases run are printed at the end of the module.

The demo school is seeded once for the module in a transaction rolled back after it, so the
other tests never see it. Each case runs in a savepoint of its own, rolled back too: every case
meets the same database (Hypothesis replays cases while shrinking), and a request that breaks
PostgreSQL's transaction cannot fail the ones after it.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.management import call_command
from django.db import close_old_connections, transaction
from django.test import Client
from django.utils import timezone
from hypothesis import strategies as st
from schemathesis.core.parameters import ParameterLocation

from classroom.access import classes_for, students_for
from classroom.demo import demo_school_seed
from classroom.models import Student, User
from tests import factories
from tutor.api import api
from tutor.models import ObservedPattern, ScheduledTask
from tutor.wsgi import application
from workflow import catalog
from workflow.models import AcuteRegressionAlert, BundleAssignment, Cluster

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 100
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
# One past the 64-bit integer (PostgreSQL's bigint, SQLite's INTEGER) and its negative, one past
# PostgreSQL's 32-bit integer, a 30-digit number, and the NUL that PostgreSQL's text cannot hold.
EDGES = [2**63, -(2**63) - 1, 2**31, 10**30, "\u0000", "before\u0000after"]
EDGE_PROBABILITY = 0.1
# Valid values a generator does not guess: the edges of the cron grammar (weekdays, every quarter
# hour, leap days only, never: there is no 31 February) and the time zones furthest from UTC.
CRONS = ["0 16 * * 1-5", "*/15 * * * *", "0 9 29 2 *", "0 9 31 2 *"]
TIME_ZONES = ["Europe/London", "Pacific/Kiritimati", "Etc/GMT+12"]
KNOWN_SHARE = 3  # in valid input, a field with known values takes one 3 times in 4


def _edge_bindings(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every path and query parameter and every integer or string field of every JSON body, bound
    to EDGES: schemathesis sends those the schema allows as valid input, the others as invalid."""
    binding = {"dictionary": "edges", "probability": EDGE_PROBABILITY}
    bindings: dict[str, dict[str, Any]] = {}
    for operation in (op for item in document["paths"].values() for op in item.values()):
        for parameter in operation.get("parameters", []):
            bindings[f"{parameter['in']}.{parameter['name']}"] = binding
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        for path in _scalar_paths(body.get("schema", {}), document, ""):
            bindings[f"body.{path}"] = binding
    return bindings


def _scalar_paths(schema: dict[str, Any], document: dict[str, Any], path: str) -> Iterator[str]:
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
        yield from _scalar_paths(branch, document, path)
    for name, field in schema.get("properties", {}).items():
        yield from _scalar_paths(field, document, f"{path}.{name}" if path else name)
    if "items" in schema:
        yield from _scalar_paths(schema["items"], document, f"{path}[*]")
    if path and schema.get("type") in ("integer", "string"):
        yield path


def _schema(*, modes: str, max_examples: int) -> schemathesis.BaseSchema:
    """The document the app serves at /api/openapi.json, its cases sent to the WSGI app in-process."""
    document = api.get_openapi_schema()
    config = schemathesis.Config.from_dict(
        {
            "seed": 13,
            # Generation time is not what is tested, and this machine is shared.
            "suppress-health-check": ["too_slow"],
            "generation": {
                "mode": modes,
                "max-examples": max_examples,
                "deterministic": True,
                "database": "none",
                # The caller's credentials only: a generated cookie or header would blur who calls.
                "with-security-parameters": False,
            },
            "dictionaries": {"edges": {"values": EDGES}},
            "parameters": _edge_bindings(document),
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )
    loaded = schemathesis.openapi.from_dict(document, config=config)
    loaded.app = application
    return loaded


# Valid and invalid input with a token; without one, valid input only: it is all refused before
# any input is read.
SCHEMA = _schema(modes="all", max_examples=MAX_EXAMPLES)
UNAUTHENTICATED_SCHEMA = _schema(modes="positive", max_examples=10)

KNOWN: dict[str, list[Any]] = {}  # values by field name, filled by `callers`
CASES: Counter[tuple[str, str]] = Counter()
CONTAINERS = {
    "path_parameters": ParameterLocation.PATH,
    "query": ParameterLocation.QUERY,
    "body": ParameterLocation.BODY,
}


@SCHEMA.hook
def flatmap_case(context: schemathesis.HookContext, case: schemathesis.Case) -> st.SearchStrategy:
    """Generated ids almost always miss, a 404 tests little, and a random cron or step is refused
    before anything else is read: in valid input, a field with KNOWN values mostly takes one (a
    list of ids: each of its items)."""
    choices: dict[tuple[str, str], st.SearchStrategy] = {}
    for attribute, location in CONTAINERS.items():
        values = getattr(case, attribute)
        if not isinstance(values, dict) or (case.meta is not None and case.meta.is_negative_at(location)):
            continue
        for name, value in values.items():
            known = KNOWN.get(name)
            if not known:
                continue
            one = st.one_of(*[st.sampled_from(known)] * KNOWN_SHARE, st.none())
            if isinstance(value, list):
                choices[attribute, name] = st.lists(one, min_size=len(value), max_size=len(value))
            else:
                choices[attribute, name] = one
    if not choices:
        return st.just(case)
    return st.fixed_dictionaries(choices).map(lambda picked: _take_known(case, picked))


def _take_known(case: schemathesis.Case, picked: dict[tuple[str, str], Any]) -> schemathesis.Case:
    for (attribute, name), choice in picked.items():
        values = getattr(case, attribute)
        if isinstance(choice, list):
            choice = [
                known if known is not None else mine for known, mine in zip(choice, values[name], strict=True)
            ]
        if choice is not None:
            setattr(case, attribute, {**values, name: choice})
    return case


@dataclass
class Callers:
    teacher: str
    learner: str


@pytest.fixture(scope="module")
def callers(django_db_setup: None, django_db_blocker: Any) -> Iterator[Callers]:
    """The demo school, a learner login for one of `ms.rivera`'s students with two schedules, and
    bearer tokens for both; all rolled back when the module is done."""
    with django_db_blocker.unblock(), transaction.atomic():
        demo = demo_school_seed()
        teacher = User.objects.get(username="ms.rivera")
        learner = User.objects.filter(role=User.Role.LEARNER, student_profile__isnull=False).first()
        if learner is None:
            learner = factories.UserFactory(
                username="fuzz.learner", organisation=demo.organisation, role=User.Role.LEARNER
            )
            Student.objects.filter(pk=students_for(teacher).order_by("pk")[0].pk).update(user=learner)
        found = Callers(teacher=_token(teacher.username), learner=_token(learner.username))
        for when in ({"cron": "0 16 * * 1-5"}, {"run_at": (timezone.now() + timedelta(days=30)).isoformat()}):
            _schedule(found.teacher, Student.objects.get(user=learner), **when)
        KNOWN.update(_known_values(teacher, found.teacher))
        yield found
        KNOWN.clear()
        transaction.set_rollback(True)


def _known_values(teacher: User, token: str) -> dict[str, list[Any]]:
    """The rows the teacher reaches, by the fields that name them; the workflow's codes as its API
    lists them; times and zones a schedule accepts, and the furthest it accepts."""
    classes, students = classes_for(teacher), students_for(teacher)

    def ids(rows: Any) -> list[int]:
        return list(rows.order_by("pk").values_list("pk", flat=True))

    catalogue = Client().get("/api/workflow/steps", headers={"Authorization": f"Bearer {token}"}).json()
    now = timezone.now()
    return {
        **dict.fromkeys(["class_id", "classId"], ids(classes)),
        **dict.fromkeys(["student_id", "studentId", "studentIds"], ids(students)),
        "teacher_id": [teacher.pk],
        "schedule_id": ids(ScheduledTask.objects.filter(student__in=students)),
        "alertId": ids(AcuteRegressionAlert.objects.filter(student__in=students)),
        "assignmentId": ids(BundleAssignment.objects.filter(student__in=students)),
        "clusterId": ids(Cluster.objects.filter(school_class__in=classes)),
        "pattern_id": ids(ObservedPattern.objects.filter(student__in=students)),
        "step": [step["id"] for step in catalogue["steps"]],
        "overrideCode": [code["code"] for code in catalogue["overrideCodes"]],
        "contextFlag": catalogue["contextFlags"],
        "scaffoldTier": list(catalog.TIERS),
        "cron": CRONS,
        "time_zone": TIME_ZONES,
        "run_at": [(now + timedelta(hours=1)).isoformat(), "9999-12-31T23:59:00+00:00"],
    }


def _token(username: str) -> str:
    out = io.StringIO()
    call_command("create_api_token", username, stdout=out)
    return out.getvalue().strip()


def _schedule(token: str, student: Student, **when: str) -> None:
    response = Client().post(
        "/api/schedules",
        {"student_id": student.pk, "kind": "check_in", "intent": "How did the homework go?", **when},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.content


@pytest.fixture(scope="module", autouse=True)
def _report_cases(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    lines = []
    for caller in dict.fromkeys(who for who, _ in CASES):
        ran = {label: n for (who, label), n in CASES.items() if who == caller}
        lines.append(f"API fuzz, {caller}: {len(ran)} operations, {sum(ran.values())} cases")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if lines and capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)
    CASES.clear()


def _call(case: schemathesis.Case, caller: str, authorization: str | None) -> schemathesis.Response:
    __tracebackhide__ = True
    CASES[caller, case.operation.label] += 1
    with _case_isolated():
        return case.call_and_validate(headers={"Authorization": authorization} if authorization else None)


@contextmanager
def _case_isolated() -> Iterator[None]:
    """A savepoint rolled back after the case. And, as Django's test client does, the request
    must not close the connection that holds the test's transaction (Django closes it when a
    request starts, PostgreSQL's for real)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        with transaction.atomic():
            yield
            transaction.set_rollback(True)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@SCHEMA.parametrize()
def test_teacher(case: schemathesis.Case, callers: Callers) -> None:
    _call(case, "teacher", f"Bearer {callers.teacher}")


@SCHEMA.parametrize()
def test_learner(case: schemathesis.Case, callers: Callers) -> None:
    _call(case, "learner", f"Bearer {callers.learner}")


@pytest.mark.parametrize(
    ("caller", "authorization"), [("anonymous", None), ("made-up token", "Bearer pt_not-a-token")]
)
@UNAUTHENTICATED_SCHEMA.parametrize()
def test_refused_without_a_valid_token(
    case: schemathesis.Case, caller: str, authorization: str | None, callers: Callers
) -> None:
    response = _call(case, caller, authorization)
    assert response.status_code == 401, f"{case.as_curl_command()}\n{response.status_code} {response.text}"
