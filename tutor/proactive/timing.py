"""When a scheduled task is due: cron expressions (croniter) in the task's own time zone."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterNotAlphaError, croniter


class ScheduleInvalid(ValueError):
    """A schedule that cannot run; `field` names what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


# The longest IANA name is 32 characters ("America/Argentina/ComodRivadavia"); the longest
# five-field cron anyone writes by hand is far below 100.
MAX_ZONE_NAME = 64
MAX_CRON = 100
# A one-off further ahead than this is a typo, and one near the end of the calendar could not even
# be shown on the wall clock of a zone ahead of UTC.
ONE_OFF_HORIZON = timedelta(days=3653)


def zone(name: str) -> ZoneInfo:
    problem = f"{name[:MAX_ZONE_NAME]!r} is not a time zone such as Europe/London"
    if len(name) > MAX_ZONE_NAME or "\x00" in name:
        raise ScheduleInvalid("time_zone", problem)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleInvalid("time_zone", problem) from None


def check_cron(expression: str) -> str:
    """The expression, stripped, if croniter reads it as five fields that name a time that comes
    round (not "0 9 31 2 *"); else ScheduleInvalid with why."""
    if len(expression) > MAX_CRON:
        raise ScheduleInvalid("cron", f"is {len(expression):,} characters long; the limit is {MAX_CRON}")
    expression = " ".join(expression.split())
    if len(expression.split(" ")) != 5:
        raise ScheduleInvalid("cron", f"{expression!r} needs five fields: minute hour day month weekday")
    try:
        croniter(expression).get_next(datetime)
    except (CroniterBadCronError, CroniterNotAlphaError, ValueError) as error:
        raise ScheduleInvalid("cron", f"{expression!r}: {error}") from None
    except CroniterBadDateError:
        raise ScheduleInvalid("cron", f"{expression!r} names a time that never comes") from None
    return expression


def check_one_off(run_at: datetime, now: datetime) -> datetime:
    if run_at <= now:
        raise ScheduleInvalid("run_at", "is in the past")
    if run_at - now > ONE_OFF_HORIZON:
        raise ScheduleInvalid("run_at", "is more than ten years ahead")
    return run_at


def next_after(cron: str, time_zone: str, after: datetime) -> datetime:
    """The first time strictly after `after` that `cron` names, read on the wall clock of
    `time_zone` (so "30 9 * * *" stays 09:30 local across daylight-saving changes)."""
    local = after.astimezone(zone(time_zone))
    return croniter(cron, local).get_next(datetime)
