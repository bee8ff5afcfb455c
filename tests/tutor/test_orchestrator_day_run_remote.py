"""day.run with every agent remote, over real HTTP against the agents simulator: the cache and
its revalidation, retries, the 12 s budget (scaled down), and degraded mode."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from plans.models import DailySession
from tests.agents_fixtures import report
from tests.tutor.orchestrator_fixtures import INTENT, post
from tutor.models import AgentSignal


@pytest.fixture(autouse=True)
def _roomy_buckets(settings) -> None:
    settings.ORCHESTRATOR_RATE_LIMITS = {"day.run": (1000, 1000), "default": (1000, 1000)}


def _start(client, learner) -> None:
    assert post(client, "intent.sync", INTENT, **learner.headers()).status_code == 200


def _run(client, learner, day: int = 1, **extra):
    response = post(client, "day.run", {"week": 1, "day": day, **extra}, **learner.headers())
    assert response.status_code in (200, 201), response.content
    return response.json()


def _stale(agent: str | None = None) -> None:
    rows = AgentSignal.objects.all() if agent is None else AgentSignal.objects.filter(agent=agent)
    rows.update(checked_at=timezone.now() - timedelta(days=2))


def test_remote_agents_make_the_plan_and_fill_the_cache(client, learner, agents):
    _start(client, learner)
    body = _run(client, learner)
    assert (body["cache_hits"], body["cache_misses"], body["degraded_mode"]) == (0, 4, False)
    assert all(q == {"available": True, "fresh": True} for q in body["signal_quality"].values())
    seen = report(agents)
    assert all(seen["agents"][name]["requests"] == 1 for name in ("clo", "alex", "ta", "socratic"))
    assert all(sent["idempotency_key"] for sent in seen["requests"])
    assert {sent["learner_id"] for sent in seen["requests"]} == {learner.student.platform_id}
    assert set(AgentSignal.objects.values_list("agent", flat=True)) == {"clo", "alex", "ta", "socratic"}


def test_a_stale_answer_is_revalidated_and_a_304_is_a_hit(client, learner, agents):
    _start(client, learner)
    _run(client, learner)
    etags = dict(AgentSignal.objects.values_list("agent", "etag"))
    _stale()
    body = _run(client, learner, force_refresh=True)
    assert (body["cache_hits"], body["cache_misses"]) == (4, 0)
    assert all(q == {"available": True, "fresh": True} for q in body["signal_quality"].values())
    seen = report(agents)
    assert all(seen["agents"][name]["304"] == 1 for name in etags)
    revalidations = [r for r in seen["requests"] if r["if_none_match"]]
    assert {r["if_none_match"] for r in revalidations} == set(etags.values())
    assert AgentSignal.objects.filter(checked_at__gt=timezone.now() - timedelta(minutes=1)).count() == 4


def test_changed_data_is_a_miss_and_replaces_the_cache(client, learner, agents):
    _start(client, learner)
    _run(client, learner, day=1)
    before = AgentSignal.objects.get(agent="ta").etag
    agents.state.config.update({"revision": 1})
    _stale("ta")
    body = _run(client, learner, day=2)
    assert (body["cache_hits"], body["cache_misses"]) == (3, 1)
    assert AgentSignal.objects.get(agent="ta").etag != before


def test_a_5xx_is_retried_with_the_same_idempotency_key(client, learner, agents):
    agents.state.config.update({"fail_first": 2})
    _start(client, learner)
    body = _run(client, learner)
    assert body["degraded_mode"] is False
    clo = [r for r in report(agents)["requests"] if r["agent"] == "clo"]
    assert [r["status"] for r in clo] == [503, 503, 200]
    assert len({r["idempotency_key"] for r in clo}) == 1


def test_an_outage_without_a_cache_still_gives_a_plan_marked_degraded(client, learner, agents):
    agents.state.config.update({"outage": True})
    _start(client, learner)
    body = _run(client, learner)
    assert body["degraded_mode"] is True
    assert all(q == {"available": False, "fresh": False} for q in body["signal_quality"].values())
    assert (body["cache_hits"], body["cache_misses"]) == (0, 4)
    assert body["plan_json_summary"]["steps"]  # made from the intent alone
    session = DailySession.objects.get()
    assert len(session.degraded_reasons) == 4
    assert all("made without it" in reason for reason in session.degraded_reasons)


def test_an_outage_falls_back_to_the_cached_answers(client, learner, agents):
    _start(client, learner)
    _run(client, learner, day=1)
    _stale()
    agents.state.config.update({"outage": True})
    body = _run(client, learner, day=2)
    assert body["degraded_mode"] is True
    assert all(q == {"available": True, "fresh": False} for q in body["signal_quality"].values())
    assert body["cache_hits"] == 4
    reasons = DailySession.objects.get(day=2).degraded_reasons
    assert all("used its answer from" in reason for reason in reasons)


def test_a_slow_agent_does_not_hold_the_plan_past_the_budget(client, learner, agents, settings):
    settings.ORCHESTRATOR_DAY_RUN_BUDGET = 0.8
    agents.state.config.update({"hang_ms_by_agent": {"socratic": 5000}, "latency_ms": 100})
    _start(client, learner)
    started = time.monotonic()
    body = _run(client, learner)
    elapsed = time.monotonic() - started
    assert elapsed < 0.8 + 0.7, elapsed
    assert body["degraded_mode"] is True
    assert body["signal_quality"]["socratic"] == {"available": False, "fresh": False}
    assert body["signal_quality"]["clo"] == {"available": True, "fresh": True}
    assert any(reason.startswith("socratic") for reason in DailySession.objects.get().degraded_reasons)


def test_agents_are_asked_in_parallel(client, learner, agents):
    agents.state.config.update({"latency_ms": 300})
    _start(client, learner)
    started = time.monotonic()
    _run(client, learner)
    # Four agents at 300 ms each: about the slowest one, not their sum (1.2 s).
    assert time.monotonic() - started < 0.9


def test_a_429_is_waited_out_within_the_budget(client, learner, agents):
    agents.state.config.update({"rate_limit_first": 1, "retry_after": 0.1})
    _start(client, learner)
    body = _run(client, learner)
    assert body["degraded_mode"] is False
    assert report(agents)["agents"]["clo"]["429"] == 1


def test_force_refresh_asks_again_with_a_new_idempotency_key(client, learner, agents):
    _start(client, learner)
    _run(client, learner)
    _run(client, learner, force_refresh=True)
    keys = [r["idempotency_key"] for r in report(agents)["requests"] if r["agent"] == "ta"]
    assert len(keys) == 2 and keys[0] != keys[1]
