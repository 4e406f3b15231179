"""The extractive writer: sections, question/answer pairing, and the never-invents property."""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

import pytest

from clinscribe.notes.evidence import verify_note
from clinscribe.notes.extractive import (
    QA_CONNECTIVE_WORDS,
    SECTION_PRIORITY,
    ExtractiveNoteWriter,
    build_note,
    classify_sentence,
    split_sentences,
    tidy_sentence,
)
from clinscribe.notes.model import NoteDraft, NoteWriter, Speaker, Utterance
from clinscribe.notes.templates import APSO, SOAP

ACI_VALID = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "aci-bench"
    / "challenge_data" / "valid.csv"
)  # fmt: skip


def transcript(*texts: str, gap: float = 0.0, speaker: Speaker = "unknown") -> list[Utterance]:
    """Utterances u1, u2, ... two seconds each; local whisper gives no speaker, hence unknown."""
    return [
        Utterance(f"u{i}", 2.0 * (i - 1) + gap * (i - 1), 2.0 * i + gap * (i - 1), speaker, text)
        for i, text in enumerate(texts, start=1)
    ]


# Whisper-style segments: punctuated, capitalised, one cut mid-sentence (u14 -> u15).
CONSULTATION = transcript(
    "Good morning, please have a seat.",
    "Good morning, doctor.",
    "So what brings you in today?",
    "I have had a cough for 3 days and it's getting worse at night.",
    "Any fever?",
    "Yes, since yesterday.",
    "Do you have any chest pain?",
    "No, no chest pain.",
    "Are you allergic to any medicines?",
    "I'm allergic to sulfa drugs.",
    "Okay, let me check you. Your temperature is 38.2 degrees and your blood pressure is 128/82.",
    "Oxygen saturation is 97 percent.",
    "On examination I can hear some wheezing in both lungs.",
    "So this looks like acute bronchitis, probably a viral infection",
    "but with the fever I want to cover a bacterial infection too.",
    "I'm going to prescribe amoxicillin 500 milligrams three times a day for seven days.",
    "Drink plenty of fluids and get some rest.",
    "If you're not better in a week, come back and see me.",
    "Okay, thank you, doctor.",
    "You're welcome. Take care.",
)


def words(text: str) -> list[str]:
    """Lowercased words with punctuation stripped ("38.2" -> "38", "2" on both sides alike)."""
    return re.findall(r"[a-z0-9]+", text.lower())


def texts(draft: NoteDraft, key: str) -> list[str]:
    return [sentence.text for sentence in draft.section(key).sentences]


def assert_never_invents(draft: NoteDraft, utterances: list[Utterance]) -> None:
    """Every sentence cites existing utterances and uses only words found in them."""
    by_id = {u.id: u for u in utterances}
    for section in draft.sections:
        for sentence in section.sentences:
            assert sentence.evidence, sentence.text
            assert all(uid in by_id for uid in sentence.evidence), sentence.evidence
            cited = {w for uid in sentence.evidence for w in words(by_id[uid].text)}
            own = [w for w in words(sentence.text) if w not in QA_CONNECTIVE_WORDS]
            assert own, sentence.text
            invented = [w for w in own if w not in cited]
            assert not invented, (sentence.text, invented)


@pytest.fixture
def note() -> NoteDraft:
    return build_note(CONSULTATION, SOAP)


def test_sections_follow_the_soap_template(note: NoteDraft) -> None:
    assert note.template == "soap"
    assert note.writer == "extractive"
    assert [(s.key, s.title) for s in note.sections] == [
        ("subjective", "Subjective"),
        ("objective", "Objective"),
        ("assessment", "Assessment"),
        ("plan", "Plan"),
    ]


def test_vitals_and_examination_land_in_objective(note: NoteDraft) -> None:
    assert texts(note, "objective") == [
        "Your temperature is 38.2 degrees and your blood pressure is 128/82.",
        "Oxygen saturation is 97 percent.",
        "On examination I can hear some wheezing in both lungs.",
    ]
    assert note.section("objective").sentences[0].evidence == ["u11"]


