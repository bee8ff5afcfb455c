"""The orchestrator's token buckets (GCRA): exact decisions at injected times, on the database,
on Redis, and on the database again when Redis is down."""

from __future__ import annotations

import logging
import os
import threading
import uuid

import pytest
import redis
from django.db import connection, transaction

from tutor.models import RateBucket
from tutor.orchestrator import ratelimit
from tutor.orchestrator.ratelimit import Decision, limit_for, take

NOW = 1_760_000_000.0  # an epoch time, so float rounding is as coarse as in production
TEST_REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"


def _allowed(key: str, count: int, *, per_minute: int, burst: int, now: float) -> list[bool]:
    return [take(key, per_minute=per_minute, burst=burst, now=now).allowed for _ in range(count)]


def test_fresh_key_allows_the_burst_at_once_then_one_every_interval(db):
    decisions = [take("learner:1", per_minute=6, burst=3, now=NOW) for _ in range(4)]
    assert decisions == [
        Decision(allowed=True, retry_after=0.0, remaining=2),
        Decision(allowed=True, retry_after=0.0, remaining=1),
        Decision(allowed=True, retry_after=0.0, remaining=0),
        Decision(allowed=False, retry_after=10.0, remaining=0),
    ]
    assert take("learner:1", per_minute=6, burst=3, now=NOW + 9.9).retry_after == pytest.approx(0.1)
    assert take("learner:1", per_minute=6, burst=3, now=NOW + 10).allowed
    assert take("learner:1", per_minute=6, burst=3, now=NOW + 10) == Decision(False, 10.0, 0)


def test_refusals_take_no_token(db):
    assert _allowed("learner:1", 10, per_minute=6, burst=2, now=NOW) == [True, True] + [False] * 8
    assert _allowed("learner:1", 2, per_minute=6, burst=2, now=NOW + 10) == [True, False]


def test_an_idle_bucket_fills_up_to_the_burst_and_no_further(db):
    _allowed("learner:1", 3, per_minute=6, burst=3, now=NOW)
    later = NOW + 3600
    assert _allowed("learner:1", 4, per_minute=6, burst=3, now=later) == [True, True, True, False]


def test_keys_are_independent(db):
    assert _allowed("learner:1", 2, per_minute=6, burst=1, now=NOW) == [True, False]
    assert _allowed("learner:2", 2, per_minute=6, burst=1, now=NOW) == [True, False]


def test_a_burst_of_thirty_survives_float_rounding_of_an_uneven_interval(db):
    interval = 60 / 7
    assert _allowed("learner:1", 31, per_minute=7, burst=30, now=NOW + 0.123) == [True] * 30 + [False]
    refused = take("learner:1", per_minute=7, burst=30, now=NOW + 0.123)
    assert refused.retry_after == pytest.approx(interval)
    assert take("learner:1", per_minute=7, burst=30, now=NOW + 0.123 + interval).allowed


def test_changed_limits_apply_to_an_existing_bucket(db):
    assert _allowed("learner:1", 4, per_minute=6, burst=3, now=NOW) == [True] * 3 + [False]
    # A larger burst allows the difference at once.
    assert _allowed("learner:1", 3, per_minute=6, burst=5, now=NOW) == [True, True, False]
    # A faster rate refills sooner: 2 s per request after the 50 s the bucket is ahead.
    assert not take("learner:1", per_minute=30, burst=1, now=NOW + 49).allowed
    assert _allowed("learner:1", 2, per_minute=30, burst=1, now=NOW + 50) == [True, False]
    assert take("learner:1", per_minute=30, burst=1, now=NOW + 52).allowed


def test_take_works_inside_an_outer_transaction(db):
    with transaction.atomic():
        assert _allowed("learner:1", 2, per_minute=6, burst=1, now=NOW) == [True, False]
    assert _allowed("learner:1", 1, per_minute=6, burst=1, now=NOW) == [False]


def test_take_rejects_limits_below_one(db):
    with pytest.raises(ValueError, match="at least 1"):
        take("learner:1", per_minute=0, burst=1, now=NOW)


def test_limit_for_reads_the_endpoint_or_the_default(settings):
    settings.ORCHESTRATOR_RATE_LIMITS = {"day.run": (6, 3), "default": (120, 30)}
    assert limit_for("day.run") == (6, 3)
    assert limit_for("intents.list") == (120, 30)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_takes_from_one_key_allow_exactly_the_burst():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises every write)")
    threads_count, burst = 24, 5
    barrier = threading.Barrier(threads_count)
    outcomes: list[bool] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            outcomes.append(take("learner:race", per_minute=1, burst=burst, now=NOW).allowed)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == [False] * (threads_count - burst) + [True] * burst
    assert RateBucket.objects.get(key="learner:race").tat == NOW + burst * 60


@pytest.fixture
def redis_key(settings):
    """A key of its own on a Redis that answers (db 15 unless REDIS_URL says otherwise), with the
    product pointed at it and the key deleted afterwards."""
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError:
        if os.environ.get("REDIS_TESTS_REQUIRED"):
            pytest.fail(
                f"REDIS_TESTS_REQUIRED is set but no Redis answers at {TEST_REDIS_URL}", pytrace=False
            )
        pytest.skip(f"no Redis server answers at {TEST_REDIS_URL}")
    settings.REDIS_URL = TEST_REDIS_URL
    key = f"test:{uuid.uuid4().hex}"
    yield key
    client.delete(ratelimit.REDIS_PREFIX + key)
    client.close()


SEQUENCE = [  # (seconds after NOW, per_minute, burst)
    *[(0.0, 6, 3)] * 4,
    (9.9, 6, 3),
    (10.0, 6, 3),
    (10.0, 6, 5),
    (10.0, 6, 5),
    (61.5, 7, 30),
    *[(61.5, 7, 30)] * 30,
    (3600.0, 6, 3),
]


def test_redis_decides_as_the_database_does(db, redis_key, settings):
    on_redis = [take(redis_key, per_minute=p, burst=b, now=NOW + dt) for dt, p, b in SEQUENCE]
    assert not RateBucket.objects.exists()
    settings.REDIS_URL = ""
    on_db = [take(redis_key, per_minute=p, burst=b, now=NOW + dt) for dt, p, b in SEQUENCE]
    assert on_redis == on_db
    assert [d.allowed for d in on_db[:4]] == [True, True, True, False]


def test_a_redis_bucket_expires_when_it_would_be_full_again(redis_key):
    for _ in range(2):
        take(redis_key, per_minute=6, burst=3, now=NOW)
    client = redis.Redis.from_url(TEST_REDIS_URL)
    assert 19_000 < client.pttl(ratelimit.REDIS_PREFIX + redis_key) <= 20_000
    client.close()


def test_redis_down_falls_back_to_the_database_and_warns_once(db, settings, caplog, monkeypatch):
    monkeypatch.setattr(ratelimit, "_redis_down", False)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    with caplog.at_level(logging.WARNING, logger="tutor.orchestrator.ratelimit"):
        assert _allowed("learner:1", 3, per_minute=6, burst=2, now=NOW) == [True, True, False]
    assert RateBucket.objects.get(key="learner:1").tat == NOW + 20
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "fall back to the database" in warning.getMessage()
