"""All SQL for consultations, transcripts and notes. Callers own the session and commit it."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clinscribe.db.base import utcnow
from clinscribe.models import (
    Consultation,
    ConsultationEvent,
    Note,
    NoteSectionRow,
    NoteSentenceRow,
    Transcript,
    TranscriptChunk,
    UtteranceRow,
)
from clinscribe.notes.model import NoteDraft, Utterance
from clinscribe.providers.stt.base import TranscriptionResult
from clinscribe.webhooks import repository as webhook_repository


async def add_consultation(session: AsyncSession, consultation: Consultation) -> None:
    session.add(consultation)
    await session.flush()
    await add_event(session, consultation)


async def get_consultation(session: AsyncSession, consultation_id: str) -> Consultation | None:
    return await session.get(Consultation, consultation_id, populate_existing=True)


async def get_clinic_consultation(
    session: AsyncSession, clinic_id: str, consultation_id: str
) -> Consultation | None:
    """The consultation only if it belongs to the clinic (another clinic's id: None)."""
    consultation = await get_consultation(session, consultation_id)
    return consultation if consultation and consultation.clinic_id == clinic_id else None


async def list_consultations(
    session: AsyncSession,
    *,
    clinic_id: str,
    status: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> list[Consultation]:
    """Newest first; ``before`` is the (created_at, id) of the last row of the previous page;
    ``created_after``/``created_before`` bound the creation time as [after, before)."""
    query = select(Consultation).where(Consultation.clinic_id == clinic_id)
    if status is not None:
        query = query.where(Consultation.status == status)
    if created_after is not None:
        query = query.where(Consultation.created_at >= created_after)
    if created_before is not None:
        query = query.where(Consultation.created_at < created_before)
    if before is not None:
        created_at, last_id = before
        query = query.where(
            or_(
                Consultation.created_at < created_at,
                and_(Consultation.created_at == created_at, Consultation.id < last_id),
            )
        )
    query = query.order_by(Consultation.created_at.desc(), Consultation.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())


async def list_unfinished(session: AsyncSession) -> list[Consultation]:
    query = select(Consultation).where(Consultation.status.in_(("queued", "processing")))
    return list((await session.scalars(query)).all())


async def update_progress(
    session: AsyncSession,
    consultation_id: str,
    *,
    status: str,
    stage: str | None,
    error: tuple[str, str, bool] | None = None,
    duration_s: float | None = None,
    completed: bool = False,
) -> None:
    values: dict[str, object] = {"status": status, "stage": stage, "updated_at": utcnow()}
    code, message, retryable = error if error is not None else (None, None, None)
    values.update(error_code=code, error_message=message, error_retryable=retryable)
    if duration_s is not None:
        values["duration_s"] = duration_s
    if completed:
        values["completed_at"] = utcnow()
    await session.execute(
        update(Consultation).where(Consultation.id == consultation_id).values(**values)
    )
    session.add(
        ConsultationEvent(
            consultation_id=consultation_id, status=status, stage=stage, error_code=code
        )
    )
    await session.flush()


async def add_event(session: AsyncSession, consultation: Consultation) -> None:
    session.add(
        ConsultationEvent(
            consultation_id=consultation.id,
            status=consultation.status,
            stage=consultation.stage,
            error_code=consultation.error_code,
        )
    )
    await session.flush()


async def events_after(
    session: AsyncSession, consultation_ids: Collection[str], after_id: int
) -> list[ConsultationEvent]:
    """The events of these consultations with an id above ``after_id``, oldest first."""
    query = (
        select(ConsultationEvent)
        .where(ConsultationEvent.consultation_id.in_(consultation_ids))
        .where(ConsultationEvent.id > after_id)
        .order_by(ConsultationEvent.id)
    )
    return list((await session.scalars(query)).all())


async def statuses_of(session: AsyncSession, consultation_ids: Collection[str]) -> dict[str, str]:
    """The status of each of these consultations that still exists."""
    query = select(Consultation.id, Consultation.status).where(
        Consultation.id.in_(consultation_ids)
    )
    return {row.id: row.status for row in await session.execute(query)}


async def get_consultations(
    session: AsyncSession, consultation_ids: Collection[str]
) -> dict[str, Consultation]:
    query = (
        select(Consultation)
        .where(Consultation.id.in_(consultation_ids))
        .execution_options(populate_existing=True)
    )
    return {row.id: row for row in await session.scalars(query)}


async def last_event_id(session: AsyncSession, consultation_id: str) -> int:
    query = select(func.max(ConsultationEvent.id)).where(
        ConsultationEvent.consultation_id == consultation_id
    )
    return int((await session.scalar(query)) or 0)


async def delete_consultation(session: AsyncSession, consultation_id: str) -> None:
    # Explicit deletes in child-to-parent order: SQLite only cascades with foreign_keys=ON,
    # and we do not want correctness to hang on a PRAGMA.
    note_ids = select(Note.id).where(Note.consultation_id == consultation_id)
    section_ids = select(NoteSectionRow.id).where(NoteSectionRow.note_id.in_(note_ids))
    await session.execute(
        delete(NoteSentenceRow).where(NoteSentenceRow.section_id.in_(section_ids))
    )
    await session.execute(delete(NoteSectionRow).where(NoteSectionRow.note_id.in_(note_ids)))
    await session.execute(delete(Note).where(Note.consultation_id == consultation_id))
    await session.execute(
        delete(UtteranceRow).where(UtteranceRow.consultation_id == consultation_id)
    )
    await session.execute(delete(Transcript).where(Transcript.consultation_id == consultation_id))
    await session.execute(
        delete(ConsultationEvent).where(ConsultationEvent.consultation_id == consultation_id)
    )
    # Webhook messages of subscriptions that opted in to patient data carry some of it.
    await webhook_repository.forget_consultation(session, consultation_id)
    await session.execute(delete(Consultation).where(Consultation.id == consultation_id))


# Transcripts


async def get_transcript(session: AsyncSession, consultation_id: str) -> Transcript | None:
    return await session.get(Transcript, consultation_id)


async def save_transcript(
    session: AsyncSession, consultation_id: str, result: TranscriptionResult
) -> Transcript:
    transcript = Transcript(
        consultation_id=consultation_id,
        language=result.language,
        duration_s=result.duration_s,
        provider=result.provider,
        model=result.model,
    )
    transcript.utterances = [
        UtteranceRow(
            consultation_id=consultation_id,
            seq=index,
            start=segment.start,
            end=segment.end,
            speaker=segment.speaker,
            text=segment.text,
        )
        for index, segment in enumerate(result.segments, start=1)
    ]
    session.add(transcript)
    await session.flush()
    return transcript


async def get_chunk(
    session: AsyncSession, consultation_id: str, index: int
) -> TranscriptChunk | None:
    query = select(TranscriptChunk).where(
        TranscriptChunk.consultation_id == consultation_id, TranscriptChunk.index == index
    )
    return (await session.scalars(query)).first()


async def save_chunk(
    session: AsyncSession,
    consultation_id: str,
    index: int,
    span: tuple[float, float],
    result: TranscriptionResult,
) -> None:
    session.add(
        TranscriptChunk(
            consultation_id=consultation_id,
            index=index,
            start=span[0],
            end=span[1],
            provider=result.provider,
            model=result.model,
            segments=[[s.start, s.end, s.text, s.speaker_id] for s in result.segments],
        )
    )
    await session.flush()


async def list_chunks(session: AsyncSession, consultation_id: str) -> list[TranscriptChunk]:
    query = (
        select(TranscriptChunk)
        .where(TranscriptChunk.consultation_id == consultation_id)
        .order_by(TranscriptChunk.index)
    )
    return list((await session.scalars(query)).all())


async def delete_chunks(session: AsyncSession, consultation_id: str) -> None:
    await session.execute(
        delete(TranscriptChunk).where(TranscriptChunk.consultation_id == consultation_id)
    )


async def set_speaker(
    session: AsyncSession, consultation_id: str, seq: int, speaker: str
) -> UtteranceRow | None:
    query = select(UtteranceRow).where(
        UtteranceRow.consultation_id == consultation_id, UtteranceRow.seq == seq
    )
    row = (await session.scalars(query)).first()
    if row is not None:
        row.speaker = speaker
        await session.flush()
    return row


def utterances_of(transcript: Transcript) -> list[Utterance]:
    return [
        Utterance(
            id=row.public_id,
            start=row.start,
            end=row.end,
            speaker=row.speaker,  # type: ignore[arg-type]
            text=row.text,
        )
        for row in transcript.utterances
    ]


# Notes


async def get_note(
    session: AsyncSession, consultation_id: str, version: int | None = None
) -> Note | None:
    query = select(Note).where(Note.consultation_id == consultation_id)
    if version is not None:
        query = query.where(Note.version == version)
    query = query.order_by(Note.version.desc()).limit(1)
    return (await session.scalars(query)).first()


async def count_notes(session: AsyncSession, consultation_id: str) -> int:
    query = select(func.count()).select_from(Note).where(Note.consultation_id == consultation_id)
    return int((await session.scalar(query)) or 0)


async def add_note(session: AsyncSession, consultation_id: str, draft: NoteDraft) -> Note:
    latest = await session.scalar(
        select(func.max(Note.version)).where(Note.consultation_id == consultation_id)
    )
    note = Note(
        consultation_id=consultation_id,
        version=(latest or 0) + 1,
        template=draft.template,
        writer=draft.writer,
        status="draft",
        omissions=draft.omissions,
        codes=draft.codes,
    )
    note.sections = [
        NoteSectionRow(
            position=s_index,
            key=section.key,
            title=section.title,
            sentences=[
                NoteSentenceRow(
                    position=index,
                    text=sentence.text,
                    evidence=sentence.evidence,
                    flags=sentence.flags,
                )
                for index, sentence in enumerate(section.sentences)
            ],
        )
        for s_index, section in enumerate(draft.sections)
    ]
    session.add(note)
    await session.flush()
    return note


async def sign_note(session: AsyncSession, note: Note, signer: str) -> None:
    note.status = "signed"
    note.signed_by = signer
    note.signed_at = utcnow()
    await session.flush()


def draft_of(note: Note) -> NoteDraft:
    from clinscribe.notes.model import NoteSection, NoteSentence

    return NoteDraft(
        template=note.template,
        writer=note.writer,
        sections=[
            NoteSection(
                key=section.key,
                title=section.title,
                sentences=[
                    NoteSentence(text=s.text, evidence=list(s.evidence), flags=list(s.flags))
                    for s in section.sentences
                ],
            )
            for section in note.sections
        ],
        omissions=list(note.omissions),
        codes=list(note.codes),
    )


async def set_patient_summary(session: AsyncSession, note: Note, summary: dict[str, Any]) -> None:
    note.patient_summary = summary
    await session.flush()


async def set_codes(session: AsyncSession, note: Note, codes: list[dict[str, object]]) -> None:
    note.codes = codes
    await session.flush()


async def replace_flags(session: AsyncSession, note: Note, draft: NoteDraft) -> None:
    """Store the verifier's flags on an existing note version (same shape as ``draft``)."""
    for section_row, section in zip(note.sections, draft.sections, strict=True):
        for sentence_row, sentence in zip(section_row.sentences, section.sentences, strict=True):
            sentence_row.flags = list(sentence.flags)
    note.omissions = list(draft.omissions)
    await session.flush()
