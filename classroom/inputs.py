"""What the product accepts from people and from the platform: texts no longer than their limit,
ids that fit a database key, and no NUL characters (PostgreSQL cannot store them in text).

Each limit is declared once here and used where the text enters: the page's view or form, the
API schema (`max_length`), the tutor's tool schema and the service that stores it, so a page and
the API refuse the same text with the same words. Every value of every request also passes
`tutor.middleware.InputGuardMiddleware` (forms and query strings) or the API's body parser,
which refuse a NUL anywhere and any text longer than `LONGEST`, before a view or a pattern sees
it. A refused request stores nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import Field

# A note on an alert, an approval, a failure or a switch; a pause's reason.
NOTE = 2000
# Why an automation switch was flipped.
REASON = 300
# Why a plan should change; a plain-text change to a plan; a message to the tutor.
RATIONALE = 4000
PLAN_TEXT = 4000
CHAT_MESSAGE = 4000
# What a scheduled message should say or ask.
INTENT = 2000
# A search box.
SEARCH = 100
# Codes, steps, kinds, flags, time zones and cron expressions: short by nature.
CODE = 100
# The longest value any field takes (the plan editor carries the whole plan document, at most 20
# objectives and 40 milestones, in one field); anything longer is refused at the door.
LONGEST = 20_000
# The JSON a workflow draft keeps for its surfaces.
DRAFT_STATE_BYTES = 64 * 1024

# Database keys are signed 64-bit integers.
MAX_ID = 2**63 - 1

# An id in an API request, path, query or body: the schema refuses what no row could have.
Id = Annotated[int, Field(ge=1, le=MAX_ID)]

NUL_PROBLEM = "contains a NUL character, which cannot be stored"


class InputInvalid(ValueError):
    """A value a person or the platform sent that the product refuses; names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def too_long(length: int, limit: int) -> str:
    return f"is {length:,} characters long; the limit is {limit:,}"


def check_text(value: str, *, field: str, limit: int) -> str:
    """`value` unchanged, or InputInvalid naming `field` when it is too long or holds a NUL."""
    if "\x00" in value:
        raise InputInvalid(field, NUL_PROBLEM)
    if len(value) > limit:
        raise InputInvalid(field, too_long(len(value), limit))
    return value


def parse_id(value: Any, *, field: str) -> int | None:
    """An id sent as text ("" or None: no id); InputInvalid when it is not one a row could have."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text[:20]) <= MAX_ID:
        raise InputInvalid(field, "is not a valid id")
    return int(text)


def refused_value(data: Any, *, limit: int = LONGEST) -> InputInvalid | None:
    """The first string (or key) in a JSON-like value that holds a NUL or is longer than `limit`,
    as the error naming its place (`members[2].overrideCode`); None when everything is fine."""
    for path, text in _strings(data, ""):
        if "\x00" in text:
            return InputInvalid(path or "body", NUL_PROBLEM)
        if len(text) > limit:
            return InputInvalid(path or "body", too_long(len(text), limit))
    return None


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str):
                yield here, key
            yield from _strings(item, here)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")
