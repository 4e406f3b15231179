"""HTTP endpoints for consultations (/api/consultations). Thin: parse, call the service, shape."""

from __future__ import annotations

import asyncio
import base64
import binascii
from datetime import datetime
from typing import Annotated

import structlog
from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import IntegrityError

from clinscribe import metrics
from clinscribe.audit.service import record
from clinscribe.auth.dependencies import PrincipalDep, RuntimeDep, SessionDep
from clinscribe.auth.principal import Principal
from clinscribe.consultations import repository, service
from clinscribe.consultations.audio_response import AudioGone, audio_response
from clinscribe.consultations.schemas import (
    CodeDecisionIn,
    ConsultationOut,
    ConsultationPage,
    NoteIn,
    NoteOut,
    PatientSummaryOut,
    RegenerateIn,
    SignNoteIn,
    SpeakerIn,
    SummaryItemOut,
    TranscriptOut,
)
from clinscribe.errors import BadRequest, ClinscribeError, Conflict, NotFound, TryAgainShortly
from clinscribe.models import ConsultationStatus
from clinscribe.pipeline import engine
from clinscribe.pipeline.events import status_events
from clinscribe.pipeline.runtime import Runtime

log = structlog.get_logger("clinscribe.api")
router = APIRouter(prefix="/api/consultations", tags=["consultations"])

_ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {"description": "No consultation with this id in your clinic"},
}


def _encode_cursor(row: ConsultationOut) -> str:
    raw = f"{row.created_at.isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, last_id = base64.urlsafe_b64decode(padded).decode().split("|", 1)
        return datetime.fromisoformat(created), last_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest(
            "The cursor is not valid; use the next_cursor of the previous page.",
            code="bad_cursor",
        ) from None


async def _replay(
    runtime: Runtime, principal: Principal, response: Response, consultation_id: str
) -> ConsultationOut | None:
    async with runtime.db.session() as session:
        existing = await service.find_consultation(session, principal, consultation_id)
    if existing is None:
        return None
    if not await engine.has_run(consultation_id):
        # The first request is still between storing and queueing (and could yet undo it):
        # confirming now could let the client drop the only other copy of the recording.
        raise TryAgainShortly("This upload is still being accepted. Send it again shortly.")
    response.status_code = 200
    response.headers["Idempotent-Replayed"] = "true"
    return ConsultationOut.of(existing)


@router.post(
    "",
    status_code=202,
    response_model=ConsultationOut,
    summary="Upload a consultation recording",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["audio"],
                        "properties": {
                            "audio": {"type": "string", "format": "binary"},
                            "language": {"type": "string", "example": "en"},
                            "template": {"type": "string", "example": "soap"},
                            "patient_ref": {"type": "string", "maxLength": 128},
                            "title": {"type": "string", "maxLength": 200},
                        },
                    }
                }
            },
        }
    },
)
async def upload_consultation(
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=100,
            description="Optional, one per recording: sending the same key again answers 200 "
            "with the consultation already created instead of creating another",
        ),
    ] = None,
) -> ConsultationOut:
    """Stream the recording to storage, check it decodes, queue processing. Answers 202."""
    consultation_id = service.consultation_id_for(principal, idempotency_key)
    if idempotency_key is not None:
        if replay := await _replay(runtime, principal, response, consultation_id):
            return replay
        if await engine.has_run(consultation_id):
            raise Conflict(
                "This Idempotency-Key belonged to a consultation that has since been deleted. "
                "Send the recording with a new key.",
                code="idempotency_key_used",
            )
    accepted = await service.receive_upload(
        runtime,
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        request.stream(),
    )
    placed: str | None = None
    try:
        async with runtime.db.session() as session:
            consultation = await service.create_consultation(
                session, runtime, principal, accepted, consultation_id
            )
            placed = consultation.id  # the audio is in place; the commit is still to come
            out = ConsultationOut.of(consultation)
    except IntegrityError:
        # The same Idempotency-Key sent twice at once: the other request created it.
        accepted.upload.discard()
        if replay := await _replay(runtime, principal, response, consultation_id):
            return replay
        raise
    except BaseException:
        accepted.upload.discard()
        if placed is not None:
            await asyncio.to_thread(runtime.audio.delete, placed)
        raise
    try:
        await engine.enqueue(consultation.id)
    except Exception as error:
        # Without a workflow the consultation would sit "queued" forever: undo the upload.
        log.error(
            "enqueue failed", consultation_id=consultation.id, error_type=type(error).__name__
        )
        async with runtime.db.session() as session:
            await repository.delete_consultation(session, consultation.id)
        await asyncio.to_thread(runtime.audio.delete, consultation.id)
        raise ClinscribeError(
            "The processing queue is unavailable; the upload was not kept. Try again shortly."
        ) from error
    metrics.CONSULTATIONS_ACCEPTED.inc()
    log.info(
        "consultation accepted",
        consultation_id=out.id,
        bytes=accepted.upload.audio_bytes,
        audio_s=accepted.info.duration_s,
        language=out.language,
    )
    return out