def test_the_prescription_lands_in_plan(note: NoteDraft) -> None:
    plan = texts(note, "plan")
    prescription = [t for t in plan if "amoxicillin 500 milligrams three times a day" in t]
    assert len(prescription) == 1
    assert "Drink plenty of fluids and get some rest." in plan
    assert "If you're not better in a week, come back and see me." in plan


def test_a_sentence_cut_across_segments_is_rejoined_into_the_assessment(note: NoteDraft) -> None:
    [assessment] = note.section("assessment").sentences
    assert "this looks like acute bronchitis" in assessment.text.lower()
    assert assessment.text.startswith("This looks like")  # leading "So" dropped
    assert assessment.text.endswith("bacterial infection too.")
    assert assessment.evidence == ["u14", "u15"]


def test_history_lands_in_subjective_and_short_answers_pair_with_their_question(
    note: NoteDraft,
) -> None:
    subjective = note.section("subjective").sentences
    assert [(s.text, s.evidence) for s in subjective] == [
        ("I have had a cough for 3 days and it's getting worse at night.", ["u4"]),
        ('Asked "Any fever?" \u2014 answered "Yes, since yesterday."', ["u5", "u6"]),
        ('Asked "Do you have any chest pain?" \u2014 answered "No, no chest pain."', ["u7", "u8"]),
        (
            'Asked "Are you allergic to any medicines?" \u2014 answered '
            '"I\'m allergic to sulfa drugs."',
            ["u9", "u10"],
        ),
    ]


def test_greetings_thanks_and_bare_questions_are_dropped(note: NoteDraft) -> None:
    everything = " ".join(s.text for section in note.sections for s in section.sentences)
    for small_talk in ("Good morning", "thank you", "welcome", "Take care", "brings you in"):
        assert small_talk not in everything
    bare_questions = [
        s.text
        for section in note.sections
        for s in section.sentences
        if s.text.endswith("?") and not s.text.startswith("Asked")
    ]
    assert bare_questions == []


def test_the_whole_note_never_invents(note: NoteDraft) -> None:
    assert_never_invents(note, CONSULTATION)
    assert [len(s.sentences) for s in note.sections] == [4, 3, 1, 3]


def test_the_untouched_note_passes_verification(note: NoteDraft) -> None:
    verified = verify_note(note, CONSULTATION)
    assert [s.flags for section in verified.sections for s in section.sentences] == [[]] * 11


def test_speaker_labels_do_not_change_the_note() -> None:
    labelled = [
        Utterance(u.id, u.start, u.end, "doctor" if i % 2 else "patient", u.text)
        for i, u in enumerate(CONSULTATION)
    ]
    assert build_note(labelled, SOAP) == build_note(CONSULTATION, SOAP)


def test_apso_template_orders_sections_and_keeps_the_content(note: NoteDraft) -> None:
    apso = build_note(CONSULTATION, APSO)
    assert apso.template == "apso"
    assert [s.key for s in apso.sections] == ["assessment", "plan", "subjective", "objective"]
    assert [s.title for s in apso.sections] == ["Assessment", "Plan", "Subjective", "Objective"]
    for key in SECTION_PRIORITY:
        assert texts(apso, key) == texts(note, key)


async def test_empty_transcript_gives_four_empty_sections() -> None:
    writer: NoteWriter = ExtractiveNoteWriter()
    draft = await writer.write([], SOAP)
    assert writer.name == "extractive"
    assert [(s.key, s.sentences) for s in draft.sections] == [
        ("subjective", []),
        ("objective", []),
        ("assessment", []),
        ("plan", []),
    ]


async def test_async_write_matches_build_note() -> None:
    assert await ExtractiveNoteWriter().write(CONSULTATION, SOAP) == build_note(CONSULTATION, SOAP)


