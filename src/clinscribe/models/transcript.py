"""A consultation's transcript: utterances with timing and speaker, in order."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from clinscribe.db.base import Base, UtcDateTime, utcnow


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
    text: Mapped[str] = mapped_column(Text)
    transcript: Mapped[Transcript] = relationship(back_populates="utterances")

    @property
    def public_id(self) -> str:
        return f"u{self.seq}"
