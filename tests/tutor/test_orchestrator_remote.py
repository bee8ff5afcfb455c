"""Remote agents over real HTTP on loopback: the agents simulator answers, `RemoteAgent` asks."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.core.management import CommandError

from tests.agents_fixtures import report
from tutor.management.commands.agents_sim import Command, config_from_options
from tutor.orchestrator.agents_sim import answer_for
from tutor.orchestrator.contract import AGENTS, AgentAnswer, AgentRequest, AgentUnavailable
from tutor.orchestrator.remote import RemoteAgent, _shared_client

LEARNER_ID = "alg1-p2-0001"
TOPIC = "Fractions of amounts"


def _request(agent: str = "clo", *, key: str = "run-1:clo", day: str = "2026-12-07") -> AgentRequest:
    return AgentRequest(
        agent=agent,
        learner_id=LEARNER_ID,
        topic=TOPIC,
        depth="informed",
        end_goal="pass the unit test",
        time_per_day_min=30,
        week=1,
        day=3,
        date=day,
        idempotency_key=key,
    )


def _fetch(
    server, name: str = "clo", *, etag: str = "", budget: float = 1.0, token: str | None = None
) -> AgentAnswer:
    agent = RemoteAgent(name, server.agent_urls[name], token or server.state.config.token)
    return agent.fetch(_request(name, key=f"run-1:{name}"), etag=etag, deadline=time.monotonic() + budget)


def _unavailable(server, name: str = "clo", **kwargs) -> tuple[AgentUnavailable, float]:
    """The failure and how long it took; checks the reason is one line about `name`, without the
    learner's data."""
    started = time.monotonic()
    with pytest.raises(AgentUnavailable) as caught:
        _fetch(server, name, **kwargs)
    elapsed = time.monotonic() - started
    reason = caught.value.reason
    assert reason.startswith(f"{name}: ")
    assert "\n" not in reason
    assert " attempt" in reason
    assert LEARNER_ID not in reason
    assert TOPIC not in reason
    return caught.value, elapsed


def _seen(server, name: str) -> list[dict]:
    return [r for r in report(server)["requests"] if r["agent"] == name]


def _gaps(requests: list[dict]) -> list[float]:
    return [later["at"] - earlier["at"] for earlier, later in zip(requests, requests[1:], strict=False)]


def test_answer_carries_data_and_etag(agents):
    answer = _fetch(agents, "clo")

    assert not answer.not_modified
    assert answer.etag.startswith('"')
    assert answer.etag.endswith('"')
    assert {o["id"] for o in answer.data["objectives"]} >= {"o1", "o2"}
    assert report(agents)["agents"]["clo"] == {
        "requests": 1,
        "200": 1,
        "304": 0,
        "429": 0,
        "4xx": 0,
        "5xx": 0,
    }
    (seen,) = _seen(agents, "clo")
    assert seen["idempotency_key"] == "run-1:clo"
    assert seen["if_none_match"] is None
    assert seen["learner_id"] == LEARNER_ID


def test_every_agent_answers_in_the_shape_the_composer_reads(agents):
    answers = {name: _fetch(agents, name).data for name in AGENTS}

    assert {"objectives", "reviews"} <= set(answers["clo"])
    assert {"deadlines", "recent_scores"} <= set(answers["ta"])
    assert {"patterns", "typical_session_minutes", "engagement"} <= set(answers["alex"])
    assert len(answers["socratic"]["questions"]) == 3


def test_matching_etag_is_revalidated_with_304(agents):
    first = _fetch(agents, "ta")

    again = _fetch(agents, "ta", etag=first.etag)

    assert again == AgentAnswer(data=None, etag=first.etag, not_modified=True)
    assert [r["if_none_match"] for r in _seen(agents, "ta")] == [None, first.etag]
    assert report(agents)["agents"]["ta"]["304"] == 1


def test_changed_data_answers_200_with_a_new_etag(agents):
    first = _fetch(agents, "alex")
    agents.state.config.update({"revision": 1})

    again = _fetch(agents, "alex", etag=first.etag)

    assert not again.not_modified
    assert again.etag != first.etag
    assert again.data is not None


