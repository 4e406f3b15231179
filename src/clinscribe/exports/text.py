"""The note as plain text or markdown, for copy-paste into any EMR.

One heading per section, one sentence per line (a bullet), the signed status on the last line.
A draft says so at the top and at the bottom.
"""

from __future__ import annotations

import re
from typing import Literal

from clinscribe.exports.document import ExportedNote, format_time, one_line

TextFormat = Literal["text", "markdown"]
MEDIA_TYPES: dict[TextFormat, str] = {"text": "text/plain", "markdown": "text/markdown"}
NOTHING_RECORDED = "Nothing recorded."
# Characters that would turn a sentence into markup (emphasis, code, links, HTML).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>~])")
# ... and at the start of a line, what would open a nested list or a heading.
_LINE_START_MARKER = re.compile(r"^(\d{1,9})([.)])(?=\s|$)|^([-+=#])")


def render_text(note: ExportedNote, text_format: TextFormat = "text") -> str:
    if text_format == "markdown":
        return _markdown(note)
    return _plain(note)


def _details(note: ExportedNote) -> list[tuple[str, str]]:
    details = [("Clinic", one_line(note.clinic_name))]
    if note.patient_ref:
        details.append(("Patient", one_line(note.patient_ref)))
    details.append(("Consultation", format_time(note.consultation_date)))
    if note.clinician is not None:
        details.append(("Clinician", one_line(note.clinician.name)))
    details.append(("Note version", f"{note.version} ({format_time(note.version_date)})"))
    return details


def _plain(note: ExportedNote) -> str:
    lines = [one_line(note.document_title)]
    if not note.is_signed:
        lines.append(note.status_line)
    lines += [f"{label}: {value}" for label, value in _details(note)]
    for section in note.sections:
        lines += ["", one_line(section.title).upper()]
        sentences = [one_line(s) for s in section.sentences if one_line(s)]
        lines += [f"- {s}" for s in sentences] or [NOTHING_RECORDED]
    lines += ["", note.status_line]
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", one_line(text))
    return _LINE_START_MARKER.sub(lambda m: f"{m[1] or ''}\\{m[2] or m[3]}", escaped)


def _markdown(note: ExportedNote) -> str:
    lines = [f"# {_escape(note.document_title)}", ""]
    if not note.is_signed:
        lines += [f"**{note.status_line}**", ""]
    lines += [f"- **{label}:** {_escape(value)}" for label, value in _details(note)]
    for section in note.sections:
        lines += ["", f"## {_escape(section.title)}", ""]
        sentences = [_escape(s) for s in section.sentences if one_line(s)]
        lines += [f"- {s}" for s in sentences] or [f"_{NOTHING_RECORDED}_"]
    lines += ["", "---", "", _escape(note.status_line)]
    return "\n".join(lines) + "\n"
