"""A consultation's transcript: utterances with timing and speaker, in order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from clinscribe.db.base import Base, UtcDateTime, utcnow
from clinscribe.db.encrypted import EncryptedJSON, EncryptedText


class Transcript(Base):
    __tablename__ = "transcripts"

    consultation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("consultations.id", ondelete="CASCADE"), primary_key=True
    )
    language: Mapped[str] = mapped_column(String(16))
    duration_s: Mapped[float] = mapped_column(Float)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    utterances: Mapped[list[UtteranceRow]] = relationship(
        back_populates="transcript",
        order_by="UtteranceRow.seq",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
    )


class UtteranceRow(Base):
    __tablename__ = "utterances"
    __table_args__ = (UniqueConstraint("consultation_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consultation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("transcripts.consultation_id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    speaker: Mapped[str] = mapped_column(String(16), default="unknown")
    text: Mapped[str] = mapped_column(EncryptedText("utterances.text"))
    transcript: Mapped[Transcript] = relationship(back_populates="utterances")

    @property
    def public_id(self) -> str:
        return f"u{self.seq}"


class TranscriptChunk(Base):
    """The transcript of one piece of a long recording, kept until the pieces are merged.

    Each chunk is its own checkpoint: after a crash only chunks without a row are sent to the
    provider again.
    """

    __tablename__ = "transcript_chunks"
    __table_args__ = (UniqueConstraint("consultation_id", "index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consultation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("consultations.id", ondelete="CASCADE"), index=True
    )
    index: Mapped[int] = mapped_column(Integer)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    # [[start, end, text, speaker_id | null], ...] relative to the chunk's own start
    segments: Mapped[list[list[Any]]] = mapped_column(
        EncryptedJSON("transcript_chunks.segments"), default=list
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
