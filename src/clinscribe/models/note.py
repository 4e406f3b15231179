"""Clinical notes: numbered versions of sections of sentences, each citing its evidence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from clinscribe.db.base import Base, UtcDateTime, utcnow
from clinscribe.db.encrypted import EncryptedJSON, EncryptedText


class Note(Base):
    __tablename__ = "notes"
    __table_args__ = (UniqueConstraint("consultation_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consultation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("consultations.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    template: Mapped[str] = mapped_column(String(32))
    writer: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    omissions: Mapped[list[dict[str, Any]]] = mapped_column(
        EncryptedJSON("notes.omissions"), default=list
    )
    codes: Mapped[list[dict[str, Any]]] = mapped_column(EncryptedJSON("notes.codes"), default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    signed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    signed_by: Mapped[str | None] = mapped_column(String(200), default=None)
    # After-visit instructions made from this version on first request, then kept.
    patient_summary: Mapped[dict[str, Any] | None] = mapped_column(
        EncryptedJSON("notes.patient_summary"), default=None
    )
    sections: Mapped[list[NoteSectionRow]] = relationship(
        back_populates="note",
        order_by="NoteSectionRow.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
    )


class NoteSectionRow(Base):
    __tablename__ = "note_sections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    note: Mapped[Note] = relationship(back_populates="sections")
    sentences: Mapped[list[NoteSentenceRow]] = relationship(
        back_populates="section",
        order_by="NoteSentenceRow.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
    )


class NoteSentenceRow(Base):
    __tablename__ = "note_sentences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    section_id: Mapped[int] = mapped_column(
        ForeignKey("note_sections.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(EncryptedText("note_sentences.text"))
    evidence: Mapped[list[str]] = mapped_column(JSON, default=list)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    section: Mapped[NoteSectionRow] = relationship(back_populates="sentences")
