"""ACI-Bench: how close does a note writer come to the clinicians' notes?

ACI-Bench (Yim et al., Sci Data 2023, CC BY 4.0) pairs doctor-patient dialogues with full
visit notes. Flow: load a split -> turn each dialogue into utterances -> write a note with the
given ``NoteWriter`` -> verify it -> render it as text -> score it against the reference.

Scoring follows the paper exactly: ROUGE-1/2/L F1 from the ``rouge-score`` package, no stemming,
where L is ``rougeLsum`` over newline-split lines, averaged per note. With these settings the
copy-the-transcript baseline and the shipped BART+FT-SAMSum (division) predictions reproduce the
paper's test1 rows to the second decimal (32.84/12.53/30.61 and 53.46/25.08/48.62).

Besides ROUGE we report what the note engine promises: every sentence cites utterances that
exist, and how many sentences the verifier flags for review.
"""

from __future__ import annotations

import csv
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rouge_score import rouge_scorer

from clinscribe.errors import BadRequest, NotFound
from clinscribe.notes.evidence import verify_note
from clinscribe.notes.extractive import ExtractiveNoteWriter
from clinscribe.notes.model import NoteDraft, NoteTemplate, NoteWriter, Speaker, Utterance
from clinscribe.notes.templates import get_template

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "aci-bench"

# Split name -> file in ``challenge_data/``. test1 is MEDIQA-Chat task B, test2 task C.
SPLIT_FILES: dict[str, str] = {
    "train": "train.csv",
    "valid": "valid.csv",
    "test1": "clinicalnlp_taskB_test1.csv",
    "test2": "clinicalnlp_taskC_test2.csv",
}
# Systems whose outputs ship in ``baseline_predictions/``, rescored as a calibration check.
BASELINE_PREDICTIONS: dict[str, tuple[str, str]] = {
    "test1": (
        "BART+FT-SAMSum (division)",
        "bart-large-xsum-samsum_clinicalnlp_taskB_test1_division_combined.csv",
    ),
    "test2": ("BioBART", "BioBART_clinicalnlp_taskC_test2_full.csv"),
}
# The paper's test1 rows (ROUGE-1, ROUGE-2, ROUGE-L), for side-by-side reports.
PAPER_TEST1: dict[str, tuple[float, float, float]] = {
    "BART+FT-SAMSum (division)": (53.46, 25.08, 48.62),
    "GPT-4": (51.76, 22.58, 45.97),
    "ChatGPT": (47.44, 19.01, 42.47),
    "copy the transcript": (32.84, 12.53, 30.61),
}
TEST1_SIZE = 40
COLUMNS: tuple[str, ...] = ("dataset", "encounter_id", "dialogue", "note")

# "[doctor] text"; ACI-Bench also has "[patient_guest]" (a relative) and a few untagged lines,
# which continue the previous speaker's turn.
_SPEAKER_TAG = re.compile(r"^\s*\[([a-z_]+)\]\s*")
_SPEAKERS: dict[str, Speaker] = {"doctor": "doctor", "patient": "patient"}

_SCORER = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=False)


@dataclass(frozen=True)
class Encounter:
    dataset: str
    encounter_id: str
    dialogue: str
    note: str


@dataclass(frozen=True)
class RougeScores:
    """F1 in percent, as the paper reports it."""

    rouge1: float
    rouge2: float
    rouge_l: float  # rougeLsum, the paper's ROUGE-L


@dataclass(frozen=True)
class Calibration:
    """A known system rescored with our settings, next to the paper's figures."""

    system: str
    measured: RougeScores
    paper: RougeScores | None


@dataclass(frozen=True)
class AciBenchResult:
    source: str  # split name or CSV path
    writer: str
    template: str
    encounters: int
    rouge: RougeScores  # mean over notes
    sentences: int
    sentences_with_valid_evidence: float  # share, 0..1; the writer promises 1.0
    sentences_flagged: float  # share, 0..1, flagged by ``verify_note``
    empty_notes: int
    calibrations: tuple[Calibration, ...] = ()


# --- loading ---------------------------------------------------------------------------------
def split_path(split: str, data_dir: Path = DEFAULT_DATA_DIR) -> Path:
    if split not in SPLIT_FILES:
        known = ", ".join(SPLIT_FILES)
        raise BadRequest(f"Unknown ACI-Bench split '{split}'. Use one of: {known}.")
    return data_dir / "challenge_data" / SPLIT_FILES[split]


def load_encounters(path: Path, limit: int | None = None) -> list[Encounter]:
    """Read an ACI-Bench-shaped CSV (columns dataset, encounter_id, dialogue, note)."""
    if not path.is_file():
        raise NotFound(
            f"ACI-Bench data not found at {path}. Put the ACI-Bench corpus in "
            f"{DEFAULT_DATA_DIR.resolve()} or pass --data with a CSV file.",
            code="eval_data_missing",
        )
    csv.field_size_limit(2**31 - 1)  # notes can pass csv's 128 KiB field default
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise BadRequest(
                f"{path.name} lacks the column(s) {', '.join(missing)}; an ACI-Bench CSV has "
                f"{', '.join(COLUMNS)}.",
                code="eval_data_invalid",
            )
        rows = [Encounter(**{c: row[c] for c in COLUMNS}) for row in reader]
    return rows[:limit] if limit is not None else rows


