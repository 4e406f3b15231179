"""A consultation: one recorded doctor-patient encounter and where its processing stands."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clinscribe.db.base import Base, UtcDateTime, utcnow
from clinscribe.db.encrypted import EncryptedText


class ConsultationStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset(
    {ConsultationStatus.COMPLETED, ConsultationStatus.FAILED, ConsultationStatus.CANCELLED}
)


class Stage(StrEnum):
    """Pipeline stages in the order they run."""

    PREPARING_AUDIO = "preparing_audio"
    TRANSCRIBING = "transcribing"
    WRITING_NOTE = "writing_note"
    VERIFYING_NOTE = "verifying_note"
    FINALIZING = "finalizing"


class Consultation(Base):
    __tablename__ = "consultations"
    __table_args__ = (Index("ix_consultations_created_at_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinics.id"), index=True)
    created_by: Mapped[str | None] = mapped_column(String(300), default=None)
    status: Mapped[str] = mapped_column(String(16), default=ConsultationStatus.QUEUED, index=True)
    stage: Mapped[str | None] = mapped_column(String(32), default=None)
    language: Mapped[str] = mapped_column(String(16))
    template: Mapped[str] = mapped_column(String(32))
    # Patient references, titles and file names can name the patient: encrypted at rest.
    patient_ref: Mapped[str | None] = mapped_column(
        EncryptedText("consultations.patient_ref"), default=None
    )
    title: Mapped[str | None] = mapped_column(EncryptedText("consultations.title"), default=None)
    original_filename: Mapped[str | None] = mapped_column(
        EncryptedText("consultations.original_filename"), default=None
    )
    audio_format: Mapped[str | None] = mapped_column(String(64), default=None)
    audio_bytes: Mapped[int] = mapped_column(Integer, default=0)
    duration_s: Mapped[float | None] = mapped_column(Float, default=None)
    stt_provider: Mapped[str] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    error_retryable: Mapped[bool | None] = mapped_column(Boolean, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    # Retention: when the audio was deleted (the transcript and note stay).
    audio_deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class ConsultationEvent(Base):
    """Every status/stage change, in order: the source of the live event stream (SSE).

    Streaming from rows rather than from the current status means a fast stage is never
    skipped by a slow reader, and it works when API and worker are separate processes.
    """

    __tablename__ = "consultation_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consultation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("consultations.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(32), default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
