"""A teacher's plain-text plan edit, read by rules into a proposed plan document.

`parse_edit` applies each edit it recognises ("add an objective: factor quadratics; 4 sessions a
week") to a copy of the base plan. It validates nothing: the caller runs `plans.schema.parse` and
`policy_errors` on the proposal and shows `plans.schema.diff`. It guesses nothing either: a clause no
rule reads, or whose objective, milestone or curriculum is unknown or ambiguous, is reported verbatim
in `not_understood` and changes nothing.

How the text is read:
1. It is cut into sentences (new lines, ";", a sentence-ending ".", "!" or "?"), and each sentence
   into pieces at commas, "and" and "then".
2. Neighbouring pieces are joined back where that reads better, so "compare and contrast ..." stays
   one objective: the cut with the fewest unread pieces, then the most edits, wins.
3. Each clause goes down the table of rules below; the first handler that can apply it wins.

Conventions, where a teacher's words need one reading:
- objectives are numbered from 1, in the order of the base plan the teacher is looking at;
- "daily" or "every day" sessions are weekdays: 5 a week;
- a date without a year is the next such date on or after today; "12/18" is month/day;
- "next Friday", "this Friday" and "on Friday" are the first Friday after today;
- a milestone moved "forward", "up" or "earlier" comes sooner, "back", "out" or "later" later;
- new objective and milestone texts get a capital first letter, as the plan's own texts have;
- new objectives get ids above every id of the base, so a removed objective's id is never reused.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from classroom.inputs import PLAN_TEXT
from plans.schema import PlanDocument

MAX_TEXT = PLAN_TEXT  # far beyond any edit a teacher types; longer text is not read at all
ABBREVIATION_WINDOW = 8  # "sept", "e.g", "i.e" and a word boundary before them
MAX_JOIN = 6  # pieces one clause may span when joined back
MAX_PIECES = 40  # a "sentence" of more comma- or and-separated pieces is a list, not an edit
WEEKDAY_SESSIONS = 5


@dataclass(frozen=True)
class EditResult:
    plan: dict[
        str, Any
    ]  # the proposed plan document as JSON (the base with the edits applied), NOT validated
    understood: list[str]  # one line per edit applied, in words ("weekly minutes 150 → 180")
    not_understood: list[str]  # the sentences/clauses it could not turn into an edit, verbatim


@dataclass
class _Draft:
    plan: dict[str, Any]
    catalogue: dict[str, str]
    today: date
    shown_objectives: list[dict[str, Any]]  # the base's objectives by position, as the teacher saw them
    next_objective: int


Handler = Callable[[dict[str, Any], _Draft], "str | None"]

_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "once": 1, "two": 2, "twice": 2, "a couple of": 2, "three": 3, "thrice": 3,
    "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "forty-five": 45, "fifty": 50, "sixty": 60,
    "ninety": 90, "half an": 0.5, "half a": 0.5,
}  # fmt: skip
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_WEEKDAYS = ["mon", "tues", "wednes", "thurs", "fri", "satur", "sun"]
_ORDINALS = ["first", "second", "third", "fourth", "fifth"]
_STOPWORDS = {"the", "a", "an", "of", "to", "for", "about", "on", "in", "and", "with", "from", "one", "our",
              "this", "objective", "goal", "milestone", "checkpoint", "curriculum", "course"}  # fmt: skip
_ROMAN = {"i": "1", "ii": "2", "iii": "3", "iv": "4"}
_REMOVE = "remove|delete|drop|cut|scrap|cancel|skip|lose|get rid of|take out|stop using|unassign"
_MORE = "add|increase|raise|bump up|bump|boost|up|extend|lengthen|another|an extra|extra|more"
_LESS = f"reduce|decrease|lower|trim|shorten|subtract|take off|take away|less|fewer|{_REMOVE}"

_NUM = r"(?:\d+(?:\.\d+)?|(?:{})\b)".format("|".join(sorted(map(re.escape, _NUMBERS), key=len, reverse=True)))
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_SPAN = rf"{_NUM}\s*(?:days?|weeks?|wks?|fortnights?)\b"
_F = {  # the fragments the rules are written with
    "num": _NUM,
    "week": r"(?:(?:a|an|per|each|every|/)\s*(?:week|wk)|weekly)",
    "minutes": rf"(?P<amount>-?{_NUM}\s*(?:minutes?|mins?|min|hours?|hrs?|hr|h)\b(?: and a half)?)",
    "percent": r"(?P<percent>\d+(?:\.\d+)?)\s*(?:%|percent|per cent)",
    "span": rf"(?P<span>{_SPAN})",
    "date": (
        rf"(?P<date>\d{{4}}-\d{{1,2}}-\d{{1,2}}|\d{{1,2}}/\d{{1,2}}(?:/\d{{2,4}})?|{_MONTH}\s+{_DAY}(?:,?\s+\d{{4}})?"
        rf"|{_DAY}(?:\s+of)?\s+{_MONTH}(?:,?\s+\d{{4}})?|(?:(?:next|this|on)\s+)?(?:{'|'.join(_WEEKDAYS)})day"
        rf"|today|tomorrow|in\s+{_SPAN}|{_SPAN}\s+from\s+(?:now|today))"
    ),
    "title": r"(?P<title>.+?)",
    # A title that {due} follows does not end just after a due word ("... on") that a space follows:
    # ending before that word reads the same due words and date. Tried from inside a run of
    # "on on on ...", each end would read the rest of the run again (quadratic: 4,000 characters
    # took 1.9 s). Titles of up to 4 characters are not checked: the word may start before them.
    "due_title": r"(?P<title>.{1,4}?|.{5,}?(?:(?<!\s(?:due|for))(?<!\s(?:on|by|at))|(?=\s*[,:\-–—])))",
    "due": r"(?:\s*[,:\-–—]\s*|\s+)(?:(?:due|on|by|for|at)\s+)*",
    "add": r"(?:add|include|insert|create|schedule|set up|put in)",
    "set": r"(?:set|change|make|update|put|move|bring|go|switch|increase|raise|bump|up|reduce|lower|cut|drop)"
    r"(?: it)?(?: up| down| back)?",
    "remove": f"(?:{_REMOVE})",
    "more": _MORE,
    "less": _LESS,
    "objective": r"(?:learning )?(?:objective|goal)s?",
    "objref": (
        r"(?:(?:objective|goal)\s*(?:#|no\.?|number)?\s*(?P<number>\d+)"
        rf"|(?P<ordinal>{'|'.join(_ORDINALS)}|last) (?:objective|goal)"
        r"|(?:objective|goal) (?:about|on|for|re|regarding|that says|with) (?P<about>.+?)"
        r"|(?P<topic>.+?) (?:objective|goal))"
    ),
    "sessions": r"(?:tutoring |weekly )?(?:sessions?|lessons?|classes|meetings?)",
    "subject": r"(?: (?:the )?(?:weekly |tutoring |total )*(?:minutes|time|pacing)(?: per week| a week)?)?",
    "milestone": r"(?:milestone|checkpoint|deadline)",
}

_SENTENCE = re.compile(r"[\n;]|[.!?](?=\s|$)")
# Separators start where a run of spaces starts (the look-behinds): tried from inside a long run,
# each position would scan the rest of it again (quadratic).
_PIECE = re.compile(
    r"(?<!\s)\s*,\s*(?:(?:and|then|also)\s+)*|(?<!\s)\s+(?:and|then|&)\s+(?:(?:then|also)\s+)*", re.I
)
_ABBREVIATION = re.compile(r"\b(?:jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec|no|vs|e\.g|i\.e)$", re.I)
_LEADING = re.compile(
    r"^(?:(?:please|pls|plz|also|then|and|but|ok(?:ay)?|so|now|finally|hey|hi|hello|can you|could you"
    r"|would you|can we|could we|i'd like to|i would like to|i want to|(?:we|i|they) need(?: to)?|let's|lets"
    r"|only|go ahead and)\b[\s,:!]*)+",
    re.I,
)
# Courtesy and emphasis that trail a clause ("…, please!", "… too, thanks"), taken off one word at a
# time from the end (`_without_courtesy`): one pattern for the whole tail, `(?:[\s,.!?]+|…)+$`,
# tried the ways of cutting "!!!!…" into runs (exponential: 24 characters took 18 s).
_TRAILING_WORD = re.compile(
    r"\b(?:please|pls|plz|thanks|thank you|thx|cheers|too|as well|only|in total|total"
    r"|is (?:enough|plenty|fine|better)|should do|will do)$",
    re.I,
)
_TRAILING_WINDOW = 16  # longer than any of those words with the space before it


def _without_courtesy(words: str) -> str:
    while True:
        words = words.rstrip(" ,.!?")
        tail = _TRAILING_WORD.search(words[-_TRAILING_WINDOW:])
        if tail is None:
            return words
        words = words[: len(words) - len(tail.group())]


def _number(text: str) -> float | None:
    text = text.strip().lower()
    try:
        return float(_NUMBERS.get(text, text))
    except ValueError:
        return None


def _whole(text: str) -> int | None:
    value = _number(text)
    return int(value) if value is not None and value == int(value) else None


def _minutes(amount: str) -> int | None:
    match = re.fullmatch(rf"(-?{_NUM})\s*([a-z]+)( and a half)?", amount.strip(), re.I)
    value = _number(match[1]) if match else None
    if value is None:
        return None
    return round((value + (0.5 if match[3] else 0)) * 60 if match[2].lower().startswith("h") else value)


def _days(span: str) -> int | None:
    match = re.fullmatch(rf"({_NUM})\s*([a-z]+)", span.strip(), re.I)
    value = _whole(match[1]) if match else None
    return None if value is None else value * {"d": 1, "w": 7, "f": 14}[match[2][0].lower()]


def _date(text: str, today: date) -> date | None:
    """The date the words name; see the module's conventions for the ones without a year."""
    words = re.sub(r"(?<=\d)(?:st|nd|rd|th)\b|,|\.|\bof\b|\b(?:next|this|on)\b", " ", text.lower())
    words = " ".join(words.split())
    if match := re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", words):
        return date(int(match[1]), int(match[2]), int(match[3]))
    if match := re.fullmatch(r"(\d{1,2})/(\d{1,2})(?:/(\d{2,4}))?", words):
        return _calendar(int(match[1]), int(match[2]), match[3], today)
    if (match := re.fullmatch(r"([a-z]+) (\d{1,2})(?: (\d{4}))?", words)) and match[1][:3] in _MONTHS:
        return _calendar(_MONTHS.index(match[1][:3]) + 1, int(match[2]), match[3], today)
    if (match := re.fullmatch(r"(\d{1,2}) ([a-z]+)(?: (\d{4}))?", words)) and match[2][:3] in _MONTHS:
        return _calendar(_MONTHS.index(match[2][:3]) + 1, int(match[1]), match[3], today)
    if words in ("today", "tomorrow"):
        return today + timedelta(days=words == "tomorrow")
    if (match := re.fullmatch(r"([a-z]+)day", words)) and match[1] in _WEEKDAYS:
        return today + timedelta(days=(_WEEKDAYS.index(match[1]) - today.weekday() - 1) % 7 + 1)
    match = re.fullmatch(r"in (.+)|(.+) from (?:now|today)", words)
    days = _days(match[1] or match[2]) if match else None
    return today + timedelta(days=days) if days is not None else None


