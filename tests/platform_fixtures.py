"""The platform simulator on loopback, and a class of demo students it knows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from classroom.models import Enrollment, SchoolClass, Student
from classroom.platform.simulator import PlatformServer, SimulatorConfig, start_in_thread
from tests import factories


@pytest.fixture
def platform(settings) -> Iterator[PlatformServer]:
    """A fresh simulator per test; the product reaches it over real HTTP through the settings."""
    server = start_in_thread(SimulatorConfig())
    settings.PLATFORM_BASE_URL = server.url
    settings.PLATFORM_TOKEN = server.state.config.token
    settings.PLATFORM_BACKOFF_BASE = 0.02
    settings.PLATFORM_TIMEOUT = 2.0
    settings.PLATFORM_CONCURRENCY = 4
    yield server
    server.shutdown()
    server.server_close()


def report(server: PlatformServer) -> dict:
    return httpx.get(f"{server.url}/_sim/report").json()["data"]


@dataclass
class DemoClass:
    school_class: SchoolClass
    students: list[Student]


def demo_class(school, size: int = 6, platform_id: str = "alg1-p2") -> DemoClass:
    """The teacher's class, renamed to a demo class id, with `size` students the simulator knows:
    number 1 has overdue work, 2 stalled mastery, 3 low confidence, 4 no data, 5 went quiet."""
    school_class = school.school_class
    school_class.platform_id = platform_id
    school_class.save(update_fields=["platform_id"])
    school_class.enrollments.update(status=Enrollment.Status.WITHDRAWN)
    students = [
        factories.EnrollmentFactory(
            school_class=school_class, student__platform_id=f"{platform_id}-{n:04d}"
        ).student
        for n in range(1, size + 1)
    ]
    return DemoClass(school_class, students)
