"""Verification v2: citations, numbers, units, doses, drugs, findings, negation and uncertainty
checked against the cited utterances."""

from __future__ import annotations

from decimal import Decimal

import pytest

from clinscribe.notes.evidence import numbers_in, sentence_problems, verify_note
from clinscribe.notes.extractive import build_note
from clinscribe.notes.model import NoteDraft, NoteSection, NoteSentence, Utterance
from clinscribe.notes.templates import SOAP

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

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


# --- v2: one test per kind of error, and the rewordings that must pass -------------------------
def problems(text: str, *evidence: str) -> list[str]:
    return sentence_problems(text, list(evidence))


TEMPERATURE = "Your temperature is thirty eight point two today."
BLOOD_PRESSURE = "Your blood pressure is one twenty over eighty."
MEDICINES = (
    "I'll increase your lisinopril to 40 milligrams a day and start lasix 20 milligrams a day."
)


@pytest.mark.parametrize(
    ("text", "evidence"),
    [
        ("Temperature 38.2 degrees.", (TEMPERATURE,)),  # spoken number; the unit implied
        ("Temperature 38.2.", (TEMPERATURE,)),
        ("BP 120/80.", (BLOOD_PRESSURE,)),  # "one twenty over eighty"
        ("BP 120/80 mmHg.", (BLOOD_PRESSURE,)),
        ("Lisinopril 40 mg daily.", (MEDICINES,)),  # mg = milligrams
        ("Furosemide 20 mg daily.", (MEDICINES,)),  # generic name of Lasix
        ("Cough for 5-10 days.", ("I've had a cough for five to ten days.",)),  # a range
        ("Take it twice a day.", ("Take it two times a day.",)),
        ("Possible pneumonia.", ("It could be pneumonia.",)),
        ("Denies chest pain.", ("Do you have any chest pain?", "No.")),  # answered "no"
        ("Patient does not smoke.", ("I don't smoke.",)),
        ("Denies smoking.", ("I don't smoke.",)),
        ("Right knee pain.", ("My right knee hurts when I climb stairs.",)),
        ("Hypertension, on amlodipine.", ("I have high blood pressure and I take norvasc.",)),
        ("Dyspnea on exertion.", ("I get short of breath when I walk uphill.",)),
        ('Patient said "no, no surgery".', ("Um, I, I just said no, no surgery.",)),  # filler
    ],
)
def test_faithful_rewordings_are_not_flagged(text: str, evidence: tuple[str, ...]) -> None:
    assert problems(text, *evidence) == []


def test_question_answer_pairs_of_the_extractive_writer_are_not_flagged() -> None:
    question, answer = "Do you have any chest pain?", "No, not that I've noticed."
    pair = f'Asked "{question}" \u2014 answered "{answer}"'
    assert problems(pair, question, answer) == []
    # The quotes hold the transcript's words: nothing else may be inside them.
    altered = f'Asked "{question}" \u2014 answered "Yes, I have."'
    assert problems(altered, question, answer) == ["quote"]
    # Quote marks inside the speech quoted do not confuse the pairing of quotes.
    said = 'I felt like, " what is going on? "'
    pair = f'Asked "{said}" \u2014 answered "I am feeling better."'
    assert problems(pair, said, "And now I am feeling better.") == []


def test_a_changed_number_is_unsupported() -> None:
    assert problems("Temperature 38.8 degrees.", TEMPERATURE) == ["number"]
    assert problems("BP 120/90.", BLOOD_PRESSURE) == ["number"]
    assert problems("Cough for 5 to 12 days.", "I've had a cough for five to ten days.") == [
        "number"
    ]
    assert problems("Take it three times a day.", "Take it two times a day.") == ["number"]


