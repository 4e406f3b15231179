"""The durable consultation workflow: one DBOS workflow per consultation (id = consultation id).

It reads like the process it describes. Each step does one thing, stores its output in the
app database and returns something small, so checkpoints stay tiny. After a crash DBOS resumes
at the first unfinished step; finished steps are replayed from their checkpoints and never
re-run (no provider is paid twice). Steps are also idempotent on their own (they look for
their stored output first) to cover a crash between storing and checkpointing.

Changing the order or number of steps breaks replay of in-flight consultations: guard such a
change with ``DBOS.patch`` or a new ``CLINSCRIBE_APPLICATION_VERSION``.
"""

from __future__ import annotations

import asyncio
import time
import traceback

import structlog
from dbos import DBOS
from dbos._error import DBOSWorkflowCancelledError

from clinscribe import metrics
from clinscribe.consultations import repository
from clinscribe.errors import ClinscribeError
from clinscribe.models import ConsultationStatus, Stage
from clinscribe.notes.codes import suggest_codes
from clinscribe.notes.evidence import verify_note as verify_draft
from clinscribe.pipeline.audio import convert_to_wav
from clinscribe.pipeline.progress import elapsed_ms, stage, storing
from clinscribe.pipeline.runtime import get_runtime
from clinscribe.pipeline.transcription import (
    merge_transcript,
    plan_transcription,
    transcribe_chunks,
)
from clinscribe.storage.audio import AudioStore
from clinscribe.webhooks.events import emit_consultation_event

log = structlog.get_logger("clinscribe.pipeline")

WORKFLOW_NAME = "process_consultation"


