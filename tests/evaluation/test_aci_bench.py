"""ACI-Bench evaluation: the scorer reproduces the paper, the writer keeps its evidence promise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from clinscribe.errors import BadRequest, NotFound
from clinscribe.evaluation.aci_bench import (
    DEFAULT_DATA_DIR,
    PAPER_TEST1,
    calibrate,
    dialogue_to_utterances,
    evaluate,
    load_encounters,
    render_note,
    score_note,
    score_pairs,
    split_path,
)
from clinscribe.evaluation.cli import eval_app
from clinscribe.notes.model import NoteDraft, NoteSection, NoteSentence

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

needs_data = pytest.mark.skipif(
    not split_path("test1").is_file(), reason=f"ACI-Bench not found in {DEFAULT_DATA_DIR}"
)


# --- without the corpus ----------------------------------------------------------------------
def test_dialogue_lines_become_utterances_with_speakers() -> None:
    dialogue = (
        "[doctor] hi , how are you ?\n"
        "[patient] my knee hurts .\n"
        "\n"
        "[patient_guest] he fell last week .\n"
        "and he could not walk .\n"
    )
    utterances = dialogue_to_utterances(dialogue)
    assert [(u.id, u.speaker, u.text) for u in utterances] == [
        ("u1", "doctor", "hi , how are you ?"),
        ("u2", "patient", "my knee hurts ."),
        ("u3", "other", "he fell last week ."),
        ("u4", "other", "and he could not walk ."),  # untagged: the turn continues
    ]
    assert all(u.start == 0.0 and u.end == 0.0 for u in utterances)


def test_render_note_puts_titles_and_each_sentence_on_its_own_line() -> None:
    draft = NoteDraft(
        template="soap",
        writer="test",
        sections=[
            NoteSection("subjective", "Subjective", [NoteSentence("Knee pain.", ["u2"])]),
            NoteSection("plan", "Plan", [NoteSentence("X-ray.", ["u5"]), NoteSentence("Ice.", [])]),
        ],
    )
    assert render_note(draft) == "Subjective\nKnee pain.\nPlan\nX-ray.\nIce."


def test_rouge_l_is_summary_level_over_lines() -> None:
    # Swapping two lines costs nothing in rougeLsum (one LCS per reference line) but halves
    # plain rougeL; ROUGE-2 still sees the bigram broken at the seam.
    scores = score_note("knee pain\nleft side", "left side\nknee pain")
    assert scores.rouge_l == pytest.approx(100.0)
    assert scores.rouge1 == pytest.approx(100.0)
    assert scores.rouge2 == pytest.approx(200 / 3)


def test_rouge_does_not_stem() -> None:
    # With stemming "coughing" would match "cough"; the paper's figures need it off.
    assert score_note("coughing", "cough").rouge1 == 0.0


def test_missing_data_names_the_place_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="pass --data"):
        load_encounters(tmp_path / "absent.csv")


def test_csv_without_the_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("id,text\n1,hello\n", encoding="utf-8")
    with pytest.raises(BadRequest, match="dialogue"):
        load_encounters(path)


def test_unknown_split_lists_the_known_ones() -> None:
    with pytest.raises(BadRequest, match="test1"):
        split_path("test9")


# --- on the corpus ---------------------------------------------------------------------------
@needs_data
def test_scorer_reproduces_the_papers_bart_row_exactly() -> None:
    # A known (reference, prediction) set: the shipped BART+FT-SAMSum (division) test1 outputs.
    encounters = load_encounters(split_path("test1"))
    calibrations = {c.system: c for c in calibrate(encounters, "test1")}
    bart = calibrations["BART+FT-SAMSum (division)"]
    assert bart.paper is not None
    measured = (bart.measured.rouge1, bart.measured.rouge2, bart.measured.rouge_l)
    assert tuple(round(x, 2) for x in measured) == PAPER_TEST1["BART+FT-SAMSum (division)"]
    copy = calibrations["copy the transcript"].measured
    copied = (copy.rouge1, copy.rouge2, copy.rouge_l)
    assert tuple(round(x, 2) for x in copied) == PAPER_TEST1["copy the transcript"]


@needs_data
def test_copy_transcript_baseline_on_ten_notes_is_stable() -> None:
    # The full-run figures (32.84/12.53/30.61) are a mean over 40 notes; 10 notes have their
    # own mean, measured once with the settings proven above. The scorer is deterministic, so
    # any drift beyond float noise means the tokenisation or ROUGE settings changed.
    encounters = load_encounters(split_path("test1"), limit=10)
    scores = score_pairs((e.note, e.dialogue) for e in encounters)
    assert scores.rouge1 == pytest.approx(35.7362, abs=1e-3)
    assert scores.rouge2 == pytest.approx(13.9382, abs=1e-3)
    assert scores.rouge_l == pytest.approx(33.6888, abs=1e-3)


@needs_data
async def test_extractive_writer_on_five_valid_encounters() -> None:
    encounters = load_encounters(split_path("valid"), limit=5)
    result = await evaluate(encounters)
    assert result.encounters == 5
    assert result.empty_notes == 0
    assert result.sentences > 50
    assert result.sentences_with_valid_evidence == 1.0
    # Measured 41.99 when written. A 4-point margin lets the rules evolve; an empty or
    # mis-rendered note scores far lower (copying the whole transcript scores about 33).
    assert result.rouge.rouge1 > 38.0


@needs_data
async def test_extractive_writer_meets_the_target_on_test1() -> None:
    """The issue's target: >= 40 ROUGE-1 on test1, every sentence evidence-linked, none
    flagged unsupported (measured 44.22 / 100% / 0 of 1,209)."""
    result = await evaluate(load_encounters(split_path("test1")), source="test1")
    assert result.encounters == 40
    assert result.rouge.rouge1 >= 40.0
    assert result.sentences_with_valid_evidence == 1.0
    assert result.sentences_flagged == 0.0


# --- the command -----------------------------------------------------------------------------
# Mounted as clinscribe.cli mounts it.
cli = typer.Typer()
cli.add_typer(eval_app, name="eval")


def test_command_names_the_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["eval", "aci-bench", "--data", str(tmp_path / "absent.csv")])
    assert result.exit_code == 2
    assert "ACI-Bench data not found" in result.output
    assert "absent.csv" in result.output


@needs_data
def test_command_prints_json_for_a_few_encounters() -> None:
    args = ["eval", "aci-bench", "--split", "valid", "--limit", "2", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 2
    assert report["evidence_coverage"] == 100.0
    assert 0 <= report["unsupported_rate"] <= 100
    assert all(10 < report[key] < 100 for key in ("rouge1", "rouge2", "rougeLsum"))
    details = report["details"]
    assert details["source"] == "valid" and details["writer"] == "extractive"
    assert report["rouge1"] == round(details["rouge"]["rouge1"], 2)
    assert details["calibrations"][0]["system"] == "copy the transcript"


@needs_data
def test_command_prints_a_markdown_table_beside_the_published_baselines() -> None:
    result = CliRunner().invoke(cli, ["eval", "aci-bench", "--split", "test1", "--limit", "40"])
    assert result.exit_code == 0, result.output
    assert "| system | ROUGE-1 | ROUGE-2 | ROUGE-Lsum |" in result.output
    assert "| GPT-4 (published) | 51.76 | 22.58 | 45.97 |" in result.output
    assert "| copy the transcript (published) | 32.84 | 12.53 | 30.61 |" in result.output
