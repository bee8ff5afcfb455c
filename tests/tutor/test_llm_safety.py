"""The content filter, the pseudonyms and the tool-schema checks, on their own (no model, no database)."""

from __future__ import annotations

import pytest

from tutor.llm import schema
from tutor.llm.gateway import Tool
from tutor.llm.pseudonyms import Pseudonyms
from tutor.llm.safety import WITHHELD, filter_reply


@pytest.mark.parametrize(
    ("reply", "category"),
    [
        ("You’re an idiot if you miss this.", "insult"),
        ("Honestly, shut up and do the worksheet.", "insult"),
        ("This is fucking easy.", "abusive language"),
        ("If it is too hard, just kill yourself.", "self-harm encouragement"),
        ("You should send nudes to pass.", "sexual content"),
        ("Before we start, what's your home address?", "request for personal data"),
        ("Tell me your password so I can log in for you.", "request for personal data"),
        ("Where do you live?", "request for personal data"),
    ],
)
def test_off_policy_replies_are_withheld_with_the_reason(reply, category):
    result = filter_reply(reply)

    assert (result.text, result.blocked, result.notes) == (WITHHELD, True, [f"blocked: {category}"])


@pytest.mark.parametrize(
    "reply",
    [
        "There is no such thing as a stupid question.",
        "Jupiter's moons are visible to the naked eye? Not quite: you need binoculars.",
        "Never share your password with anyone, including me.",
        "Sexual reproduction needs two parents; asexual reproduction needs one.",
        "Due 2026-11-03 at 10:00; pi is about 3.14159265; the hall holds 1,000,000 marbles.",
    ],
)
def test_ordinary_teaching_passes_untouched(reply):
    result = filter_reply(reply, allowed_hosts=[])
    assert (result.text, result.blocked, result.notes) == (reply, False, [])


def test_links_off_the_allow_list_are_redacted_and_subdomains_of_allowed_hosts_kept():
    result = filter_reply(
        "Watch https://www.khanacademy.org/math/fractions, then see https://tracker.example.net/x?id=1.",
        allowed_hosts=["khanacademy.org"],
    )

    assert result.text == "Watch https://www.khanacademy.org/math/fractions, then see [link removed]."
    assert result.notes == ["redacted 1 link not on LLM_URL_ALLOW_LIST"]


def test_the_allow_list_comes_from_settings(settings):
    settings.LLM_URL_ALLOW_LIST = ["example.org"]

    assert filter_reply("See www.example.org/help.").text == "See www.example.org/help."
    assert filter_reply("See www.example.com/help.").text == "See [link removed]."


def test_phone_numbers_in_common_formats_are_redacted():
    result = filter_reply("Call +44 (0)20 7946 0958, 555-123-4567 or 0612345678.", allowed_hosts=[])

    assert result.text == "Call [phone removed], [phone removed] or [phone removed]."
    assert result.notes == ["redacted 3 phone numbers"]


def roster() -> Pseudonyms:
    return Pseudonyms.for_students(
        [
            (11, "Maria", "Lopez", "maria.lopez@school.org"),
            (12, "Will", "Young", "wy@school.org"),
            (13, "Sam", "Lee", ""),
            (14, "Sam", "Ortiz", ""),
        ]
    )


def test_mask_replaces_names_and_emails_and_unmask_restores_names():
    pseudonyms = roster()

    masked = pseudonyms.mask(
        "MARIA LOPEZ (maria.lopez@school.org) asked lopez's friend Will Young; other@home.net too."
    )

    assert masked == "Student A (Student A) asked Student A's friend Student B; [email] too."
    assert (
        pseudonyms.unmask(masked)
        == "Maria Lopez (Maria Lopez) asked Maria Lopez's friend Will Young; [email] too."
    )


def test_a_shared_first_name_is_not_guessed_and_a_full_name_still_wins():
    assert roster().mask("Sam and Sam Ortiz") == "[name] and Student D"


def test_a_name_that_is_a_common_word_is_masked_only_when_capitalised():
    assert roster().mask("You will see Will today.") == "You will see Student B today."


def test_labels_go_past_z_and_unmask_does_not_confuse_them():
    pseudonyms = Pseudonyms.for_students([(n, f"First{n}", f"Last{n}", "") for n in range(28)])

    assert pseudonyms.pseudonym_for(27) == "Student AB"
    assert pseudonyms.unmask("Student AB and Student A") == "First27 Last27 and First0 Last0"
    assert pseudonyms.student_id_for("Student AB") == 27


@pytest.mark.parametrize(
    ("input_schema", "complaint"),
    [
        ({"type": "object", "properties": {}}, "additionalProperties"),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string", "pattern": "x"}},
                "additionalProperties": False,
            },
            "pattern",
        ),
        (
            {"type": "object", "properties": {}, "required": ["a"], "additionalProperties": False},
            "unknown properties",
        ),
        ({"type": "string"}, "must describe an object"),
    ],
)
def test_a_tool_schema_outside_the_strict_subset_is_refused_when_declared(input_schema, complaint):
    with pytest.raises(ValueError, match=complaint):
        Tool(name="t", description="d", input_schema=input_schema)


def test_problems_lists_every_path_without_echoing_values():
    tool_schema = {
        "type": "object",
        "properties": {
            "sessions": {
                "type": "array",
                "maxItems": 2,
                "items": {
                    "type": "object",
                    "properties": {"minutes": {"type": "integer", "minimum": 5}, "ok": {"type": "boolean"}},
                    "required": ["minutes"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["sessions"],
        "additionalProperties": False,
    }

    found = schema.problems({"sessions": [{"minutes": 1}, {"minutes": True, "ok": 1}, {}]}, tool_schema)

    assert found == [
        "$.sessions: must have at most 2 items",
        "$.sessions[0].minutes: must be at least 5",
        "$.sessions[1].minutes: expected integer, got boolean",
        "$.sessions[1].ok: expected boolean, got integer",
        "$.sessions[2].minutes: is required but missing",
    ]
