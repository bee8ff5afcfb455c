"""Per-key token buckets (GCRA) that every web process and machine shares: in the database by
default, in Redis when REDIS_URL is set (DESIGN.md, "Growing past one machine").

A bucket is one number, its theoretical arrival time `tat`. With the emission interval T = 60 /
per_minute and the tolerance tau = T * (burst - 1), a request at `now` conforms when
tat <= now + tau; it then moves tat to max(tat, now) + T. A fresh key therefore allows `burst`
requests at once and one every T after that.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings
from django.db import connection
from redis.commands.core import Script

from tutor.models import RateBucket

logger = logging.getLogger(__name__)

# Repeated float additions of T to an epoch time (ulp ~2.4e-7 s) must not refuse the burst-th
# request by a rounding error; a millisecond of slack is far below any interval we configure.
SLACK = 0.001
REDIS_PREFIX = "ratelimit:"
# Redis is an optimisation, never a dependency: an unreachable server costs each request at most this.
REDIS_TIMEOUT = 0.25

# The same decision as the SQL statement. tat is returned as a "%.17g" string because Redis
# truncates Lua numbers to integers, and "%.17g" round-trips a double exactly, so both paths
# decide identically on the same sequence of calls.
_GCRA_LUA = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if tat > limit then
  return {0, string.format('%.17g', tat)}
end
if tat < now then tat = now end
local new_tat = tat + interval
-- Once now reaches new_tat the bucket is full again, which is what a missing key means.
redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX', math.ceil((new_tat - now) * 1000))
return {1, string.format('%.17g', new_tat)}
"""

# Set while Redis is failing, so an outage logs one warning rather than one per request.
_redis_down = False


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until one request would conform; 0 when allowed
    remaining: int  # requests that would still be allowed right now, after this one


def limit_for(endpoint: str) -> tuple[int, int]:
    """(per_minute, burst) for an orchestrator endpoint, or the default limits."""
    limits = settings.ORCHESTRATOR_RATE_LIMITS
    per_minute, burst = limits.get(endpoint, limits["default"])
    return per_minute, burst


def take(key: str, *, per_minute: int, burst: int, now: float | None = None) -> Decision:
    """Take one token from `key`'s bucket if it has one."""
    if per_minute < 1 or burst < 1:
        raise ValueError("per_minute and burst must be at least 1")
    now = time.time() if now is None else now
    interval = 60.0 / per_minute
    tolerance = interval * (burst - 1)
    limit = now + tolerance + SLACK
    if settings.REDIS_URL:
        verdict = _take_redis(settings.REDIS_URL, key, now=now, interval=interval, limit=limit)
        if verdict is not None:
            return _decision(*verdict, now=now, interval=interval, tolerance=tolerance)
    allowed, tat = _take_db(key, now=now, interval=interval, limit=limit)
    return _decision(allowed, tat, now=now, interval=interval, tolerance=tolerance)


def _decision(allowed: bool, tat: float, *, now: float, interval: float, tolerance: float) -> Decision:
    """Turn the bucket's tat (the new one if allowed, the current one if refused) into a Decision."""
    if not allowed:
        return Decision(allowed=False, retry_after=max(0.0, tat - tolerance - now), remaining=0)
    remaining = math.floor((now + tolerance + SLACK - tat) / interval) + 1
    return Decision(allowed=True, retry_after=0.0, remaining=max(0, remaining))


def _take_db(key: str, *, now: float, interval: float, limit: float) -> tuple[bool, float]:
    """One upsert both decides and updates, so concurrent processes cannot both take the last
    token: a fresh key is inserted (always conforming), an existing row is moved on only WHERE
    it conforms, and RETURNING yields a row exactly when the request was allowed. PostgreSQL
    re-checks the WHERE on the locked latest row version; SQLite serialises writers."""
    qn = connection.ops.quote_name
    table, key_col, tat_col = qn(RateBucket._meta.db_table), qn("key"), qn("tat")
    sql = (
        f"INSERT INTO {table} ({key_col}, {tat_col}) VALUES (%s, %s) "
        f"ON CONFLICT ({key_col}) DO UPDATE SET {tat_col} = "
        f"CASE WHEN {table}.{tat_col} > %s THEN {table}.{tat_col} ELSE %s END + %s "
        f"WHERE {table}.{tat_col} <= %s "
        f"RETURNING {tat_col}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [key, now + interval, now, now, interval, limit])
        # fetchall, not fetchone: SQLite keeps the statement (and its write lock) open until
        # the result is exhausted.
        rows = cursor.fetchall()
    if rows:
        return True, rows[0][0]
    # Refused. This read only words the retry time; the decision above is already final. (The
    # table holds one row per learner and endpoint: nothing to prune.)
    tat = RateBucket.objects.filter(key=key).values_list("tat", flat=True).first()
    return False, now if tat is None else tat


@cache
def _redis_script(url: str) -> Script:
    """One client (and connection pool) per process and URL; the script is sent by EVALSHA."""
    client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
    return client.register_script(_GCRA_LUA)


def _take_redis(
    url: str, key: str, *, now: float, interval: float, limit: float
) -> tuple[bool, float] | None:
    """The Redis decision, or None when Redis does not answer (the caller uses the database)."""
    global _redis_down
    try:
        allowed, tat = _redis_script(url)(keys=[REDIS_PREFIX + key], args=[now, interval, limit])
    except redis.RedisError as error:
        if not _redis_down:
            logger.warning("Redis unreachable (%s); rate limits fall back to the database", error)
        _redis_down = True
        return None
    if _redis_down:
        logger.info("Redis answers again; rate limits are back in Redis")
    _redis_down = False
    return bool(allowed), float(tat)