def _calendar(month: int, day: int, year: str | None, today: date) -> date:
    if year:
        return date(int(year) + (2000 if len(year) == 2 else 0), month, day)
    this_year = date(today.year, month, day)
    return this_year if this_year >= today else date(today.year + 1, month, day)


def _clean(text: str) -> str:
    return text.strip().strip("\"'“”‘’`").strip().rstrip(".,;:!?").strip("\"'“”‘’`").strip()


def _sentence_case(text: str) -> str:
    text = _clean(text)
    return text[:1].upper() + text[1:]


def _words(text: str) -> list[str]:
    """The words that name a thing: stemmed, so "graphing" meets "Graph", roman numerals as digits."""
    words = [_ROMAN.get(w, w) for w in re.findall(r"[a-z0-9]+", text.casefold()) if w not in _STOPWORDS]
    return [re.sub(r"(?<=[a-z]{3})(?:ing|es|ed|s)$", "", word) for word in words]


def _same(a: str, b: str) -> bool:
    short, long = sorted((a, b), key=len)
    return a == b or (a.isalpha() and b.isalpha() and len(short) >= 3 and long.startswith(short))


def _pick(candidates: list[str], query: str) -> int | None:
    """The one candidate the query names, exactly or by every word of it; None when none or several fit."""
    wanted = _clean(query).casefold()
    fits = [n for n, candidate in enumerate(candidates) if candidate.casefold() == wanted]
    if not fits and (words := _words(wanted)):
        fits = [
            n for n, c in enumerate(candidates) if all(any(_same(w, t) for t in _words(c)) for w in words)
        ]
    return fits[0] if len(fits) == 1 else None


