"""Stable placeholders for students' names in what we send a model.

One `Pseudonyms` serves one conversation: "Student A", "Student B"... in the order the students
were given, so the same roster always gets the same labels. `mask` runs before a prompt leaves
the process; `unmask` runs on the model's text before a teacher reads it.

What `mask` replaces, in one pass (so a replacement is never replaced again):
1. any email address: a known student's becomes their pseudonym, any other "[email]";
2. full names ("Maria Lopez"), then first and last names alone, on word boundaries and
   case-insensitively;
3. a name that two students share ("Sam") becomes "[name]": guessing would mislead the model;
4. a name that is also a common English word ("Will", "Grace", "Young") is replaced only when
   written with a capital, so "you will" stays readable; see `_COMMON_WORDS`.
Over-masking is the safe side: a sentence-initial "Will you..." becomes "Student A you...".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

# An address starts where a run of address characters starts: without the look-behind the engine
# would try again from every character of a long run that holds no "@" (quadratic in the run).
EMAIL = re.compile(r"(?<![\w.+%-])[\w.+%-]+@[\w-]+(?:\.[\w-]+)+")
EMAIL_PLACEHOLDER = "[email]"
AMBIGUOUS_PLACEHOLDER = "[name]"

# Names that are everyday words too: matched only when capitalised.
# fmt: off
_COMMON_WORDS = frozenset({
    "will", "may", "mark", "grace", "hope", "faith", "joy", "rose", "june", "april", "summer", "autumn",
    "bill", "pat", "rich", "sue", "art", "gene", "amber", "ivy", "lily", "violet", "jack", "frank",
    "hunter", "guy", "penny", "ray", "dean", "glen", "cliff", "drew", "wade", "chase", "rob", "sunny",
    "young", "long", "white", "brown", "green", "black", "king", "page", "rice", "hall", "cook", "baker",
    "miller", "wood", "stone", "little", "small", "price", "field", "hill", "lane", "moore", "bell",
    "best", "love", "hart", "fox", "gray", "grey", "park", "west", "north", "south",
})
# fmt: on


@dataclass(frozen=True)
class _Person:
    student_id: int
    pseudonym: str
    first_name: str
    last_name: str
    email: str

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass
class Pseudonyms:
    people: list[_Person] = field(default_factory=list)

    @classmethod
    def for_students(cls, students: Iterable[tuple[int, str, str, str]]) -> Pseudonyms:
        """From (student_id, first_name, last_name, email) tuples, in a stable order."""
        people = [
            _Person(student_id, _label(n), (first or "").strip(), (last or "").strip(), (email or "").strip())
            for n, (student_id, first, last, email) in enumerate(students)
        ]
        return cls(people)

    @classmethod
    def for_student(cls, student: Any) -> Pseudonyms:
        """One student's conversation: anything with pk, first_name, last_name and email."""
        return cls.for_students([(student.pk, student.first_name, student.last_name, student.email)])

    def pseudonym_for(self, student_id: int) -> str:
        return next(p.pseudonym for p in self.people if p.student_id == student_id)

    def student_id_for(self, pseudonym: str) -> int | None:
        """Which student a label the model used stands for (e.g. in a tool call's input)."""
        return next((p.student_id for p in self.people if p.pseudonym == pseudonym.strip()), None)

    def mask(self, text: str) -> str:
        if not text:
            return text
        pattern, replacements = self._masking
        return pattern.sub(lambda m: _replacement(m, replacements), text)

    def unmask(self, text: str) -> str:
        if not text or not self.people:
            return text
        names = {p.pseudonym: p.display_name or p.pseudonym for p in self.people}
        # Longest first, and never inside a longer label: "Student A" must not eat "Student AB".
        alternatives = "|".join(re.escape(label) for label in sorted(names, key=len, reverse=True))
        return re.sub(rf"(?<!\w)(?:{alternatives})(?!\w)", lambda m: names[m.group(0)], text)

    def mask_data(self, value: Any) -> Any:
        """`mask` applied to every string inside dicts and lists (message blocks, tool inputs)."""
        return walk_strings(value, self.mask)

    def unmask_data(self, value: Any) -> Any:
        return walk_strings(value, self.unmask)

    @cached_property
    def _masking(self) -> tuple[re.Pattern[str], dict[str, str]]:
        return _build_masking(self.people)


def _label(n: int) -> str:
    letters = ""
    n += 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return f"Student {letters}"


def _build_masking(people: list[_Person]) -> tuple[re.Pattern[str], dict[str, str]]:
    """One alternation: emails first, then names longest first; and the replacement of each
    name, keyed by its lower-case form."""
    replacements: dict[str, str] = {}
    for person in people:
        if person.email:
            replacements[person.email.lower()] = person.pseudonym
    # Full names are unambiguous enough to win over a shared first or last name.
    singles: dict[str, set[str]] = {}
    for person in people:
        if person.first_name and person.last_name:
            replacements[person.display_name.lower()] = person.pseudonym
        for name in (person.first_name, person.last_name):
            if name:
                singles.setdefault(name.lower(), set()).add(person.pseudonym)
    for name, labels in singles.items():
        replacements.setdefault(name, labels.pop() if len(labels) == 1 else AMBIGUOUS_PLACEHOLDER)

    names = sorted((key for key in replacements if "@" not in key), key=len, reverse=True)
    # Names are tried only where a word starts (one look-behind for all of them, not one each).
    pattern = EMAIL.pattern
    if names:
        pattern += rf"|(?<!\w)(?:{'|'.join(_name_pattern(name) for name in names)})(?!\w)"
    return re.compile(pattern), replacements


def _name_pattern(name: str) -> str:
    words = [re.escape(word) for word in name.split()]
    # Whitespace inside a full name may be any run of spaces or a line break.
    body = r"\s+".join(words)
    if name in _COMMON_WORDS:
        # Capitalised (or all capitals) only.
        body = f"(?:{re.escape(name.capitalize())}|{re.escape(name.upper())})"
    else:
        body = f"(?i:{body})"
    return body


def _replacement(match: re.Match[str], replacements: dict[str, str]) -> str:
    found = " ".join(match.group(0).split()).lower()
    if "@" in found:
        return replacements.get(found, EMAIL_PLACEHOLDER)
    return replacements.get(found, AMBIGUOUS_PLACEHOLDER)


def walk_strings(value: Any, change: Callable[[str], str]) -> Any:
    """`value` with `change` applied to every string inside its dicts and lists (not to keys)."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list | tuple):
        return [walk_strings(item, change) for item in value]
    if isinstance(value, dict):
        return {key: walk_strings(item, change) for key, item in value.items()}
    return value
