"""Content safety for every text a model (or a fallback) produces, before anyone reads it.

Deterministic, no model: the same text always gets the same verdict, and the verdict is
explained in words (`FilterResult.notes`) that go into the audit event.

1. Block: a reply matching any phrase of `BLOCKED` is replaced whole by `WITHHELD`. The list is
   small on purpose and aims at what a tutor must never say to a learner: abusive language and
   insults aimed at the reader, encouragement of self-harm, sexual content, and asking the
   learner for personal data (address, phone number, password). Phrases are chosen so that
   ordinary teaching survives ("visible to the naked eye", "never share your password").
2. Redact: email addresses, phone numbers, and links whose host is not on
   `settings.LLM_URL_ALLOW_LIST` (a host there allows its subdomains too).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

from tutor.llm.pseudonyms import EMAIL  # one address pattern, in linear time

WITHHELD = "This reply was withheld because it did not meet the content policy."

_YOU_ARE = r"\byou(?:'re|\s+are|r)\s+(?:(?:so|such|an?|really|just|totally|completely|a\s+total)\s+){0,3}"
BLOCKED: list[tuple[str, re.Pattern[str]]] = [
    (
        "abusive language",
        re.compile(
            r"\b(?:fuck\w*|shit(?:ty|head)?|bitch\w*|bastards?|cunts?|dickheads?|assholes?|arseholes?|"
            r"retard(?:ed|s)?|wankers?|sluts?|whores?)\b"
        ),
    ),
    (
        "insult",
        re.compile(
            _YOU_ARE + r"(?:stupid|idiot\w*|dumb|moron\w*|useless|worthless|pathetic|hopeless|lazy|"
            r"loser|failure|ugly|fat|brainless)\b"
            r"|\b(?:shut\s+up|nobody\s+likes\s+you|no\s+one\s+likes\s+you|"
            r"you\s+will\s+never\s+(?:learn|succeed|amount\s+to\s+anything))\b"
        ),
    ),
    (
        "self-harm encouragement",
        re.compile(
            r"\b(?:kill\s+yourself|kys)\b"
            r"|\b(?:you\s+should|go|just)\s+(?:die|(?:hurt|harm|cut|starve)\s+yourself|end\s+(?:it\s+all|your\s+life))\b"
            r"|\b(?:better\s+off\s+dead|nobody\s+would\s+miss\s+you)\b"
        ),
    ),
    (
        "sexual content",
        re.compile(
            r"\b(?:porn\w*|send\s+(?:me\s+)?nudes|nudes|sexy|sexting|sexual\s+(?:favou?rs?|acts?)|"
            r"onlyfans|have\s+sex)\b"
        ),
    ),
    (
        "request for personal data",
        re.compile(
            r"\b(?:what(?:'s|\s+is)|tell\s+me|send\s+me|give\s+me|text\s+me|dm\s+me|i\s+need|type)\s+"
            r"(?:me\s+)?your\s+(?:home\s+|full\s+|mobile\s+|cell\s+)?"
            r"(?:address|phone(?:\s+number)?|number|password|passcode|pin|login|credit\s+card|bank\s+details)\b"
            r"|\bwhere\s+do\s+you\s+live\b"
            r"|\b(?:send|show)\s+(?:me\s+)?(?:a\s+)?(?:photo|picture|pic|selfie)s?\s+of\s+yourself\b"
        ),
    ),
]

URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
# Digits with at most two separator characters between them ("+44 (0)20 7946 0958",
# "555-123-4567"); 9 to 15 digits make a phone number. Dates and decimals are let through.
PHONE = re.compile(r"(?<![\w+])\+?\(?\d(?:[ ().-]{0,2}\d){7,16}(?!\w)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")
_DECIMAL = re.compile(r"\d+\.\d+")
_TRAILING = ".,;:!?)]}'\""


@dataclass(frozen=True)
class FilterResult:
    text: str
    blocked: bool
    notes: list[str] = field(default_factory=list)


def filter_reply(text: str, *, allowed_hosts: Iterable[str] | None = None) -> FilterResult:
    """Block the whole text if it breaks the policy; otherwise redact contact details and links."""
    found = _blocked_categories(text)
    if found:
        return FilterResult(WITHHELD, True, [f"blocked: {category}" for category in found])
    allowed = [
        h.lower().lstrip(".")
        for h in (settings.LLM_URL_ALLOW_LIST if allowed_hosts is None else allowed_hosts)
    ]
    counts = {"link": 0, "email address": 0, "phone number": 0}

    def link(match: re.Match[str]) -> str:
        url = match.group(0)
        kept = url.rstrip(_TRAILING)
        host = (urlsplit(kept if "://" in kept else f"http://{kept}").hostname or "").lower()
        if any(host == h or host.endswith(f".{h}") for h in allowed):
            return url
        counts["link"] += 1
        return "[link removed]" + url[len(kept) :]

    def email(match: re.Match[str]) -> str:
        counts["email address"] += 1
        return "[email removed]"

    def phone(match: re.Match[str]) -> str:
        number = match.group(0)
        digits = sum(ch.isdigit() for ch in number)
        if not 9 <= digits <= 15 or _DATE.search(number) or _DECIMAL.fullmatch(number):
            return number
        counts["phone number"] += 1
        return "[phone removed]"

    text = URL.sub(link, text)
    text = EMAIL.sub(email, text)
    text = PHONE.sub(phone, text)
    notes = [f"redacted {n} {_plural(kind, n)}" for kind, n in counts.items() if n]
    if counts["link"]:
        notes[0] += " not on LLM_URL_ALLOW_LIST"
    return FilterResult(text, False, notes)


def _blocked_categories(text: str) -> list[str]:
    # Fold look-alike characters, case and typographic apostrophes before matching.
    folded = unicodedata.normalize("NFKC", text).casefold().replace("\u2019", "'")
    categories: list[str] = []
    for category, pattern in BLOCKED:
        if category not in categories and pattern.search(folded):
            categories.append(category)
    return categories


def _plural(kind: str, n: int) -> str:
    return kind if n == 1 else f"{kind}es" if kind.endswith("s") else f"{kind}s"
