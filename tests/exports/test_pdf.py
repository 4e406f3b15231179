"""PDF export: the real PDF, read back with poppler's pdftotext and pdffonts."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from clinscribe.exports.document import ExportedNote, ExportSection, Signature, pdf_filename
from clinscribe.exports.fonts import core_fonts, packaged_fonts
from clinscribe.exports.pdf import render_pdf
from tests.exports.poppler import pdf_text, run, squeezed
from tests.exports.sample import CODE_MIXED, HINDI, TAMIL, every_sentence, signed_note

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

UNSUPPORTED = ExportSection("plan", "Plan", ("Telugu తెలుగు and an emoji 😀 here.",))


def _pdf(tmp_path: Path, note: ExportedNote, **kwargs: object) -> Path:
    data = render_pdf(note, **kwargs)  # type: ignore[arg-type]
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    path = tmp_path / pdf_filename(note)
    path.write_bytes(data)
    return path


def test_the_pdf_opens_and_pdftotext_shows_every_section_and_sentence(tmp_path: Path) -> None:
    note = signed_note()
    text = pdf_text(_pdf(tmp_path, note))
    lines = [line.strip() for line in text.splitlines()]
    for section in note.sections:
        assert section.title in lines
    flat = squeezed(text)
    for sentence in every_sentence(note):  # Tamil and Hindi included, character for character
        assert squeezed(sentence) in flat, sentence
    for detail in (
        "Anna Nagar Family Clinic",
        "Fever follow-up \u2013 SOAP note",
        "MRN-00421",
        "2024-05-01 10:30 UTC",  # consultation
        "2024-05-01 11:05 UTC by Dr Priya Raman",  # signed
        "Electronically signed by Dr Priya Raman on 2024-05-01 11:05 UTC (version 3).",
        "Nothing recorded.",
        "note-3f2c9a1b-v3 · page 1 of 1",
    ):
        assert detail in text, detail
    assert "cannot show" not in text


def test_tamil_and_hindi_are_set_in_the_packaged_noto_fonts_with_shaping(tmp_path: Path) -> None:
    fonts = packaged_fonts()
    assert [family for family, _ in fonts.files] == ["NotoSans", "NotoSansTamil"]
    assert fonts.shaping, "uharfbuzz is missing: Tamil and Devanagari would print unshaped"
    assert all(fonts.covers(char) for char in TAMIL + HINDI + CODE_MIXED)
    note = replace(signed_note(), sections=(ExportSection("subjective", "Subjective", (TAMIL,)),))
    listing = run("pdffonts", _pdf(tmp_path, note))
    embedded = [line for line in listing.splitlines() if "+Noto" in line]
    assert any("+NotoSans " in line or "+NotoSans\t" in line for line in embedded), listing
    assert any("+NotoSansTamil" in line for line in embedded), listing
    assert all(" yes yes " in line for line in embedded), listing  # embedded, subset


def test_characters_no_font_covers_are_replaced_and_the_pdf_says_so(tmp_path: Path) -> None:
    note = replace(signed_note(), sections=(UNSUPPORTED,))
    text = pdf_text(_pdf(tmp_path, note))
    assert "Telugu \ufffd\ufffd\ufffd\ufffd\ufffd\ufffd and an emoji \ufffd here." in text
    assert "cannot show 7 character(s)" in text and "exact wording" in text


def test_without_the_font_packages_it_falls_back_to_latin_1_and_says_so(tmp_path: Path) -> None:
    text = pdf_text(_pdf(tmp_path, signed_note(), fonts=core_fonts()))
    assert "Fever follow-up - SOAP note" in text  # the dash made plain, not dropped
    assert "Temperature 38.2 °C." in text and "Review in 3 days." in text
    assert "Patient ku fever irukku, paracetamol 500 mg eduthaanga - no relief." in text
    assert "cannot show" in text and "replaced by ?" in text


def test_text_that_starts_in_tamil_on_any_page_is_drawn_with_a_font(tmp_path: Path) -> None:
    # Clinic, titles, sentences and signer all in Tamil (the fallback font), over pages.
    sentences = tuple(f"{TAMIL} {HINDI} {n}" for n in range(80))
    note = replace(
        signed_note(),
        clinic_name=TAMIL,
        title=TAMIL,
        sections=(ExportSection("s1", TAMIL, sentences), ExportSection("s2", TAMIL, sentences)),
        signature=Signature(TAMIL, signed_note().signature.signed_at),  # type: ignore[union-attr]
    )
    text = pdf_text(_pdf(tmp_path, note))  # no stderr: fonts set
    assert squeezed(f"{TAMIL} {HINDI} 79") in squeezed(text)


def test_a_long_note_runs_over_pages_with_numbered_footers(tmp_path: Path) -> None:
    sentences = tuple(f"Finding number {n}: {CODE_MIXED} {TAMIL}" for n in range(1, 121))
    note = replace(signed_note(), sections=(ExportSection("objective", "Objective", sentences),))
    path = _pdf(tmp_path, note)
    pages = int(re.search(r"Pages:\s+(\d+)", run("pdfinfo", path)).group(1))  # type: ignore[union-attr]
    assert pages >= 3
    text = pdf_text(path)
    assert f"page {pages} of {pages}" in text
    assert all(f"Finding number {n}:" in text for n in (1, 60, 120))