def test_split_keeps_decimals_and_titles_whole() -> None:
    assert split_sentences("Temp 38.2 today. Dr. Rao will see you! Any pain? yes") == [
        "Temp 38.2 today.",
        "Dr. Rao will see you!",
        "Any pain?",
        "yes",
    ]
    assert split_sentences("i feel kinda ... tired") == ["i feel kinda ... tired"]
    assert split_sentences("   ") == []


def test_tidy_strips_filler_and_only_adds_case_and_a_period() -> None:
    assert (
        tidy_sentence("  um, so,  okay   i've been  feeling dizzy ") == "I've been feeling dizzy."
    )
    assert tidy_sentence("pain , since monday .") == "Pain, since monday."
    assert tidy_sentence("Uh... okay.") == ""


@pytest.mark.parametrize(
    ("sentence", "section"),
    [
        # Priority objective > plan > assessment > subjective, each pair matching both rules.
        ("Your blood pressure is 150 over 95, so I'll start you on amlodipine 5 mg.", "objective"),
        ("I think this is bronchitis, so I'll prescribe amoxicillin.", "plan"),
        ("It looks like the pain is coming from a muscle strain.", "assessment"),
        ("The pain started two days ago.", "subjective"),
        ("Pulse is 88 and respiratory rate 16.", "objective"),
        ("There is some swelling and tenderness over the ankle.", "objective"),
        ("Your chest x-ray came back normal.", "objective"),
        ("Take one tablet twice a day with food.", "plan"),
        ("We'll order a blood test and I'll refer you to a cardiologist.", "plan"),
        ("This is consistent with a urinary tract infection.", "assessment"),
        ("I think you have tonsillitis.", "assessment"),
        ("I've been taking metformin 500 mg for years.", "subjective"),
        ("My knee is swollen since the fall.", "subjective"),
        ("I have a history of arthritis.", "subjective"),
        ("Never smoked.", "subjective"),
        ("The weather was nice this weekend.", None),
    ],
)
def test_classification_rules_and_their_priority(sentence: str, section: str | None) -> None:
    assert classify_sentence(sentence) == section


def test_priority_order_is_the_documented_one() -> None:
    assert SECTION_PRIORITY == ("objective", "plan", "assessment", "subjective")


def test_a_repeated_sentence_is_kept_once_and_cites_every_mention() -> None:
    draft = build_note(
        transcript("I have had a cough for 3 days.", "Okay.", "I have had a cough for 3 days."),
        SOAP,
    )
    assert [(s.text, s.evidence) for s in draft.section("subjective").sentences] == [
        ("I have had a cough for 3 days.", ["u1", "u3"])
    ]


def test_a_fragment_joins_the_next_segment_but_bare_filler_is_not_cited() -> None:
    draft = build_note(transcript("uh,", "I think this looks like", "acute bronchitis."), SOAP)
    assert [(s.text, s.evidence) for s in draft.section("assessment").sentences] == [
        ("I think this looks like acute bronchitis.", ["u2", "u3"])
    ]


def test_fragments_far_apart_in_time_are_not_joined() -> None:
    draft = build_note(transcript("I think this looks like", "acute bronchitis.", gap=5.0), SOAP)
    assert [(s.text, s.evidence) for s in draft.section("assessment").sentences] == [
        ("I think this looks like.", ["u1"]),
        ("Acute bronchitis.", ["u2"]),  # an "-itis" word on its own still reads as a diagnosis
    ]


def test_short_answers_need_a_clinical_question() -> None:
    draft = build_note(
        transcript(
            "Yes.",  # no question before it
            "Do you have any questions?",
            "No.",  # answers a question about nothing clinical
            "Any vomiting?",
            "Mm-hmm.",  # filler: the question stays open for the real answer
            "Okay.",  # an acknowledgement, not an answer
            "Any diarrhoea?",
            "Not really, no.",
        ),
        SOAP,
    )
    assert [(s.text, s.evidence) for s in draft.section("subjective").sentences] == [
        ('Asked "Any diarrhoea?" \u2014 answered "Not really, no."', ["u7", "u8"])
    ]


