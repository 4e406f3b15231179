"""A note version as a PDF (A4), for printing and for systems that take documents only.

Header (clinic, document title), the consultation's details, every section with its
sentences as bullets, and the signature line. Text is set in Noto Sans with Noto Sans Tamil as
fallback and shaped with HarfBuzz (see ``fonts.py``), so Tamil, Hindi and code-mixed English
print correctly. A character no font here covers (Telugu, Arabic, emoji, ...) is replaced
by U+FFFD and the PDF ends with a notice saying so: it is never silently dropped.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from clinscribe.exports.document import ExportedNote, format_time, one_line
from clinscribe.exports.fonts import PdfFonts, packaged_fonts

PDF_MEDIA_TYPE = "application/pdf"
# fpdf2 quotes the characters it cannot draw in its warnings: they would be note text.
logging.getLogger("fpdf").setLevel(logging.ERROR)
logging.getLogger("fontTools").setLevel(logging.ERROR)

_PLAIN_PUNCTUATION = {
    "\u2013": "-",
    "\u2014": "-",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2022": "-",
    "\u2026": "...",
    "\u20b9": "Rs.",
}
_INK = (25, 25, 25)
_MUTED = (95, 95, 95)
_ACCENT = (20, 70, 130)
_LINE_H = 5.6


@dataclass
class _Text:
    """Makes text printable with the fonts at hand and counts what could not be."""

    fonts: PdfFonts
    replaced: int = 0

    def __call__(self, text: str) -> str:
        return "".join(self._char(char) for char in one_line(text))

    def _char(self, char: str) -> str:
        if self.fonts.covers(char):
            return char
        if unicodedata.category(char) == "Cf":
            return ""  # zero-width joiners and marks: invisible, shaping works without them
        plain = _PLAIN_PUNCTUATION.get(char)
        if plain is not None and all(self.fonts.covers(c) for c in plain):
            return plain
        self.replaced += 1
        return self.fonts.replacement


class _NotePdf(FPDF):
    def __init__(self, fonts: PdfFonts, footer_label: str) -> None:
        super().__init__(format="A4")
        self._footer_family = fonts.main_family
        self._footer_label = footer_label

    def header(self) -> None:
        # fpdf2 2.8.9: when the first text line of a page starts in a fallback font (a Tamil
        # sentence running over a page break), the page's font is set inside a q/Q block and
        # is gone after it; the next bullet is then drawn with no font ("No font in show").
        # Setting the page's font first, outside any block, avoids that path.
        if self.current_font is not None:
            self._out(self._set_font_for_page(self.current_font, self.font_size_pt))

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self._footer_family, size=8)
        self.set_text_color(*_MUTED)
        self.cell(0, 5, f"{self._footer_label} · page {self.page_no()} of {{nb}}", align="C")


def _new_pdf(note: ExportedNote, fonts: PdfFonts) -> _NotePdf:
    label = f"note-{note.consultation_id}-v{note.version}"
    pdf = _NotePdf(fonts, label)
    for family, path in fonts.files:
        pdf.add_font(family, "", path)
    if len(fonts.files) > 1:
        pdf.set_fallback_fonts([family for family, _ in fonts.files[1:]], exact_match=False)
    if fonts.shaping:
        pdf.set_text_shaping(True)
    pdf.set_margins(18, 16, 18)
    pdf.set_auto_page_break(True, margin=18)
    pdf.set_creator("clinscribe")
    pdf.set_lang(note.language)
    pdf.set_font(fonts.main_family, size=10.5)  # before the first page: see header()
    return pdf


def render_pdf(note: ExportedNote, fonts: PdfFonts | None = None) -> bytes:
    """The PDF's bytes. ``fonts``: the packaged Noto fonts unless a test picks others."""
    fonts = fonts or packaged_fonts()
    text = _Text(fonts)
    pdf = _new_pdf(note, fonts)
    pdf.set_title(one_line(note.document_title))  # document info is UTF-16: any script
    pdf.add_page()
    _header(pdf, fonts, text, note)
    for section in note.sections:
        _section(pdf, fonts, text, section.title, section.sentences)
    _signature(pdf, fonts, text, note)
    if text.replaced:
        _notice(pdf, fonts, text.replaced)
    return bytes(pdf.output())


def _write(pdf: FPDF, text: str, *, size: float, color: tuple[int, int, int] = _INK) -> None:
    pdf.set_font(size=size)
    pdf.set_text_color(*color)
    pdf.multi_cell(0, size * 0.5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _rule(pdf: FPDF, gap: float = 2.5) -> None:
    pdf.ln(gap)
    pdf.set_draw_color(190, 190, 190)
    pdf.set_line_width(0.3)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
    pdf.ln(gap)


def _header(pdf: FPDF, fonts: PdfFonts, text: _Text, note: ExportedNote) -> None:
    pdf.set_font(fonts.main_family)
    _write(pdf, text(note.clinic_name), size=16)
    _write(pdf, text(note.document_title), size=12.5, color=_MUTED)
    pdf.ln(3)
    signed = "not signed (draft)"
    if note.signature is not None:
        signed = f"{format_time(note.signature.signed_at)} by {note.signature.signed_by}"
    details = [
        ("Patient reference", note.patient_ref or "not recorded"),
        ("Consultation date", format_time(note.consultation_date)),
        ("Clinician", note.clinician.name if note.clinician else "not recorded"),
        ("Template", note.template_title),
        ("Note version", f"{note.version}, saved {format_time(note.version_date)}"),
        ("Signed", signed),
    ]
    for label, value in details:
        pdf.set_font(size=9.5)
        pdf.set_text_color(*_MUTED)
        pdf.cell(40, _LINE_H, label)
        pdf.set_text_color(*_INK)
        pdf.multi_cell(0, _LINE_H, text(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _rule(pdf)


def _section(
    pdf: FPDF, fonts: PdfFonts, text: _Text, title: str, sentences: tuple[str, ...]
) -> None:
    if pdf.get_y() > pdf.page_break_trigger - 25:
        pdf.add_page()  # keep a heading with its first lines
    pdf.ln(2)
    _write(pdf, text(title), size=12.5, color=_ACCENT)
    pdf.ln(1)
    visible = [text(s) for s in sentences if one_line(s)]
    if not visible:
        _write(pdf, "Nothing recorded.", size=10.5, color=_MUTED)
    bullet = "\u2022" if fonts.covers("\u2022") else "-"
    for sentence in visible:
        pdf.set_font(size=10.5)
        pdf.set_text_color(*_INK)
        pdf.set_x(pdf.l_margin + 1.5)
        pdf.cell(4.5, _LINE_H, bullet)
        pdf.multi_cell(0, _LINE_H, sentence, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(0.8)


def _signature(pdf: FPDF, fonts: PdfFonts, text: _Text, note: ExportedNote) -> None:
    if pdf.get_y() > pdf.page_break_trigger - 20:
        pdf.add_page()
    _rule(pdf, gap=4)
    _write(pdf, text(note.status_line), size=11)


def _notice(pdf: FPDF, fonts: PdfFonts, replaced: int) -> None:
    pdf.ln(4)
    _write(
        pdf,
        f"This PDF cannot show {replaced} character(s) of the note (no font for their script "
        f"here); they are replaced by {fonts.replacement}. The text and FHIR exports contain "
        "the exact wording.",
        size=9,
        color=_MUTED,
    )
