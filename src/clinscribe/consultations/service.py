"""Consultation use cases. Services take an open session and never commit it."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from clinscribe import metrics
from clinscribe.audit.service import record
from clinscribe.auth.principal import Principal
from clinscribe.consultations import repository
from clinscribe.consultations.schemas import NoteIn
from clinscribe.consultations.upload import ParsedUpload, read_audio_upload
from clinscribe.errors import BadRequest, ClinscribeError, Conflict, NotFound
from clinscribe.models import Consultation, ConsultationStatus, Note
from clinscribe.notes.codes import suggest_codes
from clinscribe.notes.evidence import verify_note
from clinscribe.notes.model import NoteDraft, NoteSection, NoteSentence
from clinscribe.notes.summary import (
    PatientSummary,
    llm_summary,
    offline_summary,
    plan_items,
    summary_from_json,
    summary_to_json,
)
from clinscribe.pipeline.audio import AudioInfo, inspect_audio
from clinscribe.pipeline.runtime import Runtime
from clinscribe.providers.llm.openai_compat import OpenAICompatibleChat
from clinscribe.providers.registry import check_language
from clinscribe.security.text_input import NulInText, has_nul
from clinscribe.webhooks.events import emit_consultation_event

log = structlog.get_logger("clinscribe.consultations")

_MAX_TEXT_FIELD = {"patient_ref": 128, "title": 200}


@dataclass
class AcceptedUpload:
    upload: ParsedUpload
    info: AudioInfo
    language: str
    template: str
    patient_ref: str | None
    title: str | None


async def receive_upload(
    runtime: Runtime,
    content_type: str | None,
    content_length: str | None,
    body: AsyncIterator[bytes],
) -> AcceptedUpload:
    """Stream the upload to disk, then prove it is usable. Leaves no file behind on error."""
    settings = runtime.settings
    upload = await read_audio_upload(
        content_type,
        content_length,
        body,
        upload_dir=runtime.audio.upload_dir(),
        max_bytes=settings.max_upload_bytes,
    )
    try:
        if upload.audio_path is None:
            raise BadRequest(
                "No recording found: send the audio file in a multipart field named 'audio'.",
                code="missing_audio",
            )
        fields = upload.fields
        language = check_language(settings, fields.get("language") or settings.default_language)
        template = runtime.templates.get(fields.get("template") or settings.default_template).key
        if any(has_nul(value) for value in fields.values()):
            raise NulInText()
        for name, limit in _MAX_TEXT_FIELD.items():
            if len(fields.get(name) or "") > limit:
                raise BadRequest(f"'{name}' is longer than {limit} characters.", code="too_long")
        info = await asyncio.to_thread(
            inspect_audio, upload.audio_path, max_duration_s=settings.max_audio_minutes * 60
        )
    except BaseException as error:
        upload.discard()
        if isinstance(error, ClinscribeError):
            metrics.UPLOADS_REJECTED.labels(error.code).inc()
            log.info("upload rejected", error_code=error.code, bytes=upload.audio_bytes)
        raise
    return AcceptedUpload(
        upload=upload,
        info=info,
        language=language,
        template=template,
        patient_ref=fields.get("patient_ref") or None,
        title=fields.get("title") or None,
    )


_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{8,100}")


def consultation_id_for(principal: Principal, idempotency_key: str | None) -> str:
    """A new id; or, for a client's Idempotency-Key, the same id each time it is sent by the
    same caller (user or API key): keys of different callers never meet.

    A client that lost the answer to an upload (a network drop after the server accepted it)
    sends the same key again and gets the consultation it already created, not a second one.
    """
    if idempotency_key is None:
        return uuid.uuid4().hex
    if not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise BadRequest(
            "The Idempotency-Key header must be 8 to 100 letters, digits, '-' or '_' "
            "(a random UUID per recording is ideal).",
            code="bad_idempotency_key",
        )
    caller = f"{principal.clinic_id}:{principal.actor_type}:{principal.actor_id}"
    return hashlib.sha256(f"{caller}:{idempotency_key}".encode()).hexdigest()[:32]


async def find_consultation(
    session: AsyncSession, principal: Principal, consultation_id: str
) -> Consultation | None:
    return await repository.get_clinic_consultation(session, principal.clinic_id, consultation_id)


async def create_consultation(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    accepted: AcceptedUpload,
    consultation_id: str,
) -> Consultation:
    """Insert the consultation row and encrypt the audio into place (caller commits).

    The row is flushed before the audio moves: a concurrent upload with the same id fails
    here (IntegrityError) and never touches the first one's audio.
    """
    consultation = Consultation(
        id=consultation_id,
        clinic_id=principal.clinic_id,
        created_by=principal.label[:300],
        status=ConsultationStatus.QUEUED,
        stage=None,
        language=accepted.language,
        template=accepted.template,
        patient_ref=accepted.patient_ref,
        title=accepted.title,
        original_filename=accepted.upload.filename,
        audio_format=f"{accepted.info.format_name}/{accepted.info.codec}"[:64],
        audio_bytes=accepted.upload.audio_bytes,
        duration_s=accepted.info.duration_s,
        stt_provider=runtime.settings.stt_provider,
    )
    await repository.add_consultation(session, consultation)
    await record(session, principal, "consultation.created", consultation_id=consultation.id)
    assert accepted.upload.audio_path is not None
    await asyncio.to_thread(runtime.audio.adopt_upload, consultation.id, accepted.upload.audio_path)
    return consultation


async def get_consultation(
    session: AsyncSession, principal: Principal, consultation_id: str
) -> Consultation:
    """The caller's consultation; another clinic's id answers exactly like a missing one."""
    consultation = await repository.get_clinic_consultation(
        session, principal.clinic_id, consultation_id[:64]
    )
    if consultation is None:
        raise NotFound("No consultation with this id.", code="consultation_not_found")
    return consultation


async def get_note(
    session: AsyncSession, principal: Principal, consultation_id: str, version: int | None
) -> Note:
    await get_consultation(session, principal, consultation_id)
    note = await repository.get_note(session, consultation_id, version)
    if note is None:
        raise NotFound(
            "This consultation has no note yet (or no such version). Wait for processing to "
            "complete.",
            code="note_not_found",
        )
    return note


async def get_reviewable_note(
    session: AsyncSession, principal: Principal, consultation_id: str
) -> Note:
    """The latest version, once processing has finished writing and checking it.

    Before that, the pipeline may still change the version (its flags and omissions), so it
    cannot be edited, coded or signed yet.
    """
    consultation = await get_consultation(session, principal, consultation_id)
    if consultation.status != ConsultationStatus.COMPLETED:
        raise Conflict(
            "The note is still being written and checked. Wait until processing has completed.",
            code="not_completed",
        )
    return await get_note(session, principal, consultation_id, None)


async def correct_speaker(
    session: AsyncSession,
    principal: Principal,
    consultation_id: str,
    utterance_id: str,
    speaker: str,
) -> None:
    await get_consultation(session, principal, consultation_id)
    seq = utterance_id.removeprefix("u")
    row = None
    if utterance_id.startswith("u") and seq.isdigit() and len(seq) < 9:
        row = await repository.set_speaker(session, consultation_id, int(seq), speaker)
    if row is None:
        raise NotFound("No utterance with this id in the transcript.", code="utterance_not_found")
    await record(
        session,
        principal,
        "transcript.speaker_corrected",
        consultation_id=consultation_id,
        utterance_id=utterance_id,
        speaker=speaker,
    )


async def save_edited_note(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    consultation_id: str,
    body: NoteIn,
) -> Note:
    """Store an edited draft as a new version, re-verified against the transcript."""
    latest = await get_reviewable_note(session, principal, consultation_id)
    _check_latest(latest, body.base_version, "Your edit started from")
    transcript = await repository.get_transcript(session, consultation_id)
    if transcript is None:
        raise Conflict("The consultation has no transcript yet.", code="transcript_not_ready")
    utterances = repository.utterances_of(transcript)
    draft = NoteDraft(
        template=latest.template,
        writer="clinician",
        sections=[
            NoteSection(
                key=section.key,
                title=section.title,
                sentences=[
                    NoteSentence(text=s.text, evidence=list(s.evidence)) for s in section.sentences
                ],
            )
            for section in body.sections
        ],
        omissions=list(latest.omissions),
        codes=list(latest.codes),
    )
    if runtime.templates.has(latest.template):  # a removed clinic template: keep codes
        template = runtime.templates.get(latest.template)
        draft.codes = await asyncio.to_thread(suggest_codes, draft, template, list(latest.codes))
    verified = await asyncio.to_thread(verify_note, draft, utterances)
    note = await repository.add_note(session, consultation_id, verified)
    await record(
        session, principal, "note.edited", consultation_id=consultation_id, version=note.version
    )
    return note


def _check_latest(latest: Note, seen: int | None, what: str) -> None:
    if seen is not None and seen != latest.version:
        raise Conflict(
            f"{what} version {seen}, but version {latest.version} has been saved since. Reload "
            "the note, review the latest version and apply your change again.",
            code="stale_version",
        )


async def decide_code(
    session: AsyncSession,
    principal: Principal,
    consultation_id: str,
    code: str,
    status: str,
    version: int | None = None,
) -> Note:
    """Accept or reject a suggested code on the latest draft (a signed version is locked)."""
    latest = await get_reviewable_note(session, principal, consultation_id)
    _check_latest(latest, version, "You decided on")
    if latest.status == "signed":
        raise Conflict(
            "This note version is signed; amend it (save an edit) to change its codes.",
            code="already_signed",
        )
    codes = [dict(c) for c in latest.codes]
    matching = [c for c in codes if c.get("code") == code]
    if not matching:
        raise NotFound("This note has no such code suggestion.", code="code_not_found")
    for entry in matching:
        entry["status"] = status
    await repository.set_codes(session, latest, codes)
    await record(
        session,
        principal,
        "note.code_decided",
        consultation_id=consultation_id,
        version=latest.version,
        code=code,
        status=status,
    )
    return latest


async def get_patient_summary(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    consultation_id: str,
    version: int | None,
) -> tuple[Note, PatientSummary]:
    """The after-visit instructions of a note version: made on first request, then kept."""
    consultation = await get_consultation(session, principal, consultation_id)
    note = await get_note(session, principal, consultation_id, version)
    if note.patient_summary is not None:
        return note, summary_from_json(note.patient_summary)
    if not runtime.templates.has(note.template):
        raise Conflict(
            f"The note's template '{note.template}' is no longer configured; regenerate the "
            "note with another template first.",
            code="unknown_template",
        )
    draft = repository.draft_of(note)
    items = plan_items(draft, runtime.templates.get(note.template))
    summary = offline_summary(draft, runtime.templates.get(note.template))
    if runtime.settings.note_provider == "llm":
        chat = OpenAICompatibleChat(runtime.settings.llm, runtime.settings.retry)
        try:
            summary = await llm_summary(
                chat, items, consultation.language, runtime.settings.llm.max_output_tokens
            )
        finally:
            await chat.aclose()
    await repository.set_patient_summary(session, note, summary_to_json(summary))
    return note, summary


def signer_of(principal: Principal, signed_by: str | None) -> str:
    """Who signs: the signed-in clinician, or the clinician an integration names."""
    if principal.actor_type == "user":
        return principal.display_name
    if not signed_by:
        raise BadRequest(
            "Signing with an API key needs 'signed_by': the name of the clinician who signs.",
            code="signer_required",
        )
    return f"{signed_by} (via {principal.label})"


async def sign_note(
    session: AsyncSession,
    principal: Principal,
    consultation_id: str,
    signed_by: str | None,
    version: int | None,
) -> Note:
    signer = signer_of(principal, signed_by)
    latest = await get_reviewable_note(session, principal, consultation_id)
    if version is not None and version != latest.version:
        raise Conflict(
            f"Version {version} is not the latest (v{latest.version}). Review the latest "
            "version before signing.",
            code="stale_version",
        )
    if latest.status == "signed":
        raise Conflict(
            "This note version is already signed; amend it to make changes.", code="already_signed"
        )
    await repository.sign_note(session, latest, signer)
    await record(
        session, principal, "note.signed", consultation_id=consultation_id, version=latest.version
    )
    await emit_consultation_event(session, consultation_id, "note.signed", note=latest)
    return latest


async def regenerate_note(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    consultation_id: str,
    template_key: str,
) -> Note:
    """A new note version from the stored transcript, without transcribing again."""
    consultation = await get_consultation(session, principal, consultation_id)
    if consultation.status != ConsultationStatus.COMPLETED:
        raise Conflict(
            "Wait until processing has completed, then regenerate.", code="not_completed"
        )
    template = runtime.templates.get(template_key)
    transcript = await repository.get_transcript(session, consultation_id)
    if transcript is None:
        raise Conflict("The consultation has no transcript yet.", code="transcript_not_ready")
    utterances = repository.utterances_of(transcript)
    draft = await runtime.note_writer.write(utterances, template)
    previous = await repository.get_note(session, consultation_id)
    earlier = list(previous.codes) if previous else []
    draft.codes = await asyncio.to_thread(suggest_codes, draft, template, earlier)
    verified = await asyncio.to_thread(verify_note, draft, utterances)
    note = await repository.add_note(session, consultation_id, verified)
    await record(
        session,
        principal,
        "note.regenerated",
        consultation_id=consultation_id,
        version=note.version,
        template=template.key,
    )
    return note
