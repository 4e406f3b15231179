"""ORM models, one per file. Importing this package registers every table on Base.metadata."""

from clinscribe.models.consultation import (
    Consultation,
    ConsultationEvent,
    ConsultationStatus,
    Stage,
)
from clinscribe.models.note import Note, NoteSectionRow, NoteSentenceRow
from clinscribe.models.transcript import Transcript, TranscriptChunk, UtteranceRow

__all__ = [
    "Consultation",
    "ConsultationEvent",
    "ConsultationStatus",
    "Note",
    "NoteSectionRow",
    "NoteSentenceRow",
    "Stage",
    "Transcript",
    "TranscriptChunk",
    "UtteranceRow",
]