def test_same_idempotency_key_on_every_retry(agents):
    agents.state.config.update({"fail_first": 2})

    answer = _fetch(agents, "clo")

    assert answer.data is not None
    assert [r["idempotency_key"] for r in _seen(agents, "clo")] == ["run-1:clo"] * 3


def test_5xx_is_backed_off_then_retried(agents, settings):
    settings.ORCHESTRATOR_AGENT_BACKOFF_BASE = 0.05
    agents.state.config.update({"fail_first": 2})

    answer = _fetch(agents, "socratic")

    assert answer.data["questions"]
    seen = _seen(agents, "socratic")
    assert [r["status"] for r in seen] == [503, 503, 200]
    first_wait, second_wait = _gaps(seen)
    assert 0.05 <= first_wait < 0.05 + 0.08
    assert 0.10 <= second_wait < 0.10 + 0.08


def test_5xx_every_time_gives_up_after_max_attempts(agents, settings):
    settings.ORCHESTRATOR_AGENT_MAX_ATTEMPTS = 4
    agents.state.config.update({"fail_first": 100})

    error, elapsed = _unavailable(agents, "clo")

    assert error.code == "http_503"
    assert "4 attempts" in error.reason
    assert len(_seen(agents, "clo")) == 4
    assert elapsed < 0.5  # waits of 0.02 + 0.04 + 0.08 s


def test_backoff_that_would_pass_the_deadline_ends_it(agents, settings):
    settings.ORCHESTRATOR_AGENT_BACKOFF_BASE = 0.2
    agents.state.config.update({"fail_first": 100})

    error, elapsed = _unavailable(agents, "clo", budget=0.5)

    assert error.code == "http_503"
    assert re.search(r"retry in 0\.[45]\d s would pass the deadline", error.reason)
    assert len(_seen(agents, "clo")) == 2
    assert elapsed < 0.5


def test_429_retry_after_is_honoured(agents):
    agents.state.config.update({"rate_limit_first": 1, "retry_after": 0.15})

    answer = _fetch(agents, "ta")

    assert answer.data is not None
    seen = _seen(agents, "ta")
    assert [r["status"] for r in seen] == [429, 200]
    assert [r["idempotency_key"] for r in seen] == ["run-1:ta"] * 2
    (wait,) = _gaps(seen)
    assert 0.15 <= wait < 0.15 + 0.08


def test_429_asking_past_the_deadline_gives_up_at_once(agents):
    agents.state.config.update({"rate_limit_first": 1, "retry_after": 5})

    error, elapsed = _unavailable(agents, "ta", budget=0.5)

    assert error.code == "rate_limited"
    assert "asked to wait 5 s (Retry-After)" in error.reason
    assert len(_seen(agents, "ta")) == 1
    assert elapsed < 0.2


def test_hanging_agent_times_out_within_the_deadline(agents):
    agents.state.config.update({"hang_ms_by_agent": {"alex": 1500}})

    error, elapsed = _unavailable(agents, "alex", budget=0.4)

    assert error.code == "timeout"
    assert "no time is left before the deadline" in error.reason
    assert 0.4 <= elapsed < 0.4 + 0.15


def test_deadline_already_passed_asks_nothing(agents):
    error, _ = _unavailable(agents, "clo", budget=-0.1)

    assert error.code == "timeout"
    assert "0 attempts" in error.reason
    assert _seen(agents, "clo") == []


def test_outage_answers_503_until_the_attempts_run_out(agents):
    agents.state.config.update({"outage": True})

    error, _ = _unavailable(agents, "socratic")

    assert error.code == "http_503"
    assert "503 (outage)" in error.reason
    assert report(agents)["agents"]["socratic"]["5xx"] == 4


