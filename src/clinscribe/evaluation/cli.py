"""`clinscribe eval ...`: score the configured note writer on public benchmarks."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated

import typer

from clinscribe.cli_common import fail, load_settings
from clinscribe.errors import ClinscribeError

if TYPE_CHECKING:  # rouge-score and nltk load only when an evaluation runs
    from clinscribe.evaluation.aci_bench import RougeScores

eval_app = typer.Typer(
    help="Evaluate the configured note writer on public benchmarks.", no_args_is_help=True
)


def _aci_bench() -> ModuleType:
    """The ACI-Bench module, or a one-line exit when the eval extra is not installed."""
    try:
        from clinscribe.evaluation import aci_bench
    except ImportError:
        typer.echo(
            "error: evaluation needs the eval extra: pip install 'clinscribe[eval]'", err=True
        )
        raise typer.Exit(code=2) from None
    return aci_bench


@eval_app.command("aci-bench")
def aci_bench(
    split: Annotated[str, typer.Option(help="train, valid, test1 or test2")] = "test1",
    data: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="an ACI-Bench-shaped CSV instead of --split"),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N encounters")] = None,
    template: Annotated[str, typer.Option(help="soap, apso, hp or progress")] = "soap",
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Write a note for every ACI-Bench dialogue and score it against the clinicians' note
    (ROUGE-1/2/L as in the paper), with evidence and verifier statistics."""
    bench = _aci_bench()
    from clinscribe.notes.templates import get_template
    from clinscribe.providers.registry import build_note_writer

    try:
        path = data if data is not None else bench.split_path(split)
        encounters = bench.load_encounters(path, limit)
        calibrations = bench.calibrate(encounters, None if data is not None else split)
        result = asyncio.run(
            bench.evaluate(
                encounters,
                build_note_writer(load_settings()),
                get_template(template),
                source=str(data) if data is not None else split,
                calibrations=calibrations,
            )
        )
    except ClinscribeError as error:
        fail(error)
    if as_json:
        summary = {
            "n": result.encounters,
            "rouge1": round(result.rouge.rouge1, 2),
            "rouge2": round(result.rouge.rouge2, 2),
            "rougeLsum": round(result.rouge.rouge_l, 2),
            "evidence_coverage": round(100 * result.sentences_with_valid_evidence, 2),
            "unsupported_rate": round(100 * result.sentences_flagged, 2),
        }
        typer.echo(json.dumps(summary | {"details": asdict(result)}, indent=2))
        return
    typer.echo(
        f"ACI-Bench {result.source}: {result.encounters} encounters, writer {result.writer}, "
        f"template {result.template}\n"
    )
    typer.echo("| system | ROUGE-1 | ROUGE-2 | ROUGE-Lsum |")
    typer.echo("|---|---:|---:|---:|")
    typer.echo(_row(f"**{result.writer} (this run)**", result.rouge))
    for calibration in result.calibrations:
        typer.echo(_row(f"{calibration.system} (rescored here)", calibration.measured))
    if result.source == "test1" and result.encounters == bench.TEST1_SIZE:
        for system, figures in bench.PAPER_TEST1.items():
            typer.echo(_row(f"{system} (published)", bench.RougeScores(*figures)))
    typer.echo(
        f"\nnote sentences: {result.sentences}; citing existing utterances (evidence "
        f"coverage): {result.sentences_with_valid_evidence:.1%}; flagged unsupported by the "
        f"verifier: {result.sentences_flagged:.1%}; empty notes: {result.empty_notes}"
    )


@eval_app.command("verifier")
def verifier(
    split: Annotated[str, typer.Option(help="ACI-Bench split to build the cases from")] = "train",
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    show_misses: Annotated[
        bool, typer.Option("--show-misses", help="also print the cases the verifier gets wrong")
    ] = False,
) -> None:
    """Score the note verifier on labelled sentences built from ACI-Bench dialogues (correct
    sentences and planted errors): precision and recall of the unsupported flag, by kind."""
    bench = _aci_bench()
    from clinscribe.evaluation import verifier_eval

    try:
        encounters = bench.load_encounters(bench.split_path(split))
    except ClinscribeError as error:
        fail(error)
    result = verifier_eval.evaluate(encounters, source=split)
    if as_json:
        typer.echo(json.dumps(asdict(result), indent=2))
    else:
        typer.echo(
            f"Verifier on ACI-Bench {split}: {result.cases} sentences ({result.errors} planted "
            f"errors, {result.correct} correct); unsupported flag: precision "
            f"{result.precision:.1%}, recall {result.recall:.1%}, correct sentences flagged "
            f"{result.false_flag_rate:.1%}; {result.ms_per_sentence:.1f} ms per sentence"
        )
        for score in result.by_kind:
            typer.echo(f"  {score.kind:<26} flagged {score.flagged:>3} of {score.cases:>3}")
    if show_misses:
        for case, flagged in verifier_eval.misses(encounters):
            verdict = "false flag" if flagged else "missed"
            typer.echo(f"{verdict}: {case.kind} {case.encounter_id} {case.evidence}: {case.text}")


def _row(name: str, scores: RougeScores) -> str:
    return f"| {name} | {scores.rouge1:.2f} | {scores.rouge2:.2f} | {scores.rouge_l:.2f} |"
