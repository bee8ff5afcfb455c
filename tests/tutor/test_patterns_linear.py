"""The patterns run on text people and the platform send take linear time: ten times the longest
value any field takes, shaped to make a backtracking pattern go quadratic (long runs of what a
pattern's first part takes and its last part never finds), is read within a second. Before the
fix, 40 KB took 4.5 s in the e-mail pattern and 200 KB would take minutes (issue 13)."""

from __future__ import annotations

import time
from datetime import date

import pytest

from classroom.inputs import LONGEST
from plans import textedit
from plans.schema import PlanDocument
from tutor.llm import safety
from tutor.llm.pseudonyms import Pseudonyms

SIZE = 10 * LONGEST
SHAPES = {
    "one long word": "a" * SIZE,
    "digits": "1" * SIZE,
    "dotted": "a." * (SIZE // 2),
    "hyphens after an at": "a@b" + "-" * SIZE,
    "at signs": "a@" * (SIZE // 2),
    "dotted domain with no end": "a@b" + ".c" * (SIZE // 2) + "@",
    "link": "http://" + "a" * SIZE,
    "spaced digits": "1 " * (SIZE // 2),
    "phone-like": "+1(" * (SIZE // 3),
    "names": "Maria " * (SIZE // 6),
    "you are": "you are so " * (SIZE // 11),
    "tell me": "tell " * (SIZE // 5) + "me your",
}


@pytest.fixture(scope="module")
def pseudonyms() -> Pseudonyms:
    people = [(n, f"First{n}", f"Last{n}", f"first{n}@example.org") for n in range(30)]
    return Pseudonyms.for_students(
        [*people, (99, "Maria", "Lopez", "maria@example.org"), (98, "Will", "Young", "")]
    )


def _within_a_second(work) -> float:
    started = time.monotonic()
    work()
    return time.monotonic() - started


@pytest.mark.parametrize("shape", SHAPES)
def test_masking_names_reads_a_long_text_within_a_second(pseudonyms, shape):
    assert _within_a_second(lambda: pseudonyms.mask(SHAPES[shape])) < 1.0


@pytest.mark.parametrize("shape", SHAPES)
def test_the_content_filter_reads_a_long_text_within_a_second(shape):
    assert _within_a_second(lambda: safety.filter_reply(SHAPES[shape])) < 1.0


def test_masking_still_finds_what_it_must(pseudonyms):
    text = "Maria Lopez (maria@example.org) wrote to j.doe+tutor@mail.school.org; first3@example.org too."
    assert pseudonyms.mask(text) == "Student AE (Student AE) wrote to [email]; Student D too."


def test_the_filter_still_redacts_contact_details():
    result = safety.filter_reply("Mail j.doe@school.org or call +44 20 7946 0958, see http://evil.example/x.")
    assert result.text == "Mail [email removed] or call [phone removed], see [link removed]."


PLAN = PlanDocument.model_validate(
    {
        "starts_on": "2026-09-01",
        "ends_on": "2027-06-30",
        "objectives": [{"id": "o1", "text": "Solve linear equations"}],
        "pacing": {"weekly_minutes": 120, "sessions_per_week": 3},
        "curricula": ["alg1-core"],
        "milestones": [{"title": "Unit 3 test", "due": "2027-01-10"}],
    }
)
EDIT_SHAPES = {
    "dots": "a. " * (textedit.MAX_TEXT // 3),
    "commas": "a," * (textedit.MAX_TEXT // 2),
    "ands": "a and " * (textedit.MAX_TEXT // 6),
    "spaces": "move the" + " " * (textedit.MAX_TEXT - 10) + "x",
    "dates": "move the unit 3 test to " + "dec " * ((textedit.MAX_TEXT - 24) // 4),
    "objective": "objective about " + "x " * ((textedit.MAX_TEXT - 16) // 2),
    # Took 18 s at 24 characters: the courtesy-tail pattern cut the run of "!" every possible way.
    "exclamations": "!" * 40 + "x",
    # Took 1.9 s: the milestone title could end before any "on" of the run and read the rest again.
    "due words": "add milestone " + "on " * ((textedit.MAX_TEXT - 15) // 3) + "x",
    "milestone dashes": "new milestone " + "- " * ((textedit.MAX_TEXT - 15) // 2) + "x",
    "trailing courtesy": "x" + ", please" * ((textedit.MAX_TEXT - 9) // 8) + " thanks!",
}


@pytest.mark.parametrize("shape", EDIT_SHAPES)
def test_the_plan_reader_reads_its_longest_text_quickly(shape):
    text = EDIT_SHAPES[shape]
    assert len(text) <= textedit.MAX_TEXT
    seconds = _within_a_second(
        lambda: textedit.parse_edit(
            text, base=PLAN, catalogue={"alg1-core": "Algebra I Core"}, today=date(2026, 12, 3)
        )
    )
    assert seconds < 0.5