@router.get("", response_model=ConsultationPage, summary="List consultations, newest first")
async def list_consultations(
    session: SessionDep,
    principal: PrincipalDep,
    status: Annotated[ConsultationStatus | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ConsultationPage:
    before = _decode_cursor(cursor) if cursor else None
    rows = await repository.list_consultations(
        session,
        clinic_id=principal.clinic_id,
        status=status.value if status else None,
        before=before,
        limit=limit + 1,
    )
    items = [ConsultationOut.of(row) for row in rows[:limit]]
    next_cursor = _encode_cursor(items[-1]) if len(rows) > limit and items else None
    return ConsultationPage(items=items, next_cursor=next_cursor)


@router.get("/{consultation_id}", response_model=ConsultationOut, responses=_ERROR_RESPONSES)
async def get_consultation(
    consultation_id: str, session: SessionDep, principal: PrincipalDep
) -> ConsultationOut:
    return ConsultationOut.of(await service.get_consultation(session, principal, consultation_id))


@router.get(
    "/{consultation_id}/events",
    summary="Server-Sent Events: `event: status` at every change, closes when terminal",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **_ERROR_RESPONSES},
)
async def consultation_events(
    consultation_id: str, request: Request, runtime: RuntimeDep, principal: PrincipalDep
) -> StreamingResponse:
    async with runtime.db.session() as session:
        await service.get_consultation(session, principal, consultation_id)
    return StreamingResponse(
        status_events(runtime, consultation_id, request.is_disconnected),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/{consultation_id}/transcript", response_model=TranscriptOut, responses=_ERROR_RESPONSES
)
async def get_transcript(
    consultation_id: str, session: SessionDep, principal: PrincipalDep
) -> TranscriptOut:
    await service.get_consultation(session, principal, consultation_id)
    transcript = await repository.get_transcript(session, consultation_id)
    if transcript is None:
        raise NotFound("The transcript is not ready yet.", code="transcript_not_found")
    await record(session, principal, "transcript.viewed", consultation_id=consultation_id)
    return TranscriptOut.of(transcript)


@router.get(
    "/{consultation_id}/audio",
    summary="The recording, 16 kHz mono FLAC (WAV for older consultations); byte ranges",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"audio/flac": {}, "audio/wav": {}}},
        206: {"description": "A byte range"},
        **_ERROR_RESPONSES,
    },
)
async def get_audio(
    consultation_id: str,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    range_header: Annotated[str | None, Header(alias="Range", max_length=100)] = None,
) -> Response:
    consultation = await service.get_consultation(session, principal, consultation_id)
    if consultation.audio_deleted_at is not None or not await asyncio.to_thread(
        runtime.audio.has, consultation_id, "normalized"
    ):
        raise AudioGone()
    if range_header is None or range_header.startswith("bytes=0-"):
        # One record per listening, not one per seek.
        await record(session, principal, "audio.played", consultation_id=consultation_id)
    return audio_response(runtime.audio, consultation_id, range_header)


@router.patch(
    "/{consultation_id}/transcript/utterances/{utterance_id}",
    response_model=TranscriptOut,
    responses=_ERROR_RESPONSES,
    summary="Correct who spoke an utterance (speaker roles are a heuristic)",
)
async def correct_speaker(
    consultation_id: str,
    utterance_id: str,
    body: SpeakerIn,
    session: SessionDep,
    principal: PrincipalDep,
) -> TranscriptOut:
    await service.correct_speaker(
        session, principal, consultation_id, utterance_id[:16], body.speaker
    )
    transcript = await repository.get_transcript(session, consultation_id)
    assert transcript is not None
    await session.refresh(transcript, ["utterances"])
    return TranscriptOut.of(transcript)