def dialogue_to_utterances(dialogue: str) -> list[Utterance]:
    """One utterance per non-empty line; the ``[doctor]``/``[patient]`` tag gives the speaker."""
    utterances: list[Utterance] = []
    speaker: Speaker = "unknown"
    for line in dialogue.splitlines():
        if not line.strip():
            continue
        tag = _SPEAKER_TAG.match(line)
        if tag:
            speaker = _SPEAKERS.get(tag.group(1), "other")
            line = line[tag.end() :]
        text = line.strip()
        if text:
            utterances.append(Utterance(f"u{len(utterances) + 1}", 0.0, 0.0, speaker, text))
    return utterances


# --- scoring ---------------------------------------------------------------------------------
def render_note(draft: NoteDraft) -> str:
    """The note as text: each section title on its own line, then one sentence per line.

    rougeLsum splits on newlines, so one sentence per line is what the metric expects.
    """
    lines: list[str] = []
    for section in draft.sections:
        lines.append(section.title)
        lines.extend(sentence.text for sentence in section.sentences)
    return "\n".join(lines)


def score_note(reference: str, prediction: str) -> RougeScores:
    scores = _SCORER.score(reference, prediction)
    return RougeScores(
        rouge1=100 * scores["rouge1"].fmeasure,
        rouge2=100 * scores["rouge2"].fmeasure,
        rouge_l=100 * scores["rougeLsum"].fmeasure,
    )


def mean_scores(scores: Sequence[RougeScores]) -> RougeScores:
    if not scores:
        raise BadRequest("Nothing to score: the data has no encounters.", code="eval_data_empty")
    return RougeScores(
        rouge1=statistics.fmean(s.rouge1 for s in scores),
        rouge2=statistics.fmean(s.rouge2 for s in scores),
        rouge_l=statistics.fmean(s.rouge_l for s in scores),
    )


def score_pairs(pairs: Iterable[tuple[str, str]]) -> RougeScores:
    """Mean ROUGE over (reference, prediction) pairs."""
    return mean_scores([score_note(reference, prediction) for reference, prediction in pairs])


# --- calibration -----------------------------------------------------------------------------
def calibrate(
    encounters: Sequence[Encounter], split: str | None, data_dir: Path = DEFAULT_DATA_DIR
) -> tuple[Calibration, ...]:
    """Rescore the copy-the-transcript baseline and, when shipped, a published system."""
    # The paper's figures are means over all 40 test1 notes; a subset has no reference figure.
    full_test1 = split == "test1" and len(encounters) == TEST1_SIZE
    copy = Calibration(
        system="copy the transcript",
        measured=score_pairs((e.note, e.dialogue) for e in encounters),
        paper=_paper("copy the transcript") if full_test1 else None,
    )
    if split not in BASELINE_PREDICTIONS:
        return (copy,)
    system, filename = BASELINE_PREDICTIONS[split]
    path = data_dir / "baseline_predictions" / filename
    if not path.is_file():
        return (copy,)
    predicted = {e.encounter_id: e.note for e in load_encounters(path)}
    pairs = [(e.note, predicted[e.encounter_id]) for e in encounters if e.encounter_id in predicted]
    if not pairs:
        return (copy,)
    paper = _paper(system) if full_test1 and len(pairs) == len(encounters) else None
    return (copy, Calibration(system=system, measured=score_pairs(pairs), paper=paper))


def _paper(system: str) -> RougeScores:
    return RougeScores(*PAPER_TEST1[system])


# --- the run ---------------------------------------------------------------------------------
async def evaluate(
    encounters: Sequence[Encounter],
    writer: NoteWriter | None = None,
    template: NoteTemplate | None = None,
    *,
    source: str = "data",
    calibrations: tuple[Calibration, ...] = (),
) -> AciBenchResult:
    """Write, verify and score a note for every encounter (default: the extractive writer)."""
    writer = writer or ExtractiveNoteWriter()
    template = template or get_template("soap")
    scores: list[RougeScores] = []
    sentences = with_evidence = flagged = empty = 0
    for encounter in encounters:
        utterances = dialogue_to_utterances(encounter.dialogue)
        draft = verify_note(await writer.write(utterances, template), utterances)
        ids = {u.id for u in utterances}
        note_sentences = [s for section in draft.sections for s in section.sentences]
        sentences += len(note_sentences)
        with_evidence += sum(bool(s.evidence) and set(s.evidence) <= ids for s in note_sentences)
        flagged += sum(bool(s.flags) for s in note_sentences)
        empty += not note_sentences
        scores.append(score_note(encounter.note, render_note(draft)))
    return AciBenchResult(
        source=source,
        writer=writer.name,
        template=template.key,
        encounters=len(encounters),
        rouge=mean_scores(scores),
        sentences=sentences,
        sentences_with_valid_evidence=with_evidence / sentences if sentences else 0.0,
        sentences_flagged=flagged / sentences if sentences else 0.0,
        empty_notes=empty,
        calibrations=calibrations,
    )