def _curriculum(name: str, catalogue: dict[str, str]) -> str | None:
    """The catalogue code a teacher's words name: a code, a title, a part of one that fits no other,
    or a title with a slip of the keyboard."""
    codes = list(catalogue)
    name = re.sub(r"\s+(?:curriculum|course|materials)$", "", _clean(name), flags=re.I)
    for code in codes:
        if name.casefold() in (code.casefold(), catalogue[code].casefold()):
            return code
    found = _pick([f"{catalogue[code]} {code}" for code in codes], name)
    if found is None:
        titles = [catalogue[code].casefold() for code in codes]
        close = difflib.get_close_matches(name.casefold(), titles, n=2, cutoff=0.85)
        found = titles.index(close[0]) if len(close) == 1 else None
    return codes[found] if found is not None else None


# The rules, in the order they are tried ----------------------------------------------------------

_RULES: list[tuple[re.Pattern[str], Handler]] = []


def _rule(*patterns: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _RULES.extend((re.compile(pattern.format(**_F), re.I), handler) for pattern in patterns)
        return handler

    return register


@_rule(
    r"(?:(?:add|include|insert|create|put in)(?: an?| another| one more)?(?: new)?|new|another) {objective}"
    r"(?: to the (?:plan|list))?\s*(?:[:\-–—=,]\s*|\s)(?:to\s+)?(?P<text>.+)",
    r"(?:add|include) (?P<text>.+?) (?:as (?:an?|another|a new)|to the) {objective}",
)
def _objective_add(g: dict[str, Any], draft: _Draft) -> str | None:
    text = _sentence_case(g["text"])
    draft.plan["objectives"].append({"id": f"o{draft.next_objective}", "text": text})
    draft.next_objective += 1
    return f"objective added: {text}"


def _objective(g: dict[str, Any], draft: _Draft) -> dict[str, Any] | None:
    """The objective a teacher names by its number or position in the plan they saw, or by its words."""
    objectives, shown = draft.plan["objectives"], draft.shown_objectives
    if g.get("number"):
        n = int(g["number"])
    elif g.get("ordinal"):
        n = len(shown) if g["ordinal"].lower() == "last" else _ORDINALS.index(g["ordinal"].lower()) + 1
    else:
        found = _pick([o["text"] for o in objectives], g.get("about") or g.get("topic") or "")
        return objectives[found] if found is not None else None
    chosen = shown[n - 1] if 1 <= n <= len(shown) else None
    return chosen if any(o is chosen for o in objectives) else None


@_rule(
    r"(?:change|reword|rewrite|rephrase|update|edit|replace|rename|revise|make) (?:the )?{objref}(?: text)?"
    r" (?:to|as|into|with|say|read|so it (?:says|reads))\s*:?\s*(?P<text>.+)",
    r"(?:the )?{objref}(?: should (?:be|say|read)| now reads| becomes|\s*[:=])\s*:?\s*(?P<text>.+)",
)
def _objective_change(g: dict[str, Any], draft: _Draft) -> str | None:
    objective, text = _objective(g, draft), _sentence_case(g["text"])
    if objective is None or objective["text"] == text:
        return None
    old, objective["text"] = objective["text"], text
    return f"objective changed: {old} → {text}"


@_rule(r"{remove} (?:the )?{objref}")
def _objective_remove(g: dict[str, Any], draft: _Draft) -> str | None:
    objective = _objective(g, draft)
    if objective is None:
        return None
    draft.plan["objectives"] = [o for o in draft.plan["objectives"] if o is not objective]
    return f"objective removed: {objective['text']}"


def _set_pacing(draft: _Draft, name: str, value: int | None) -> str | None:
    pacing = draft.plan["pacing"]
    if value is None or value == pacing[name]:
        return None
    line, pacing[name] = f"{name.replace('_', ' ')} {pacing[name]} → {value}", value
    return line


@_rule(
    r"(?:(?:do|have|run|hold|schedule|meet for|make it|go with) )?(?P<n>{num})\s*(?:{sessions} of|x|×)\s*"
    r"{minutes}(?: sessions?| each)?(?:\s*{week})?"
)
def _sessions_of(g: dict[str, Any], draft: _Draft) -> str | None:
    sessions, each = _whole(g["n"]), _minutes(g["amount"])
    if sessions is None or each is None:
        return None
    lines = [
        _set_pacing(draft, "sessions_per_week", sessions),
        _set_pacing(draft, "weekly_minutes", sessions * each),
    ]
    return ", ".join(line for line in lines if line) or None


@_rule(
    r"(?P<n>{num}|another) (?P<way>more|extra|fewer|less) {sessions}(?:\s*{week})?",
    r"(?P<way>add|{remove})(?: (?P<n>{num}|another))?(?: more| extra)? {sessions}(?:\s*{week})?",
    r"(?P<way>increase|decrease|reduce|cut|raise|bump|lower|up)(?: the)?(?: number of)? {sessions}"
    r"(?: per week| a week)? by (?P<n>{num})",
    r"(?P<n>another|an extra) {sessions}(?:\s*{week})?",
)
def _sessions_by(g: dict[str, Any], draft: _Draft) -> str | None:
    step = _whole(re.sub(r"another|an extra", "one", g.get("n") or "one", flags=re.I))
    if step is None:
        return None
    fewer = re.fullmatch(_LESS, g.get("way") or "", re.I)
    return _set_pacing(
        draft, "sessions_per_week", draft.plan["pacing"]["sessions_per_week"] + (-step if fewer else step)
    )


@_rule(
    r"(?:{set} )?(?:the )?(?:number of )?(?:weekly )?sessions(?: per week| a week| weekly)?(?: up| down)?"
    r"\s*(?:to|=|:|at)\s*(?P<n>-?{num})",
    r"(?:(?:meet|have|do|run|hold|schedule|go with|make it|{set} to) )?(?P<n>{num})\s*"
    r"(?:(?:x|times)\s*{week}|{sessions}(?:\s*{week})?)",
    r"(?:(?:meet|have sessions) )?(?P<n>once|twice|thrice)\s*{week}",
    r"(?:(?:meet|have|do|hold|run) (?:sessions )?)?(?:daily|every (?:school |week)?day|each (?:week)?day"
    r"|on weekdays)(?: sessions?)?",
)
def _sessions(g: dict[str, Any], draft: _Draft) -> str | None:
    return _set_pacing(draft, "sessions_per_week", _whole(g["n"]) if g.get("n") else WEEKDAY_SESSIONS)


@_rule(
    r"(?P<way>{more}|{less}){subject}(?: by)? (?:{minutes}|{percent})(?:\s*{week})?"
    r"(?: (?:to|from|off) (?:the )?(?:weekly )?(?:time|pacing|minutes|week))?",
    r"(?P<n>{num}) (?P<way>more|extra|less|fewer) (?P<unit>minutes?|mins?|min|hours?|hrs?)(?:\s*{week})?",
    r"{minutes} (?P<way>more|extra|less|fewer)(?:\s*{week})?",
    r"(?P<way>{more}|{less}) {minutes} (?:to|from|off) (?P<each>each|every|per) (?:session|lesson|class)",
    r"(?P<factor>double|triple|halve){subject}",
    r"(?P<factor>cut){subject} in half",
)
def _minutes_by(g: dict[str, Any], draft: _Draft) -> str | None:
    current, sessions = draft.plan["pacing"]["weekly_minutes"], draft.plan["pacing"]["sessions_per_week"]
    if g.get("factor"):
        return _set_pacing(
            draft, "weekly_minutes", round(current * {"d": 2, "t": 3}.get(g["factor"][0].lower(), 0.5))
        )
    if g.get("percent"):
        step = current * float(g["percent"]) / 100
    else:
        step = _minutes(g.get("amount") or f"{g['n']} {g['unit']}")
    if step is None:
        return None
    step *= sessions if g.get("each") else 1
    less = re.fullmatch(_LESS, g["way"], re.I)
    return _set_pacing(draft, "weekly_minutes", round(current - step if less else current + step))


@_rule(
    r"(?:{set} )?(?:the )?(?:weekly (?:minutes|time|pacing)|weekly|pacing|minutes(?: per week| a week)?"
    r"|(?:tutoring )?time (?:per|a) week|(?:less|more) time)(?: up| down)?\s*(?:to|=|:|at|->|→|should be|is)?"
    r"\s*(?:{minutes}|(?P<value>-?\d+))(?:\s*{week})?",
    r"(?:{set} to |(?:do|have|go with|make it) )?{minutes}(?: of (?:tutoring|practice|time))?\s*{week}",
)
def _minutes_to(g: dict[str, Any], draft: _Draft) -> str | None:
    return _set_pacing(draft, "weekly_minutes", _minutes(g["amount"]) if g.get("amount") else int(g["value"]))


def _milestone(title: str, draft: _Draft) -> dict[str, Any] | None:
    found = _pick([m["title"] for m in draft.plan["milestones"]], title)
    return draft.plan["milestones"][found] if found is not None else None


@_rule(
    r"(?:{add}(?: an?| another)?(?: new)?|new|another) {milestone}\s*[:\-–—]?\s*{due_title}{due}{date}",
    r"{add}(?: an?| another)?(?: new)? {title} (?:as an? )?{milestone}{due}{date}",
    r"{add}(?: an?| another)? (?P<title>[^:]*?(?:quiz|test|exam|review|project|draft|presentation|essay"
    r"|report|assessment|assignment))(?: (?:due|on|by|for))+ {date}",
)
def _milestone_add(g: dict[str, Any], draft: _Draft) -> str | None:
    title, due = _sentence_case(g["title"]), _date(g["date"], draft.today)
    if due is None or not title:
        return None
    draft.plan["milestones"].append({"title": title, "due": due.isoformat()})
    return f"milestone added: {title}, due {due.isoformat()}"


def _move(milestone: dict[str, Any] | None, due: date | None) -> str | None:
    if milestone is None or due is None or due.isoformat() == milestone["due"]:
        return None
    old, milestone["due"] = milestone["due"], due.isoformat()
    return f"milestone moved: {milestone['title']} {old} → {milestone['due']}"


@_rule(
    r"(?P<verb>push|move|shift|postpone|delay|bump|bring|pull)(?: back| out)? (?:the )?{title}"
    r"(?: (?P<way>back|out|forward|up|earlier|later|ahead))?(?: by)? {span}"
    r"(?: (?P<after>later|earlier|sooner))?",
)
def _milestone_shift(g: dict[str, Any], draft: _Draft) -> str | None:
    milestone, days = _milestone(g["title"], draft), _days(g["span"])
    if milestone is None or days is None:
        return None
    way = (g.get("way") or g.get("after") or g["verb"]).lower()
    sooner = way in ("forward", "up", "earlier", "ahead", "sooner", "bring", "pull")
    return _move(milestone, date.fromisoformat(milestone["due"]) + timedelta(days=-days if sooner else days))


@_rule(
    r"(?:move|reschedule|change|shift|push|bring|set|put|pull|postpone|delay)(?: back| out| forward| up)?"
    r"(?: the)?(?: (?:date|due date) (?:of|for))?(?: the)? {title}(?: {milestone})?(?: (?:date|due date))?"
    r"(?: back| out| forward| up)? (?:to|for|until|till|on) {date}",
    r"(?:the )?{title} (?:is now|is moving to|moves to|should be|now|is)(?: due)?(?: on| by)? {date}",
)
def _milestone_move(g: dict[str, Any], draft: _Draft) -> str | None:
    return _move(_milestone(g["title"], draft), _date(g["date"], draft.today))


@_rule(r"{remove} (?:the )?(?:{milestone} )?{title}(?: {milestone})?")
def _milestone_remove(g: dict[str, Any], draft: _Draft) -> str | None:
    milestone = _milestone(g["title"], draft)
    if milestone is None:
        return None
    draft.plan["milestones"] = [m for m in draft.plan["milestones"] if m is not milestone]
    return f"milestone removed: {milestone['title']} (was due {milestone['due']})"


def _set_date(draft: _Draft, name: str, value: date | None) -> str | None:
    if value is None or value.isoformat() == draft.plan[name]:
        return None
    old, draft.plan[name] = draft.plan[name], value.isoformat()
    return f"plan {name.replace('_', ' ')} {old} → {value.isoformat()}"


@_rule(
    r"(?:end|finish|close|wrap up|conclude) the plan(?: on| by| at)? {date}",
    r"(?:(?:set|change|move|make|push) )?(?:the )?(?:plan(?:'s)? )?end(?: date)?(?: of the plan)?"
    r"(?: to| on| at| is|:|=)*\s*{date}",
    r"(?:(?:make|let|have|keep|run) )?(?:the )?plan(?: going)? (?:should |will |now )?(?:(?:end|run|go)s? )?"
    r"(?:on |until |till |through |to )?{date}",
)
def _ends_on(g: dict[str, Any], draft: _Draft) -> str | None:
    return _set_date(draft, "ends_on", _date(g["date"], draft.today))


@_rule(
    r"(?P<verb>extend|lengthen|prolong|shorten)(?: the plan(?:'s end date)?| the end date| it)?"
    r"(?: by)? {span}",
    r"(?P<verb>push|move|cut)(?: back| out)? the (?:plan(?:'s)? )?end(?: date)?(?: back| out| later)?"
    r"(?: by)? {span}",
    r"(?P<verb>add) {span} to the plan",
)
def _ends_by(g: dict[str, Any], draft: _Draft) -> str | None:
    days = _days(g["span"])
    if draft.plan["ends_on"] is None or days is None:
        return None
    days = -days if g["verb"].lower() in ("shorten", "cut") else days
    return _set_date(draft, "ends_on", date.fromisoformat(draft.plan["ends_on"]) + timedelta(days=days))


def _label(code: str, draft: _Draft) -> str:
    return f"{draft.catalogue[code]} ({code})"


@_rule(
    r"(?:swap|switch|replace|exchange|trade|change)(?: out)?(?: the)?(?: curriculum| course)? (?P<old>.+?)"
    r" (?:for|with|to|by|->|→|=>|into) (?P<new>.+)",
    r"(?:swap|switch|replace|exchange|trade)(?: out)?(?: the)? (?P<old>.+) (?:for|with) (?P<new>.+?)",
    r"(?:switch|move|change)(?: the curriculum| the course| the class)? from (?P<old>.+?) to (?P<new>.+)",
    r"(?:use|do|teach|take) (?P<new>.+?) instead of (?P<old>.+)",
)
def _curriculum_swap(g: dict[str, Any], draft: _Draft) -> str | None:
    codes = draft.plan["curricula"]
    old, new = _curriculum(g["old"], draft.catalogue), _curriculum(g["new"], draft.catalogue)
    if old not in codes or new is None or new in codes:
        return None
    codes[codes.index(old)] = new
    return f"curriculum swapped: {_label(old, draft)} → {_label(new, draft)}"


@_rule(
    r"(?:add|include|assign|use|attach|bring in|enrol(?:l)?(?: the class| them)? in)(?: the)? (?P<name>.+?)"
)
def _curriculum_add(g: dict[str, Any], draft: _Draft) -> str | None:
    code = _curriculum(g["name"], draft.catalogue)
    if code is None or code in draft.plan["curricula"]:
        return None
    draft.plan["curricula"].append(code)
    return f"curriculum added: {_label(code, draft)}"


@_rule(r"{remove}(?: the)? (?P<name>.+?)")
def _curriculum_remove(g: dict[str, Any], draft: _Draft) -> str | None:
    code = _curriculum(g["name"], draft.catalogue)
    if code not in draft.plan["curricula"]:
        return None
    draft.plan["curricula"] = [c for c in draft.plan["curricula"] if c != code]
    return f"curriculum removed: {_label(code, draft)}"


# Reading the text --------------------------------------------------------------------------------


def parse_edit(text: str, *, base: PlanDocument, catalogue: dict[str, str], today: date) -> EditResult:
    """catalogue maps curriculum code -> title (the organisation's catalogue)."""
    plan = base.as_json()
    ids = [int(o["id"][1:]) for o in plan["objectives"] if re.fullmatch(r"o\d{1,9}", o["id"])]
    draft = _Draft(plan, dict(catalogue), today, list(plan["objectives"]), max(ids, default=0) + 1)
    understood: list[str] = []
    not_understood: list[str] = []
    if len(text) > MAX_TEXT:
        not_understood.append(text.strip())
    else:
        for start, end in _cut(text, _SENTENCE, start=0, end=len(text)):
            _read_sentence(text, _cut(text, _PIECE, start=start, end=end), draft, understood, not_understood)
    if not understood and not not_understood and text.strip():
        not_understood.append(text.strip())  # courtesy alone ("thanks!") is not an edit either
    return EditResult(plan=draft.plan, understood=understood, not_understood=not_understood)


def _cut(text: str, separator: re.Pattern[str], *, start: int, end: int) -> list[tuple[int, int]]:
    spans, begin = [], start
    for match in separator.finditer(text, start, end):
        # The abbreviation sits just before the dot: look at those characters only, or every dot
        # of a long sentence would search the sentence again from its start (quadratic).
        window = max(start, match.start() - ABBREVIATION_WINDOW)
        if match.group() == "." and _ABBREVIATION.search(text, window, match.start()):
            continue  # "Dec. 15" goes on
        spans.append((begin, match.start()))
        begin = match.end()
    spans.append((begin, end))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def _read_sentence(
    text: str, pieces: list[tuple[int, int]], draft: _Draft, understood: list[str], not_understood: list[str]
) -> None:
    """Joins the pieces into clauses (fewest unread pieces, then most edits, then longest clauses),
    then applies the clauses in order; unread neighbours are reported as one."""
    n = len(pieces)
    if n > MAX_PIECES:  # each piece would be tried in up to MAX_JOIN clauses against every rule
        not_understood.append(text[pieces[0][0] : pieces[-1][1]].strip())
        return
    best: list[tuple[int, int, int, bool]] = [(0, 0, -n, False)] * (n + 1)  # (unread, -edits, -next, read)
    for i in range(n - 1, -1, -1):
        options = [(best[i + 1][0] + 1, best[i + 1][1], -(i + 1), False)]
        for j in range(i + 1, min(n, i + MAX_JOIN) + 1):
            done = _interpret(text[pieces[i][0] : pieces[j - 1][1]], draft, trial=True)
            if done is not None:
                options.append((best[j][0], best[j][1] - bool(done), -j, True))
        best[i] = min(options)
    i, pending = 0, None  # the unread text waiting to be reported
    while i < n:
        j, read = -best[i][2], best[i][3]
        start, end = pieces[i][0], pieces[j - 1][1]
        done = _interpret(text[start:end], draft) if read else None
        if done is None:
            pending = (pending[0] if pending else start, end)
        elif pending:
            not_understood.append(text[pending[0] : pending[1]].strip())
            pending = None
        if done:
            understood.append(done)
        i = j
    if pending:
        not_understood.append(text[pending[0] : pending[1]].strip())


def _interpret(clause: str, draft: _Draft, *, trial: bool = False) -> str | None:
    """What the clause changed in the draft (in a copy of it on a trial); "" for courtesy that asks
    for nothing; None when no rule can apply it (the draft is then as it was)."""
    words = _without_courtesy(_LEADING.sub("", " ".join(clause.split())))
    if not words:
        return ""
    target = None
    for pattern, handler in _RULES:
        if match := pattern.fullmatch(words):
            if target is None:  # handlers change nothing unless they apply: one copy serves a trial
                target = copy.deepcopy(draft) if trial else draft
            try:
                done = handler(match.groupdict(), target)
            except (ValueError, ArithmeticError):  # impossible dates, numbers beyond any calendar
                done = None
            if done:
                return done
    return None
