"""The `clinscribe` command line. Each command is a thin wrapper over the library."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from clinscribe.accounts_cli import api_keys_app, keys_app, users_app
from clinscribe.cli_common import fail, load_settings
from clinscribe.config import Settings
from clinscribe.errors import ClinscribeError, ConfigurationError
from clinscribe.evaluation.cli import eval_app

app = typer.Typer(
    help="clinscribe: consultation audio -> transcript -> clinical note.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(eval_app, name="eval")
app.add_typer(users_app, name="users")
app.add_typer(api_keys_app, name="api-keys")
app.add_typer(keys_app, name="keys")


def _startable_settings() -> Settings:
    """Settings a worker can run with: refuse at start, not after paying for transcription,
    when the configured note writer cannot be built."""
    from clinscribe.providers.registry import build_note_writer

    settings = load_settings()
    try:
        build_note_writer(settings)
    except ClinscribeError as error:
        fail(error)
    return settings


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: CLINSCRIBE_HOST (127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Default: CLINSCRIBE_PORT (8000)")] = None,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="Also process consultations in this process (the default). With --no-worker "
            "it only serves the API and the web app and queues work for `clinscribe worker` "
            "processes.",
        ),
    ] = True,
) -> None:
    """Run the HTTP API and the web app, with an in-process worker unless --no-worker."""
    import uvicorn

    from clinscribe.app import create_app

    settings = _startable_settings() if worker else load_settings()
    if worker:
        from clinscribe.pipeline.workers import check_sqlite_seat_free

        try:
            check_sqlite_seat_free(settings)
        except ClinscribeError as error:
            fail(error)
    uvicorn.run(
        create_app(settings, run_worker=worker),
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=30,
    )


@app.command()
def worker(
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve Prometheus metrics (stage durations, provider retries and errors, "
            "workflows recovered) on this port of CLINSCRIBE_HOST. Default: none."
        ),
    ] = None,
) -> None:
    """Process consultations only (no API). Run several on PostgreSQL to scale out.

    Each worker takes an executor id of its own (CLINSCRIBE_EXECUTOR_ID, or the first free
    <hostname>-<n>) and heartbeats; the workflows of a worker silent for longer than
    CLINSCRIBE_WORKER_LEASE_S (60 s) resume on a live one. On SQLite only one process may run
    workflows: `clinscribe serve` alone, or `clinscribe serve --no-worker` beside one worker.
    SIGTERM stops taking work and gives running consultations CLINSCRIBE_SHUTDOWN_GRACE_S.
    """
    from clinscribe.app import worker_lifecycle
    from clinscribe.logging import configure_logging

    settings = _startable_settings()
    configure_logging(settings.log_level, settings.log_format)
    if not settings.auto_migrate:
        from clinscribe.db.migrate import pending_revisions

        if pending := pending_revisions(settings.app_database_url):
            fail(
                ConfigurationError(
                    f"The database is {len(pending)} migration(s) behind this version. Run "
                    "`clinscribe db upgrade` (or set CLINSCRIBE_AUTO_MIGRATE=true), then start "
                    "the worker again."
                )
            )
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=settings.host)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with worker_lifecycle(settings, run_worker=True):
            await stop.wait()

    try:
        asyncio.run(main())
    except ClinscribeError as error:
        fail(error)
    # Everything is closed; skip the interpreter's teardown of the note engine's large
    # dictionaries (seconds of freeing objects) so a stopped worker exits at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@app.command()
def doctor() -> None:
    """Check the configuration and provider reachability; print what to fix."""
    from clinscribe.doctor import run_checks

    checks = run_checks(load_settings())
    for check in checks:
        typer.echo(f"{check.label}  {check.name}: {check.detail}")
    if not all(check.ok for check in checks):
        raise typer.Exit(code=1)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (the app database; DBOS migrates its own on start)."""
    from clinscribe.db.migrate import upgrade

    settings = load_settings()
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.app_database_url)
    typer.echo("database is up to date")