def test_one_agent_down_while_the_others_answer_at_once(agents):
    agents.state.config.update({"down": ["ta"], "latency_ms": 100})

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_fetch, agents, name) for name in AGENTS}
    elapsed = time.monotonic() - started

    assert all(futures[name].result().data for name in ("clo", "alex", "socratic"))
    assert isinstance(futures["ta"].exception(), AgentUnavailable)
    assert futures["ta"].exception().code == "http_503"
    assert elapsed < 0.4 + 0.14 + 0.3  # in parallel: ta's four 100 ms answers and its waits


def test_wrong_token_is_not_retried(agents):
    error, _ = _unavailable(agents, "clo", token="not-the-token")

    assert error.code == "http_401"
    assert error.reason.startswith(
        "clo: 401 (unauthorized) — the agent refused our token (ORCHESTRATOR_AGENT_TOKEN); 1 attempt in"
    )
    assert len(_seen(agents, "clo")) == 1


def test_non_contract_body_is_a_bad_answer(agents):
    agents.state.config.update({"malformed": ["socratic"]})

    error, _ = _unavailable(agents, "socratic")

    assert error.code == "bad_answer"
    assert len(_seen(agents, "socratic")) == 1


def test_agent_declining_is_an_agent_error_naming_its_code(agents):
    agents.state.config.update({"error_code_by_agent": {"alex": "learner_unknown"}})

    error, _ = _unavailable(agents, "alex")

    assert error.code == "agent_error"
    assert "(learner_unknown)" in error.reason
    assert len(_seen(agents, "alex")) == 1


def test_unreachable_agent_is_retried_then_given_up(settings):
    settings.ORCHESTRATOR_AGENT_BACKOFF_BASE = 0.02
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    agent = RemoteAgent("ta", f"http://127.0.0.1:{port}/agents/ta", "token")

    with pytest.raises(AgentUnavailable) as caught:
        agent.fetch(_request("ta"), etag="", deadline=time.monotonic() + 1.0)

    assert caught.value.code == "unreachable"
    assert caught.value.reason.startswith("ta: could not talk to the agent (ConnectError)")


def test_one_http_client_per_process_shared_by_threads():
    from_thread = []
    thread = threading.Thread(target=lambda: from_thread.append(_shared_client()))
    thread.start()
    thread.join()

    assert from_thread == [_shared_client()]


def test_a_forked_process_makes_a_client_of_its_own():
    parent = _shared_client()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether it got the parent's client, then leave at once
        os.write(write, b"same" if _shared_client() is parent else b"own")
        os._exit(0)
    os.waitpid(pid, 0)

    assert os.read(read, 8) == b"own"
    assert _shared_client() is parent


def test_simulator_requires_an_idempotency_key(agents):
    response = httpx.post(
        agents.agent_urls["clo"],
        json=_request().body(),
        headers={"Authorization": f"Bearer {agents.state.config.token}"},
    )

    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_missing"


def test_simulator_answers_are_deterministic_per_learner_day():
    body = _request().body()

    assert answer_for("ta", body) == answer_for("ta", dict(body))
    assert answer_for("ta", body) != answer_for("ta", {**body, "date": "2026-12-08"})
    assert answer_for("ta", body) != answer_for("ta", body, revision=1)


def test_simulator_refuses_unknown_or_mistyped_knobs(agents):
    for knobs in ({"sleepy": True}, {"down": "ta"}):
        response = httpx.post(f"{agents.url}/_sim/config", json=knobs)
        assert response.status_code == 400

    assert agents.state.config.down == []


def test_agents_sim_command_builds_its_config(settings):
    parser = Command().create_parser("manage.py", "agents_sim")
    options = vars(
        parser.parse_args(["--port", "9000", "--latency-ms", "20", "--error-rate", "0.1", "--outage"])
    )

    config = config_from_options(options)

    assert options["port"] == 9000
    assert (config.latency_ms, config.error_rate, config.outage) == (20, 0.1, True)
    assert config.token == settings.ORCHESTRATOR_AGENT_TOKEN
    with pytest.raises(CommandError, match="--rate-limit-rate must be between 0 and 1"):
        config_from_options(vars(parser.parse_args(["--rate-limit-rate", "2"])))