def test_a_changed_unit_is_unsupported() -> None:
    assert problems("Lisinopril 40 mcg daily.", MEDICINES) == ["unit"]
    assert problems("Cough for 5 to 10 weeks.", "I've had a cough for five to ten days.") == [
        "unit"
    ]
    assert problems("Temperature 38.2%.", TEMPERATURE) == ["unit"]
    # A number the evidence pairs with one unit may not take another it also uses elsewhere.
    evidence = "Take 5 milligrams for 10 days, and come back in 5 days."
    assert problems("Take 10 milligrams.", evidence) == ["unit"]


def test_a_changed_dose_is_unsupported_even_when_the_number_is_in_the_evidence() -> None:
    # 20 is in the evidence (the furosemide dose), but not as a lisinopril dose.
    assert problems("Lisinopril 20 mg daily.", MEDICINES) == ["dose"]
    assert problems("Lisinopril 80 mg daily.", MEDICINES) == ["number", "dose"]


def test_a_swapped_or_invented_drug_is_unsupported() -> None:
    evidence = "I take Tylenol 500 milligrams for the pain."
    assert problems("Takes acetaminophen 500 mg for pain.", evidence) == []  # same drug
    assert problems("Takes ibuprofen 500 mg for pain.", evidence) == ["drug"]  # swapped
    assert problems("Takes Tylenol 500 mg and aspirin.", evidence) == ["drug"]  # invented


def test_an_invented_finding_or_side_is_unsupported() -> None:
    evidence = "My right knee hurts when I climb stairs."
    assert problems("Left knee pain.", evidence) == ["finding"]
    assert problems("Right hip pain.", evidence) == ["finding"]
    assert problems("Right knee pain with fever.", evidence) == ["finding"]


def test_a_flipped_negation_is_unsupported() -> None:
    assert problems("Patient smokes.", "I don't smoke.") == ["negation"]
    assert problems("Denies cough.", "I have had a cough for three days.") == ["negation"]
    # The patient's "no" to a question negates what it asked about.
    assert problems("Reports chest pain.", "Do you have any chest pain?", "No.") == ["negation"]
    # "Yes" gives no ground for a denial.
    assert problems("Denies chest pain.", "Do you have any chest pain?", "Yes.") == ["negation"]
    # Pseudo-negations negate nothing: "I don't know" is not a denial.
    assert problems("I know it started on monday.", "I don't know, it started on monday.") == []


def test_a_flipped_uncertainty_is_unsupported() -> None:
    assert problems("Pneumonia.", "It could be pneumonia.") == ["uncertainty"]
    assert problems("Possible pneumonia.", "You have pneumonia.") == ["uncertainty"]
    assert problems("Pneumonia.", "You have pneumonia.") == []


def test_unpunctuated_questions_and_answers_are_read_across_utterances() -> None:
    # ASR without punctuation: the question ends where the doctor's utterance ends.
    asked = "okay so now tell me do you have any numbness or tingling in your toes"
    assert problems("Denies numbness or tingling in toes.", asked, "no") == []
    assert problems("Numbness and tingling in the toes.", asked, "no") == ["negation"]
    # A note sentence that joins the two utterances word for word reads them the same way.
    joined = "Okay so now tell me do you have any numbness or tingling in your toes no."
    assert problems(joined, asked, "no") == []


def test_verify_note_flags_every_sentence_and_lists_omissions() -> None:
    utterances = [
        Utterance("a1", 0.0, 1.0, "doctor", MEDICINES),
        Utterance("a2", 1.0, 2.0, "doctor", TEMPERATURE),
    ]
    sentences = [
        NoteSentence("Lisinopril 40 mg daily.", ["a1"]),
        NoteSentence("Lisinopril 20 mg daily.", ["a1"]),
    ]
    draft = NoteDraft("soap", "hand", [NoteSection("plan", "Plan", sentences)])
    verify_note(draft, utterances)
    assert [s.flags for s in sentences] == [[], ["unsupported"]]
    assert draft.omissions == [
        {
            "utterance_id": "a2",
            "kind": "vital",
            "reason": "states a measurement or vital sign that no sentence cites",
        }
    ]
