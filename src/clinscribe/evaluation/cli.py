"""`clinscribe eval ...`: score the configured note writer on public benchmarks."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clinscribe.cli_common import fail, load_settings
from clinscribe.errors import ClinscribeError

if TYPE_CHECKING:  # rouge-score and nltk load only when an evaluation runs
    from clinscribe.evaluation.aci_bench import RougeScores

eval_app = typer.Typer(
    help="Evaluate the configured note writer on public benchmarks.", no_args_is_help=True
)


@eval_app.command("aci-bench")
def aci_bench(
    split: Annotated[str, typer.Option(help="train, valid, test1 or test2")] = "test1",
    data: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="an ACI-Bench-shaped CSV instead of --split"),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N encounters")] = None,
    template: Annotated[str, typer.Option(help="soap or apso")] = "soap",
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Write a note for every ACI-Bench dialogue and score it against the clinicians' note
    (ROUGE-1/2/L as in the paper), with evidence and verifier statistics."""
    try:
        from clinscribe.evaluation import aci_bench as bench
    except ImportError:
        typer.echo(
            "error: evaluation needs the eval extra: pip install 'clinscribe[eval]'", err=True
        )
        raise typer.Exit(code=2) from None
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
        typer.echo(json.dumps(asdict(result), indent=2))
        return
    typer.echo(
        f"ACI-Bench {result.source}: {result.encounters} encounters, writer {result.writer}, "
        f"template {result.template}"
    )
    typer.echo(f"{'system':<40} {'ROUGE-1':>8} {'ROUGE-2':>8} {'ROUGE-L':>8}")
    typer.echo(_row(f"{result.writer} (this run)", result.rouge))
    for calibration in result.calibrations:
        typer.echo(_row(f"{calibration.system} (rescored)", calibration.measured))
    if result.source == "test1" and result.encounters == bench.TEST1_SIZE:
        for system, figures in bench.PAPER_TEST1.items():
            typer.echo(_row(f"{system} (paper)", bench.RougeScores(*figures)))
    typer.echo(
        f"note sentences: {result.sentences}; citing existing utterances: "
        f"{result.sentences_with_valid_evidence:.1%}; flagged by the verifier: "
        f"{result.sentences_flagged:.1%}; empty notes: {result.empty_notes}"
    )


def _row(name: str, scores: RougeScores) -> str:
    return f"{name:<40} {scores.rouge1:8.2f} {scores.rouge2:8.2f} {scores.rouge_l:8.2f}"
