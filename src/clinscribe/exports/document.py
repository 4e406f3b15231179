"""What every export format renders: one note version with its consultation's metadata.

Plain data, no database rows: the renderers (text, FHIR, PDF) are pure functions of it, so
tests build one by hand.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

_SPACES = re.compile(r"\s+")
_NON_XML = frozenset("\ufffe\uffff")


@dataclass(frozen=True)
class Clinician:
    """A clinician named on the note. ``user_id`` only when a signed-in user acted."""

    name: str
    user_id: str | None = None


@dataclass(frozen=True)
class Signature:
    """Who signed the version, as stored when it was signed, and when."""

    signed_by: str
    signed_at: datetime


@dataclass(frozen=True)
class ExportSection:
    key: str
    title: str
    sentences: tuple[str, ...]


@dataclass(frozen=True)
class ExportedNote:
    consultation_id: str
    clinic_id: str
    clinic_name: str
    language: str  # of the consultation: ISO 639-1, e.g. "ta", "hi", "en"
    patient_ref: str | None
    title: str | None  # the consultation's title, if the clinician gave one
    consultation_date: datetime  # when the consultation was recorded (uploaded)
    template: str
    template_title: str
    version: int
    version_date: datetime  # when this version was saved
    signature: Signature | None  # None: a draft
    # The signer's account for a signed version, else whoever created the consultation;
    # None when that was an integration (API key) rather than a clinician.
    clinician: Clinician | None
    sections: tuple[ExportSection, ...]

    @property
    def is_signed(self) -> bool:
        return self.signature is not None

    @property
    def status_line(self) -> str:
        """The last line of every human-readable export."""
        if self.signature is None:
            return f"DRAFT \u2013 not signed (version {self.version})."
        return (
            f"Electronically signed by {one_line(self.signature.signed_by)} on "
            f"{format_time(self.signature.signed_at)} (version {self.version})."
        )

    @property
    def document_title(self) -> str:
        if self.title:
            return f"{one_line(self.title)} \u2013 {self.template_title}"
        return self.template_title


def format_time(moment: datetime) -> str:
    """Unambiguous for any reader: stored times are UTC and say so."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def one_line(text: str) -> str:
    """The text on one line: whitespace runs become one space, control characters go.

    A sentence edited in a browser may carry newlines or stray control characters; every
    format shows one sentence per line, and XML (FHIR narrative) forbids most controls.
    """
    visible = "".join(
        " " if char.isspace() else char
        for char in text
        if char.isspace()
        or (unicodedata.category(char) not in ("Cc", "Cs") and char not in _NON_XML)
    )
    return _SPACES.sub(" ", visible).strip()


def pdf_filename(note: ExportedNote) -> str:
    return f"note-{note.consultation_id}-v{note.version}.pdf"
