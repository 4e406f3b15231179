"""Verification v1: citations, numbers and negation checked against the cited utterances."""

from __future__ import annotations

from decimal import Decimal

import pytest

from clinscribe.notes.evidence import numbers_in, verify_note
from clinscribe.notes.extractive import build_note
from clinscribe.notes.model import NoteDraft, NoteSection, NoteSentence, Utterance
from clinscribe.notes.templates import SOAP

UTTERANCES = [
    Utterance("u1", 0.0, 2.0, "unknown", "Do you have any chest pain?"),
    Utterance("u2", 2.0, 4.0, "unknown", "No, no chest pain."),
    Utterance("u3", 4.0, 6.0, "unknown", "Your temperature is 38.2 and blood pressure 128/82."),
    Utterance(
        "u4", 6.0, 9.0, "unknown", "I'll prescribe amoxicillin 500 milligrams three times a day."
    ),
    Utterance("u5", 9.0, 11.0, "unknown", "I have had a cough for three days."),
    Utterance("u6", 11.0, 13.0, "unknown", "I don't smoke."),
    Utterance("u7", 13.0, 15.0, "unknown", "Blood pressure is one twenty eight over eighty two."),
]


def single(text: str, evidence: list[str], flags: list[str] | None = None) -> NoteDraft:
    sentence = NoteSentence(text=text, evidence=evidence, flags=list(flags or []))
    return NoteDraft(
        template="soap", writer="hand", sections=[NoteSection("plan", "Plan", [sentence])]
    )


def flags_of(text: str, evidence: list[str], flags: list[str] | None = None) -> list[str]:
    draft = verify_note(single(text, evidence, flags), UTTERANCES)
    return draft.sections[0].sentences[0].flags


def test_an_untouched_extractive_note_has_no_flags() -> None:
    draft = build_note(UTTERANCES, SOAP)
    assert sum(len(s.sentences) for s in draft.sections) == 6
    verified = verify_note(draft, UTTERANCES)
    assert verified is draft  # flags set in place, the same draft returned
    assert [s.flags for section in draft.sections for s in section.sentences] == [[]] * 6


def test_a_hand_edited_dose_is_unsupported() -> None:
    original = "I'll prescribe amoxicillin 500 milligrams three times a day."
    assert flags_of(original, ["u4"]) == []
    assert flags_of(original.replace("500", "250"), ["u4"]) == ["unsupported"]
    assert flags_of("Amoxicillin 250 milligrams.", ["u4"]) == ["unsupported"]
    assert flags_of("Amoxicillin 500 milligrams five times a day.", ["u4"]) == ["unsupported"]


@pytest.mark.parametrize(
    ("text", "flags"),
    [
        ("Temperature 38.2, BP 128/82.", []),
        ("Temperature 38.9, BP 128/82.", ["unsupported"]),  # changed decimal
        ("Temperature 38.2, BP 128/85.", ["unsupported"]),  # changed half of a ratio
        ("Temperature 38.", ["unsupported"]),  # 38 is not 38.2
        ("Temperature thirty eight point two.", []),  # number words match digits
    ],
)
def test_numbers_must_appear_in_the_evidence(text: str, flags: list[str]) -> None:
    assert flags_of(text, ["u3"]) == flags


def test_spoken_numbers_support_digits_and_back() -> None:
    assert flags_of("BP 128/82.", ["u7"]) == []
    assert flags_of("BP 138/82.", ["u7"]) == ["unsupported"]
    assert flags_of("Cough for 3 days.", ["u5"]) == []
    assert flags_of("Cough for 5 days.", ["u5"]) == ["unsupported"]
    assert flags_of("Cough for five days.", ["u5"]) == ["unsupported"]
    assert flags_of("The left one is worse for three days.", ["u5"]) == []  # "one" as a pronoun


def test_numbers_are_read_from_digits_and_words() -> None:
    expected = {Decimal(x) for x in ("500", "38.2", "128", "82", "1000")}
    assert numbers_in("500 mg, 38.2, 128/82 and 1,000 units") == expected
    assert numbers_in("five hundred and fifty") == numbers_in("550")
    assert numbers_in("thirty-eight point two") == numbers_in("38.2")
    assert numbers_in("I have two. Three days ago") == numbers_in("2 3")


def test_a_removed_negation_is_unsupported() -> None:
    assert flags_of("No, no chest pain.", ["u2"]) == []
    assert flags_of("Chest pain.", ["u2"]) == ["unsupported"]
    assert flags_of("Reports chest pain.", ["u1", "u2"]) == ["unsupported"]
    assert flags_of("I smoke.", ["u6"]) == ["unsupported"]
    assert flags_of("I don't smoke.", ["u6"]) == []


def test_an_added_negation_is_unsupported() -> None:
    assert flags_of("I have not had a cough.", ["u5"]) == ["unsupported"]
    assert flags_of("Denies cough.", ["u5"]) == ["unsupported"]
    assert flags_of("Patient denies chest pain.", ["u2"]) == []  # evidence negates too
    assert flags_of("Cough without fever for three days.", ["u5"]) == ["unsupported"]


def test_citations_must_exist() -> None:
    assert flags_of("I have had a cough for three days.", ["u99"]) == ["no_evidence"]
    assert flags_of("I have had a cough for three days.", []) == ["no_evidence"]
    assert flags_of("I have had a cough for three days.", ["u5", "u99"]) == ["no_evidence"]


def test_flags_are_unique_sorted_and_recomputed_on_each_run() -> None:
    # A valid id beside a bogus one, and a changed number: both flags, in order.
    assert flags_of("Cough for 9 days.", ["u99", "u5"]) == ["no_evidence", "unsupported"]
    # Earlier verifier flags are dropped once the sentence is fixed; a reviewer's flag stays.
    stale = ["unsupported", "needs_review", "unsupported", "no_evidence"]
    assert flags_of("I have had a cough for three days.", ["u5"], stale) == ["needs_review"]
    draft = single("Amoxicillin 250 milligrams.", ["u4"], ["unsupported"])
    verify_note(draft, UTTERANCES)
    verify_note(draft, UTTERANCES)
    assert draft.sections[0].sentences[0].flags == ["unsupported"]


def test_curly_and_tokenised_contractions_count_as_negation() -> None:
    utterances = [
        Utterance("t1", 0.0, 1.0, "unknown", "i do n't have any fever ."),
        Utterance("t2", 1.0, 2.0, "unknown", "I don\u2019t have any fever."),
    ]
    for uid in ("t1", "t2"):
        draft = verify_note(single("No fever.", [uid]), utterances)
        assert draft.sections[0].sentences[0].flags == []
        draft = verify_note(single("Fever.", [uid]), utterances)
        assert draft.sections[0].sentences[0].flags == ["unsupported"]
