"""Transcription: every recording goes to the provider in pieces (usually one).

    planning_chunks      cut the recording at silences into pieces within the provider's
                         per-request limit (seconds, or bytes as 16 kHz WAV), with a small overlap
    transcribe_chunk     one child workflow per piece, on the provider's own queue (its
                         concurrency and rate limit protect the vendor quota); each piece is
                         its own checkpoint: after a crash only unfinished pieces are sent again
    merging_transcript   shift, de-duplicate the overlaps, store one transcript

A recording within the provider's limit (or a provider without one) is a single piece; it
still goes through the provider's queue so the concurrency and rate limits hold for every call.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import structlog
from dbos import DBOS, SetWorkflowID, WorkflowHandleAsync

from clinscribe import metrics
from clinscribe.consultations import repository
from clinscribe.errors import ConsultationGone, ProviderError
from clinscribe.models import Stage
from clinscribe.pipeline.chunking import (
    Chunk,
    merge_segments,
    plan_chunks,
    speech_regions,
    write_chunk,
)
from clinscribe.pipeline.progress import stage, storing
from clinscribe.pipeline.runtime import Runtime, get_runtime
from clinscribe.pipeline.speakers import assign_roles
from clinscribe.providers.stt.base import Segment, SttCapabilities, TranscriptionResult

log = structlog.get_logger("clinscribe.pipeline")

WAV_BYTES_PER_SECOND = 16_000 * 2
# A waiting consultation checks its pieces this often: one system-database read each time.
# 0.05 s made ten consultations waiting on a slow provider cost a worker ~10 % of a core
# (half its Python time) for nothing; 0.2 s matches the live-progress poll.
RESULT_POLL_S = 0.2
# Stay a little under the vendor's limit: WAV headers, rounding, the overlap.
_LIMIT_MARGIN = 0.95


def stt_queue_name(provider: str) -> str:
    return f"stt-{provider}"


def max_chunk_seconds(capabilities: SttCapabilities) -> float | None:
    """The longest piece the provider accepts in one request, or None without a limit."""
    limits = []
    if capabilities.max_seconds_per_request is not None:
        limits.append(capabilities.max_seconds_per_request)
    if capabilities.max_bytes_per_request is not None:
        limits.append(capabilities.max_bytes_per_request / WAV_BYTES_PER_SECOND)
    return min(limits) * _LIMIT_MARGIN if limits else None


@DBOS.step(name="planning_chunks")
async def plan_transcription(consultation_id: str) -> list[tuple[float, float]]:
    """The pieces to transcribe, as (start, end) seconds; one piece when no split is needed."""
    runtime = get_runtime()
    # Timed by transcribe_chunks: the pieces are transcribed there, in child workflows.
    async with (
        stage(consultation_id, Stage.TRANSCRIBING, timed=False),
        runtime.db.session() as session,
    ):
        consultation = await repository.get_consultation(session, consultation_id)
        assert consultation is not None
        duration = float(consultation.duration_s or 0.0)
    limit = max_chunk_seconds(runtime.stt.capabilities)
    if limit is None or duration <= limit:
        return [(0.0, duration)]
    speech = await asyncio.to_thread(_speech_regions, runtime, consultation_id)
    chunks = plan_chunks(
        duration, speech, max_seconds=limit, overlap_s=runtime.settings.chunk_overlap_s
    )
    log.info(
        "recording split for the provider",
        consultation_id=consultation_id,
        chunks=len(chunks),
        max_chunk_s=round(limit, 1),
    )
    return [(c.start, c.end) for c in chunks]


def _speech_regions(runtime: Runtime, consultation_id: str) -> list[tuple[float, float]]:
    with runtime.audio.plaintext(consultation_id, "normalized") as wav:
        return speech_regions(wav)


def _decrypt_piece(
    runtime: Runtime, consultation_id: str, chunk: Chunk | None, directory: Path
) -> Path:
    """A plaintext WAV of the piece (or the whole recording) in ``directory``."""
    whole = directory / "audio.wav"
    runtime.audio.write_plaintext(consultation_id, "normalized", whole)
    if chunk is None:
        return whole
    piece = directory / f"chunk-{chunk.index:04d}.wav"
    write_chunk(whole, chunk, piece)
    whole.unlink()
    return piece


async def _transcribe_piece(
    runtime: Runtime, consultation_id: str, index: int, span: tuple[float, float]
) -> TranscriptionResult:
    async with runtime.db.session() as session:
        consultation = await repository.get_consultation(session, consultation_id)
        assert consultation is not None
        language, duration = consultation.language, float(consultation.duration_s or 0.0)
    whole = span[0] <= 0.0 and span[1] >= duration
    chunk = None if whole else Chunk(index, span[0], span[1])
    # The plaintext working copy exists only while the provider call runs.
    with runtime.audio.workspace() as directory:
        piece = await asyncio.to_thread(_decrypt_piece, runtime, consultation_id, chunk, directory)
        return await runtime.stt.transcribe(piece, language=language)


@DBOS.step(name="transcribing_chunk")
async def transcribe_chunk_step(consultation_id: str, index: int, start: float, end: float) -> int:
    runtime = get_runtime()
    async with runtime.db.session() as session:
        stored = await repository.get_chunk(session, consultation_id, index)
        if stored is not None:  # finished before a crash: never paid for twice
            return len(stored.segments)
    started = time.perf_counter()
    try:
        result = await _transcribe_piece(runtime, consultation_id, index, (start, end))
    except ProviderError as error:
        metrics.PROVIDER_ERRORS.labels(error.provider, error.code).inc()
        raise
    async with storing(consultation_id) as session:
        await repository.save_chunk(session, consultation_id, index, (start, end), result)
    log.info(
        "chunk transcribed",
        consultation_id=consultation_id,
        chunk=index,
        audio_s=round(end - start, 1),
        duration_ms=int((time.perf_counter() - started) * 1000),
        characters=result.characters,
    )
    return len(result.segments)


@DBOS.workflow(name="transcribe_chunk", max_recovery_attempts=5)
async def transcribe_chunk(consultation_id: str, index: int, start: float, end: float) -> int:
    get_runtime().track_current_task()
    return await transcribe_chunk_step(consultation_id, index, start, end)


def chunk_workflow_id(consultation_id: str, index: int) -> str:
    return f"{consultation_id}-chunk-{index:04d}"


async def transcribe_chunks(consultation_id: str, plan: list[tuple[float, float]]) -> None:
    """Enqueue every piece on the provider's queue, then wait for all of them.

    Child workflow ids are derived from the consultation id, so a replay after a crash finds
    the same children instead of starting new ones.
    """
    started = time.perf_counter()
    queue = stt_queue_name(get_runtime().settings.stt_provider)
    handles: list[WorkflowHandleAsync[int]] = []
    for index, (start, end) in enumerate(plan):
        with SetWorkflowID(chunk_workflow_id(consultation_id, index)):
            handles.append(
                await DBOS.enqueue_workflow_async(
                    queue, transcribe_chunk, consultation_id, index, start, end
                )
            )
    for handle in handles:
        # DBOS polls for a child's result once a second by default: too slow for live progress
        # and a large share of a short consultation's processing time (see RESULT_POLL_S).
        await handle.get_result(polling_interval_sec=RESULT_POLL_S)
    # Queue waits included; after a crash, only the part run by this process.
    metrics.STAGE_SECONDS.labels(Stage.TRANSCRIBING.value).observe(time.perf_counter() - started)


@DBOS.step(name="merging_transcript")
async def merge_transcript(consultation_id: str) -> int:
    """Join the pieces into one transcript (overlaps de-duplicated) and drop the pieces."""
    async with storing(consultation_id) as session:
        if await repository.get_transcript(session, consultation_id) is not None:
            return -1
        consultation = await repository.get_consultation(session, consultation_id)
        rows = await repository.list_chunks(session, consultation_id)
        if consultation is None or not rows:
            raise ConsultationGone("The consultation was deleted while it was being processed.")
        chunks = [Chunk(index=r.index, start=r.start, end=r.end) for r in rows]
        results = [
            [Segment(start=s[0], end=s[1], text=s[2], speaker_id=s[3]) for s in r.segments]
            for r in rows
        ]
        merged = assign_roles(merge_segments(chunks, results))
        result = TranscriptionResult(
            language=consultation.language,
            duration_s=float(consultation.duration_s or rows[-1].end),
            segments=merged,
            provider=rows[0].provider,
            model=rows[0].model,
        )
        await repository.save_transcript(session, consultation_id, result)
        await repository.delete_chunks(session, consultation_id)
    log.info(
        f"transcription completed: {result.characters} characters",
        consultation_id=consultation_id,
        characters=result.characters,
        utterances=len(merged),
        chunks=len(rows),
    )
    return len(merged)
