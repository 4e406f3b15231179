"""Doctor/patient roles from diarization labels and from what each segment says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clinscribe.notes.model import Speaker
from clinscribe.pipeline.speakers import assign_roles
from clinscribe.providers.stt.base import Segment

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

CONSULTATION = Path(__file__).parent.parent / "data" / "consultation_en.json"

# (true role, text) of a short consultation.
DIALOGUE: list[tuple[Speaker, str]] = [
    ("doctor", "Hello, what brings you in today?"),
    ("patient", "I've been having headaches since last week."),
    ("doctor", "Do you get them every day?"),
    ("patient", "Yes, mostly in the evening. My neck hurts too."),
    ("doctor", "Your blood pressure is 150 over 95."),
    ("patient", "Is that bad?"),
    ("doctor", "I will prescribe amlodipine 5 milligrams and we'll follow up in two weeks."),
    ("patient", "Thank you."),
]


def segments_of(dialogue: list[tuple[Speaker, str]], ids: dict[str, str] | None) -> list[Segment]:
    """Consecutive 2-second segments; ``ids`` maps true role to diarization label (None: none)."""
    return [
        Segment(
            start=2.0 * i,
            end=2.0 * i + 1.5,
            text=text,
            speaker_id=None if ids is None else ids[role],
        )
        for i, (role, text) in enumerate(dialogue)
    ]


def roles(segments: list[Segment]) -> list[Speaker]:
    return [segment.speaker for segment in assign_roles(segments)]


@pytest.mark.parametrize("first_speaker", ["doctor", "patient"])
def test_diarized_dialogue_gets_right_roles_whoever_speaks_first(first_speaker: str) -> None:
    dialogue = DIALOGUE if first_speaker == "doctor" else DIALOGUE[1:]
    assert dialogue[0][0] == first_speaker
    # Label "0" always goes to whoever speaks first, as diarizers do.
    ids = {first_speaker: "0", ("patient" if first_speaker == "doctor" else "doctor"): "1"}
    assert roles(segments_of(dialogue, ids)) == [role for role, _ in dialogue]


def test_swapped_ids_swap_roles() -> None:
    straight = roles(segments_of(DIALOGUE, {"doctor": "0", "patient": "1"}))
    swapped_segments = segments_of(DIALOGUE, {"doctor": "1", "patient": "0"})
    swapped = assign_roles(swapped_segments)
    assert straight == [role for role, _ in DIALOGUE]
    by_id = {segment.speaker_id: segment.speaker for segment in swapped}
    assert by_id == {"1": "doctor", "0": "patient"}


def test_close_scores_leave_everyone_unknown() -> None:
    # Both speakers ask one question and say nothing else telling.
    dialogue: list[tuple[Speaker, str]] = [
        ("doctor", "How are things?"),
        ("patient", "How are things?"),
        ("doctor", "Fine."),
        ("patient", "Fine."),
    ]
    assert roles(segments_of(dialogue, {"doctor": "0", "patient": "1"})) == ["unknown"] * 4
    # One point ahead is still below the 2-point margin.
    dialogue[2] = ("doctor", "Anything else?")
    assert roles(segments_of(dialogue, {"doctor": "0", "patient": "1"})) == ["unknown"] * 4
    # Two points ahead decides it.
    dialogue[2] = ("doctor", "Let me know. Anything else?")
    assert roles(segments_of(dialogue, {"doctor": "0", "patient": "1"})) == [
        role for role, _ in dialogue
    ]


def test_one_speaker_stays_unknown() -> None:
    segments = [Segment(0.0, 1.0, "Have you had a fever?", speaker_id="0")] * 3
    assert roles(segments) == ["unknown"] * 3


def test_third_speaker_is_other() -> None:
    dialogue = [*DIALOGUE, ("other", "Doctor, your next patient is here.")]
    segments = segments_of(dialogue, {"doctor": "0", "patient": "1", "other": "2"})
    assert roles(segments) == [role for role, _ in dialogue]


def test_undiarized_strong_cues_are_labelled_and_the_rest_unknown() -> None:
    cases: list[tuple[str, Speaker]] = [
        ("Have you had any chest pain?", "doctor"),
        ("Any allergies?", "doctor"),
        ("Your temperature is 37.9 degrees.", "doctor"),
        ("I will prescribe ibuprofen.", "doctor"),
        ("I have had this cough for a week.", "patient"),
        ("My left knee hurts when I walk.", "patient"),
        ("Do you think it is serious?", "unknown"),
        ("Is it serious?", "unknown"),
        ("Okay.", "unknown"),
        ("Thank you, doctor.", "unknown"),
        ("My knee hurts, have you seen this before?", "unknown"),
    ]
    segments = [Segment(float(i), i + 0.5, text) for i, (text, _) in enumerate(cases)]
    assert roles(segments) == [expected for _, expected in cases]


@pytest.mark.parametrize("ids", [None, {"doctor": "A", "patient": "B"}])
def test_text_and_times_are_unchanged(ids: dict[str, str] | None) -> None:
    segments = segments_of(DIALOGUE, ids)
    result = assign_roles(segments)
    assert [(s.start, s.end, s.text, s.speaker_id) for s in result] == [
        (s.start, s.end, s.text, s.speaker_id) for s in segments
    ]
    assert all(s.speaker == "unknown" for s in segments)  # inputs untouched


def test_existing_role_is_ignored_without_evidence() -> None:
    segment = Segment(0.0, 1.0, "Okay.", speaker="doctor")
    assert roles([segment]) == ["unknown"]


def consultation_turns() -> list[dict[str, object]]:
    turns: list[dict[str, object]] = json.loads(CONSULTATION.read_text())["turns"]
    return turns


def test_consultation_with_diarization_gets_at_least_90_percent_right() -> None:
    turns = consultation_turns()
    segments = [
        Segment(
            float(str(t["start"])),
            float(str(t["end"])),
            str(t["text"]),
            speaker_id="0" if t["speaker"] == "doctor" else "1",
        )
        for t in turns
    ]
    right = sum(role == t["speaker"] for role, t in zip(roles(segments), turns, strict=True))
    assert right >= 0.9 * len(turns)


def test_consultation_without_diarization_is_never_wrong_and_mostly_labelled() -> None:
    turns = consultation_turns()
    segments = [
        Segment(float(str(t["start"])), float(str(t["end"])), str(t["text"])) for t in turns
    ]
    guessed = roles(segments)
    wrong = [
        (t["text"], role)
        for role, t in zip(guessed, turns, strict=True)
        if role != "unknown" and role != t["speaker"]
    ]
    assert wrong == []
    assert sum(role != "unknown" for role in guessed) >= 0.4 * len(turns)