@router.get("/{consultation_id}/note", response_model=NoteOut, responses=_ERROR_RESPONSES)
async def get_note(
    consultation_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    version: Annotated[int | None, Query(ge=1, le=100000)] = None,
) -> NoteOut:
    note = await service.get_note(session, principal, consultation_id, version)
    await record(
        session, principal, "note.viewed", consultation_id=consultation_id, version=note.version
    )
    return NoteOut.of(note)


@router.get(
    "/{consultation_id}/note/summary",
    response_model=PatientSummaryOut,
    responses=_ERROR_RESPONSES,
    summary="After-visit instructions for the patient (made from the note's plan)",
)
async def get_patient_summary(
    consultation_id: str,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    version: Annotated[int | None, Query(ge=1, le=100000)] = None,
) -> PatientSummaryOut:
    note, summary = await service.get_patient_summary(
        session, runtime, principal, consultation_id, version
    )
    await record(
        session, principal, "summary.viewed", consultation_id=consultation_id, version=note.version
    )
    return PatientSummaryOut(
        version=note.version,
        language=summary.language,
        writer=summary.writer,
        intro=summary.intro,
        items=[SummaryItemOut(text=i.text, evidence=list(i.evidence)) for i in summary.items],
    )


@router.put("/{consultation_id}/note", response_model=NoteOut, responses=_ERROR_RESPONSES)
async def put_note(
    consultation_id: str,
    body: NoteIn,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
) -> NoteOut:
    """Save an edited draft as a new version; sentences are re-verified against the evidence."""
    return NoteOut.of(
        await service.save_edited_note(session, runtime, principal, consultation_id, body)
    )


@router.patch(
    "/{consultation_id}/note/codes/{code}",
    response_model=NoteOut,
    responses=_ERROR_RESPONSES,
    summary="Accept or reject a suggested ICD-10-CM code on the latest draft",
)
async def decide_code(
    consultation_id: str,
    code: Annotated[str, Path(max_length=10, pattern=r"^[A-Z0-9.]+$")],
    body: CodeDecisionIn,
    session: SessionDep,
    principal: PrincipalDep,
) -> NoteOut:
    return NoteOut.of(
        await service.decide_code(
            session, principal, consultation_id, code, body.status, body.version
        )
    )


@router.post("/{consultation_id}/note/sign", response_model=NoteOut, responses=_ERROR_RESPONSES)
async def sign_note(
    consultation_id: str, body: SignNoteIn, session: SessionDep, principal: PrincipalDep
) -> NoteOut:
    """Lock the latest version as signed by the signed-in clinician (or ``signed_by``)."""
    return NoteOut.of(
        await service.sign_note(session, principal, consultation_id, body.signed_by, body.version)
    )


@router.post(
    "/{consultation_id}/note/regenerate", response_model=NoteOut, responses=_ERROR_RESPONSES
)
async def regenerate_note(
    consultation_id: str,
    body: RegenerateIn,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
) -> NoteOut:
    return NoteOut.of(
        await service.regenerate_note(session, runtime, principal, consultation_id, body.template)
    )


@router.post(
    "/{consultation_id}/retry",
    status_code=202,
    response_model=ConsultationOut,
    responses=_ERROR_RESPONSES,
)
async def retry_consultation(
    consultation_id: str, runtime: RuntimeDep, principal: PrincipalDep
) -> ConsultationOut:
    """Resume a failed consultation from its first unfinished step."""
    async with runtime.db.session() as session:
        await service.get_consultation(session, principal, consultation_id)
    await engine.retry(runtime, consultation_id)
    async with runtime.db.session() as session:
        await record(session, principal, "consultation.retried", consultation_id=consultation_id)
        return ConsultationOut.of(
            await service.get_consultation(session, principal, consultation_id)
        )


@router.delete("/{consultation_id}", status_code=204, responses=_ERROR_RESPONSES)
async def delete_consultation(
    consultation_id: str, runtime: RuntimeDep, principal: PrincipalDep
) -> Response:
    """Delete the audio, transcript and all note versions. Running processing is cancelled."""
    async with runtime.db.session() as session:
        await service.get_consultation(session, principal, consultation_id)
    await engine.cancel(consultation_id)
    async with runtime.db.session() as session:
        await repository.delete_consultation(session, consultation_id)
        await record(session, principal, "consultation.deleted", consultation_id=consultation_id)
    await asyncio.to_thread(runtime.audio.delete, consultation_id)
    log.info("consultation deleted", consultation_id=consultation_id)
    return Response(status_code=204)
