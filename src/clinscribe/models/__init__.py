"""ORM models, one per file. Importing this package registers every table on Base.metadata."""

from clinscribe.models.consultation import Consultation, ConsultationStatus, Stage
from clinscribe.models.note import Note, NoteSectionRow, NoteSentenceRow
from clinscribe.models.transcript import Transcript, UtteranceRow

__all__ = [
    "Consultation",
    "ConsultationStatus",
    "Note",
    "NoteSectionRow",
    "NoteSentenceRow",
    "Stage",
    "Transcript",
    "UtteranceRow",
]