def _transcribe_file(
    settings: Settings, path: Path, language: str
) -> list[tuple[float, float, str]]:
    from clinscribe.pipeline.audio import convert_to_wav, inspect_audio
    from clinscribe.providers.registry import build_speech_to_text, check_language

    language = check_language(settings, language)
    inspect_audio(path, max_duration_s=settings.max_audio_minutes * 60)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "audio.wav"
        convert_to_wav(path, wav)
        stt = build_speech_to_text(settings)

        async def run() -> list[tuple[float, float, str]]:
            try:
                result = await stt.transcribe(wav, language=language)
            finally:
                await stt.aclose()
            return [(s.start, s.end, s.text) for s in result.segments]

        return asyncio.run(run())


@app.command()
def transcribe(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    language: Annotated[str | None, typer.Option(help="ISO 639-1 code, e.g. en, hi, ta")] = None,
) -> None:
    """Transcribe an audio file with the configured provider and print the utterances."""
    settings = load_settings()
    try:
        segments = _transcribe_file(settings, file, language or settings.default_language)
    except ClinscribeError as error:
        fail(error)
    for start, end, text in segments:
        typer.echo(f"[{start:7.2f} - {end:7.2f}] {text}")


_SPEAKER_PREFIX = re.compile(r"^\s*(\[(doctor|patient)\]|(D|P|Doctor|Patient)\s*:)\s*", re.I)


def _utterances_from_text(text: str) -> list[tuple[str, str]]:
    lines = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        match = _SPEAKER_PREFIX.match(raw)
        speaker = "unknown"
        if match:
            tag = match.group(0).strip("[]: \t").lower()
            speaker = "doctor" if tag.startswith("d") else "patient"
            raw = raw[match.end() :]
        lines.append((speaker, raw.strip()))
    return lines


@app.command()
def note(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    language: Annotated[str | None, typer.Option(help="for audio input")] = None,
    template: Annotated[
        str, typer.Option(help="soap, apso, hp, progress or a clinic-defined template key")
    ] = "soap",
    as_json: Annotated[bool, typer.Option("--json", help="print the note as JSON")] = False,
) -> None:
    """Write a note from an audio file or a text transcript and print it.

    A text transcript has one utterance per line, optionally starting with a speaker tag:
    D: or P:, or ACI-Bench's doctor/patient tags in square brackets."""
    from clinscribe.notes.evidence import verify_note
    from clinscribe.notes.model import Utterance
    from clinscribe.notes.templates import TemplateLibrary
    from clinscribe.providers.registry import build_note_writer

    settings = load_settings()
    try:
        chosen = TemplateLibrary.from_directory(settings.resolved_templates_dir).get(template)
        if file.suffix.lower() in {".txt", ".md"}:
            pairs = _utterances_from_text(file.read_text(encoding="utf-8"))
            utterances = [
                Utterance(id=f"u{i}", start=0.0, end=0.0, speaker=s, text=t)  # type: ignore[arg-type]
                for i, (s, t) in enumerate(pairs, start=1)
            ]
        else:
            segments = _transcribe_file(settings, file, language or settings.default_language)
            utterances = [
                Utterance(id=f"u{i}", start=a, end=b, speaker="unknown", text=t)
                for i, (a, b, t) in enumerate(segments, start=1)
            ]
        writer = build_note_writer(settings)
        draft = verify_note(asyncio.run(writer.write(utterances, chosen)), utterances)
    except ClinscribeError as error:
        fail(error)
    if as_json:
        from dataclasses import asdict

        typer.echo(json.dumps(asdict(draft), indent=2, ensure_ascii=False))
        return
    for section in draft.sections:
        typer.echo(f"## {section.title}")
        if not section.sentences:
            typer.echo("(nothing found in the transcript)")
        for sentence in section.sentences:
            flags = f"  [{', '.join(sentence.flags)}]" if sentence.flags else ""
            typer.echo(f"- {sentence.text}  ({', '.join(sentence.evidence)}){flags}")
        typer.echo("")


def main() -> None:  # pragma: no cover
    app(prog_name="clinscribe")


if __name__ == "__main__":  # pragma: no cover
    main()
