"""The verifier's test set: built deterministically from ACI-Bench TRAIN, scored per kind."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clinscribe.evaluation.aci_bench import DEFAULT_DATA_DIR, Encounter, load_encounters, split_path
from clinscribe.evaluation.cli import eval_app
from clinscribe.evaluation.verifier_cases import CORRECT_KINDS, ERROR_KINDS, build_cases
from clinscribe.evaluation.verifier_eval import evaluate

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

needs_data = pytest.mark.skipif(
    not split_path("train").is_file(), reason=f"ACI-Bench not found in {DEFAULT_DATA_DIR}"
)
# The targets the verifier is held to: it catches nine errors in ten, and flags at most one
# correct sentence in ten.
MIN_RECALL = 0.90
MAX_FALSE_FLAGS = 0.10


# --- without the corpus ----------------------------------------------------------------------
DIALOGUE = "\n".join(
    [
        "[doctor] do you have any chest pain ?",
        "[patient] no .",
        "[patient] i have had a cough for three days and my right knee hurts .",
        "[doctor] i'll increase your lisinopril to 40 milligrams a day .",
        "[doctor] it could be pneumonia , so we'll get a chest x-ray .",
        "[patient] i do n't have any fever .",
    ]
)


def test_cases_are_built_from_a_dialogue_with_their_labels_and_citations() -> None:
    cases = build_cases([Encounter("train", "E1", DIALOGUE, "note")])
    by_kind = {case.kind: case for case in cases}
    assert by_kind["question_answer"].text == (
        'Asked "Do you have any chest pain?" \u2014 answered "No."'
    )
    assert by_kind["question_answer"].evidence == ("u1", "u2")
    assert by_kind["changed_dose"].text == "I'll increase your lisinopril to 80 milligrams a day."
    assert by_kind["swapped_drug"].text == "I'll increase your warfarin to 40 milligrams a day."
    assert by_kind["flipped_negation"].text == (
        "I have not had a cough for three days and my right knee hurts."
    )
    assert by_kind["flipped_uncertainty"].text == "It is pneumonia, so we'll get a chest x-ray."
    assert by_kind["changed_number"].text == (
        "I have had a cough for five days and my right knee hurts."
    )
    assert by_kind["reworded_denies"].text == "Denies fever."
    assert by_kind["reworded_medication_line"].text == "Lisinopril 40 mg."
    assert by_kind["changed_number"].evidence == ("u3",)
    assert all(case.planted == (case.kind in ERROR_KINDS) for case in cases)
    assert {case.kind for case in cases} <= set(ERROR_KINDS) | set(CORRECT_KINDS)


def test_the_same_dialogues_give_the_same_cases() -> None:
    encounters = [Encounter("train", "E1", DIALOGUE, "note")]
    assert build_cases(encounters) == build_cases(encounters)


# --- with the corpus (skipped without it) -----------------------------------------------------
@needs_data
def test_the_verifier_meets_its_targets_on_aci_bench_train() -> None:
    encounters = load_encounters(split_path("train"))
    result = evaluate(encounters)
    print(  # the numbers, for `pytest -s`
        f"\nverifier on ACI-Bench train: {result.cases} cases, precision {result.precision:.3f},"
        f" recall {result.recall:.3f}, false flags {result.false_flag_rate:.3f}"
    )
    for score in result.by_kind:
        print(f"  {score.kind:<26} {score.flagged:>3}/{score.cases:<3} {score.share:.0%}")
    assert result.cases >= 60
    kinds = {score.kind: score for score in result.by_kind}
    assert set(ERROR_KINDS) <= set(kinds)  # every kind of error is in the set
    assert result.recall >= MIN_RECALL
    assert result.false_flag_rate <= MAX_FALSE_FLAGS
    for kind in ERROR_KINDS:  # no kind of error hides behind the others
        assert kinds[kind].share >= 0.8, kind
    assert build_cases(encounters) == build_cases(encounters)  # deterministic


@needs_data
def test_eval_verifier_cli_prints_json() -> None:
    result = CliRunner().invoke(eval_app, ["verifier", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["source"] == "train"
    assert report["recall"] >= MIN_RECALL
    assert {row["kind"] for row in report["by_kind"]} >= set(ERROR_KINDS)
