"""Omissions: salient utterances no sentence cites, listed by id and kind, never by text."""

from __future__ import annotations

import pytest

from clinscribe.notes.evidence import verify_note
from clinscribe.notes.model import NoteDraft, NoteSection, NoteSentence, Utterance
from clinscribe.notes.omissions import REASONS, find_omissions, salient_kind

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

UTTERANCES = [
    Utterance("u1", 0.0, 1.0, "doctor", "Hi, how are you today?"),
    Utterance("u2", 1.0, 2.0, "patient", "I've had a cough and a fever since Monday."),
    Utterance("u3", 2.0, 3.0, "doctor", "Your temperature is 38.2 and your oxygen is 97 percent."),
    Utterance("u4", 3.0, 4.0, "doctor", "I'll start you on amoxicillin 500 milligrams."),
    Utterance("u5", 4.0, 5.0, "doctor", "Your high blood pressure is well controlled."),
    Utterance("u6", 5.0, 6.0, "doctor", "Let's get a chest x-ray to be safe."),
    Utterance("u7", 6.0, 7.0, "patient", "Thank you, doctor."),
]


def draft_citing(*ids: str) -> NoteDraft:
    sentences = [NoteSentence(f"Sentence citing {uid}.", [uid]) for uid in ids]
    return NoteDraft("soap", "hand", [NoteSection("subjective", "Subjective", sentences)])


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("I'll start you on amoxicillin 500 milligrams.", "medication"),
        ("She takes Tylenol when it hurts.", "medication"),  # a brand name
        ("Your temperature is 38.2 and your oxygen is 97 percent.", "vital"),
        ("Blood pressure today is one twenty over eighty.", "vital"),
        ("Your high blood pressure is well controlled.", "diagnosis"),
        ("I've had a cough and a fever since Monday.", "symptom"),
        ("Let's get a chest x-ray to be safe.", "plan"),
        ("I'll refer you to physical therapy.", "plan"),
        ("Thank you, doctor.", None),
        ("Hi, how are you today?", None),
        ("I was there for three days.", None),  # a duration is not a measurement
    ],
)
def test_salient_kinds(text: str, kind: str | None) -> None:
    assert salient_kind(text) == kind


def test_uncited_salient_utterances_are_listed_in_transcript_order() -> None:
    omissions = find_omissions(draft_citing("u2"), UTTERANCES)
    assert [(o["utterance_id"], o["kind"]) for o in omissions] == [
        ("u3", "vital"),
        ("u4", "medication"),
        ("u5", "diagnosis"),
        ("u6", "plan"),
    ]
    assert find_omissions(draft_citing("u2", "u3", "u4", "u5", "u6"), UTTERANCES) == []


def test_an_omission_holds_an_id_a_kind_and_a_fixed_reason_never_transcript_text() -> None:
    omissions = find_omissions(draft_citing(), UTTERANCES)
    assert omissions
    transcript_words = {w.strip(".,?").lower() for u in UTTERANCES for w in u.text.split()}
    for omission in omissions:
        assert set(omission) == {"utterance_id", "kind", "reason"}
        assert omission["reason"] == REASONS[str(omission["kind"])]
        reason_words = set(str(omission["reason"]).split())
        assert not reason_words & {"amoxicillin", "cough", "fever", "38.2", "x-ray"}
    assert "amoxicillin" in transcript_words  # the check above could fail


def test_every_verified_note_carries_its_omissions_recomputed_on_each_run() -> None:
    draft = draft_citing("u2", "u3", "u5", "u6")
    verify_note(draft, UTTERANCES)
    assert draft.omissions == [
        {"utterance_id": "u4", "kind": "medication", "reason": REASONS["medication"]}
    ]
    # The clinician adds a sentence citing the prescription: the omission goes away.
    draft.sections[0].sentences.append(NoteSentence("Amoxicillin 500 mg.", ["u4"]))
    verify_note(draft, UTTERANCES)
    assert draft.omissions == []
    assert draft.sections[0].sentences[-1].flags == []