def test_question_and_answer_inside_one_segment_cite_it_once() -> None:
    draft = build_note(transcript("Any fever? Yes, since yesterday."), SOAP)
    assert [(s.text, s.evidence) for s in draft.section("subjective").sentences] == [
        ('Asked "Any fever?" \u2014 answered "Yes, since yesterday."', ["u1"])
    ]


# Property-style: random but seeded transcripts, bounded, all must keep the invariants.
PHRASES = (
    "I have had a headache for 2 days.",
    "The pain is worse in the morning.",
    "Do you have any fever?",
    "No.",
    "Yes, a little.",
    "Your pulse is 92 and temperature 37.8 degrees.",
    "Blood pressure is 140 over 90.",
    "There is tenderness in the right lower abdomen.",
    "This looks like appendicitis, I think it's likely.",
    "I'll refer you to the surgeon today and order a blood test.",
    "Take paracetamol 650 mg every 6 hours.",
    "Um, okay, thank you.",
    "My mother had diabetes.",
    "Dr. Shah will see you next week.",
    "So, any allergies?",
    "None that I know of.",
)


def random_transcript(rng: random.Random) -> list[Utterance]:
    chunks: list[str] = []
    for phrase in rng.choices(PHRASES, k=rng.randint(1, 12)):
        phrase = rng.choice((phrase, phrase.lower(), f"  uh, {phrase} "))
        parts = phrase.split()
        if len(parts) > 3 and rng.random() < 0.3:  # whisper cuts the sentence in two
            cut = rng.randint(1, len(parts) - 1)
            chunks += [" ".join(parts[:cut]).rstrip(".?!"), " ".join(parts[cut:])]
        elif chunks and rng.random() < 0.3:  # or puts two sentences in one segment
            chunks[-1] = f"{chunks[-1]} {phrase}"
        else:
            chunks.append(phrase)
    return transcript(*chunks, gap=rng.choice((0.0, 0.5, 3.0)))


@pytest.mark.parametrize("seed", range(40))
def test_random_transcripts_keep_the_invariants(seed: int) -> None:
    utterances = random_transcript(random.Random(seed))
    draft = build_note(utterances, SOAP)
    assert_never_invents(draft, utterances)
    assert [s.key for s in draft.sections] == ["subjective", "objective", "assessment", "plan"]
    all_texts = [s.text.lower() for section in draft.sections for s in section.sentences]
    assert len(all_texts) == len(set(all_texts))  # deduplicated
    assert build_note(utterances, SOAP) == draft  # deterministic
    flags = [
        s.flags for section in verify_note(draft, utterances).sections for s in section.sentences
    ]
    assert all(f == [] for f in flags)


def aci_dialogues(limit: int) -> list[list[Utterance]]:
    """The first dialogues of ACI-Bench's valid split, one utterance per speaker turn."""
    with ACI_VALID.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:limit]
    dialogues = []
    for row in rows:
        turns = [line.strip() for line in row["dialogue"].splitlines() if line.strip()]
        texts_ = [re.sub(r"^\[(?:doctor|patient)\]\s*", "", turn) for turn in turns]
        dialogues.append(transcript(*texts_))
    return dialogues


def test_aci_bench_dialogues_give_cited_notes_with_all_four_sections() -> None:
    if not ACI_VALID.exists():
        pytest.skip(f"ACI-Bench data not found at {ACI_VALID}")
    dialogues = aci_dialogues(5)
    assert len(dialogues) == 5
    complete = 0
    for utterances in dialogues:
        draft = verify_note(build_note(utterances, SOAP), utterances)
        assert_never_invents(draft, utterances)
        assert all("no_evidence" not in s.flags for sec in draft.sections for s in sec.sentences)
        complete += all(section.sentences for section in draft.sections)
    assert complete >= 3
