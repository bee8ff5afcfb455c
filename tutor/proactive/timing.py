"""When a scheduled task is due: cron expressions (croniter) in the task's own time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterNotAlphaError, croniter


class ScheduleInvalid(ValueError):
    """A schedule that cannot run; `field` names what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleInvalid("time_zone", f"{name!r} is not a time zone such as Europe/London") from None


def check_cron(expression: str) -> str:
    """The expression, stripped, if croniter reads it as five fields; else ScheduleInvalid with why."""
    expression = " ".join(expression.split())
    if len(expression.split(" ")) != 5:
        raise ScheduleInvalid("cron", f"{expression!r} needs five fields: minute hour day month weekday")
    try:
        croniter(expression)
    except (CroniterBadCronError, CroniterNotAlphaError, CroniterBadDateError) as error:
        raise ScheduleInvalid("cron", f"{expression!r}: {error}") from None
    return expression


def next_after(cron: str, time_zone: str, after: datetime) -> datetime:
    """The first time strictly after `after` that `cron` names, read on the wall clock of
    `time_zone` (so "30 9 * * *" stays 09:30 local across daylight-saving changes)."""
    local = after.astimezone(zone(time_zone))
    return croniter(cron, local).get_next(datetime)