def _where(error: BaseException) -> str:
    """file:line of the innermost frame of our own code that raised, for operators."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "clinscribe" in f.filename] or frames
    return f"{ours[-1].filename.rsplit('/', 1)[-1]}:{ours[-1].lineno}" if ours else "unknown"


def _normalize_audio(audio: AudioStore, consultation_id: str) -> float:
    """Decode the stored upload into 16 kHz mono WAV and store that, both encrypted."""
    with audio.plaintext(consultation_id, "original") as source:
        target = source.with_name("audio.wav")
        duration = convert_to_wav(source, target)
        audio.store(consultation_id, "normalized", target)
    return duration


@DBOS.step(name="preparing_audio")
async def prepare_audio(consultation_id: str) -> float:
    """Decode the upload into 16 kHz mono WAV for the speech-to-text provider."""
    runtime = get_runtime()
    async with stage(consultation_id, Stage.PREPARING_AUDIO) as slog:
        started = time.perf_counter()
        duration = await asyncio.to_thread(_normalize_audio, runtime.audio, consultation_id)
        async with runtime.db.session() as session:
            await repository.update_progress(
                session,
                consultation_id,
                status=ConsultationStatus.PROCESSING,
                stage=Stage.PREPARING_AUDIO,
                duration_s=round(duration, 3),
            )
        slog.info("audio prepared", duration_ms=elapsed_ms(started), audio_s=round(duration, 1))
        return duration


@DBOS.step(name="writing_note")
async def write_note(consultation_id: str) -> int:
    """Write the first note version from the transcript with the configured writer."""
    runtime = get_runtime()
    async with stage(consultation_id, Stage.WRITING_NOTE) as slog:
        async with runtime.db.session() as session:
            note = await repository.get_note(session, consultation_id)
            if note is not None:
                return note.version
            consultation = await repository.get_consultation(session, consultation_id)
            transcript = await repository.get_transcript(session, consultation_id)
            assert consultation is not None and transcript is not None
            utterances = repository.utterances_of(transcript)
            template = runtime.templates.get(consultation.template)
        started = time.perf_counter()
        draft = await runtime.note_writer.write(utterances, template)
        draft.codes = await asyncio.to_thread(suggest_codes, draft, template)
        async with storing(consultation_id) as session:
            note = await repository.add_note(session, consultation_id, draft)
            version = note.version
        characters = sum(len(s.text) for section in draft.sections for s in section.sentences)
        slog.info(
            f"{template.key.upper()} note generated: {characters} characters",
            duration_ms=elapsed_ms(started),
            characters=characters,
            sentences=sum(len(section.sentences) for section in draft.sections),
            writer=draft.writer,
        )
        return version


@DBOS.step(name="verifying_note")
async def verify_note(consultation_id: str) -> int:
    """Check every sentence against its evidence; store the flags. Returns the flagged count."""
    runtime = get_runtime()
    async with stage(consultation_id, Stage.VERIFYING_NOTE) as slog:
        async with runtime.db.session() as session:
            note = await repository.get_note(session, consultation_id)
            transcript = await repository.get_transcript(session, consultation_id)
            assert note is not None and transcript is not None
            draft = await asyncio.to_thread(
                verify_draft, repository.draft_of(note), repository.utterances_of(transcript)
            )
            await repository.replace_flags(session, note, draft)
        flagged = sum(1 for section in draft.sections for s in section.sentences if s.flags)
        slog.info("note verified", flagged_sentences=flagged)
        return flagged


@DBOS.step(name="finalizing")
async def finalize(consultation_id: str) -> None:
    runtime = get_runtime()
    async with runtime.db.session() as session:
        await repository.update_progress(
            session,
            consultation_id,
            status=ConsultationStatus.COMPLETED,
            stage=Stage.FINALIZING,
            completed=True,
        )
        # In the same transaction: the event is recorded exactly when the status changes.
        await emit_consultation_event(session, consultation_id, "consultation.completed")
    metrics.CONSULTATIONS_FINISHED.labels("completed").inc()


@DBOS.step(name="recording_failure")
async def record_failure(consultation_id: str, code: str, message: str, retryable: bool) -> None:
    runtime = get_runtime()
    async with runtime.db.session() as session:
        consultation = await repository.get_consultation(session, consultation_id)
        stage = consultation.stage if consultation is not None else None
        await repository.update_progress(
            session,
            consultation_id,
            status=ConsultationStatus.FAILED,
            stage=stage,
            error=(code, message, retryable),
        )
        await emit_consultation_event(session, consultation_id, "consultation.failed")
    metrics.CONSULTATIONS_FINISHED.labels("failed").inc()
    log.warning(
        "background task failed",
        consultation_id=consultation_id,
        stage=stage,
        error_code=code,
        retryable=retryable,
    )


@DBOS.workflow(name=WORKFLOW_NAME, max_recovery_attempts=5)
async def process_consultation(consultation_id: str) -> str:
    log.info("background task started", consultation_id=consultation_id)
    started = time.perf_counter()
    get_runtime().track_current_task()
    try:
        await prepare_audio(consultation_id)
        # One piece, or several when the recording is longer than the provider takes at once;
        # every provider call goes through the provider's queue (concurrency, rate limit).
        plan = await plan_transcription(consultation_id)
        await transcribe_chunks(consultation_id, plan)
        await merge_transcript(consultation_id)
        await write_note(consultation_id)
        await verify_note(consultation_id)
        await finalize(consultation_id)
    except DBOSWorkflowCancelledError:
        raise
    except ClinscribeError as error:
        # An expected failure (bad key, undecodable audio, provider down for too long): the
        # failed step's error stays checkpointed, which is where a retry resumes. The workflow
        # itself ends normally, so no traceback is logged for an ordinary outcome.
        await record_failure(consultation_id, error.code, error.message, error.retryable)
        return ConsultationStatus.FAILED.value
    except Exception as error:
        # A bug or an infrastructure fault (disk full, database down). Exception messages can
        # quote data (SQL parameters, file contents), so log the type and the place only.
        log.error(
            "unexpected pipeline error",
            consultation_id=consultation_id,
            error_type=type(error).__name__,
            where=_where(error),
        )
        await record_failure(
            consultation_id,
            "internal_error",
            "Processing stopped because of an internal error. Retry the consultation; if it "
            "fails again, ask your administrator to check the server logs.",
            True,
        )
        return ConsultationStatus.FAILED.value
    log.info(
        "background task completed",
        consultation_id=consultation_id,
        duration_ms=elapsed_ms(started),
    )
    return ConsultationStatus.COMPLETED.value
