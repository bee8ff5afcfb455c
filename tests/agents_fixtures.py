"""The four remote agents' simulator on loopback, reached over real HTTP through the settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tutor.orchestrator.agents_sim import AgentsServer, SimulatorConfig, start_in_thread


@pytest.fixture
def agents(settings) -> Iterator[AgentsServer]:
    """A fresh simulator per test, with every agent remote; knobs change through
    `agents.state.config.update({...})`."""
    server = start_in_thread(SimulatorConfig(token="test-agents-token"))
    settings.ORCHESTRATOR_AGENT_URLS = server.agent_urls
    settings.ORCHESTRATOR_AGENT_TOKEN = server.state.config.token
    settings.ORCHESTRATOR_AGENT_BACKOFF_BASE = 0.02
    settings.ORCHESTRATOR_AGENT_TIMEOUT = 2.0
    yield server
    server.shutdown()
    server.server_close()


def report(server: AgentsServer) -> dict[str, Any]:
    """What the simulator received: per agent counts, and the latest requests with their headers."""
    return httpx.get(f"{server.url}/_sim/report").json()["data"]
