"""Plain text and markdown exports: headings, one sentence per line, the status at the end."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from clinscribe.exports.document import ExportSection
from clinscribe.exports.text import render_text
from tests.exports.sample import (
    CODE_MIXED,
    HINDI,
    MARKUP,
    SECTIONS,
    TAMIL,
    draft_note,
    every_sentence,
    signed_note,
)

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

SIGNED_LINE = "Electronically signed by Dr Priya Raman on 2024-05-01 11:05 UTC (version 3)."
DRAFT_LINE = "DRAFT \u2013 not signed (version 2)."


def test_plain_text_has_a_heading_per_section_and_one_sentence_per_line() -> None:
    text = render_text(signed_note(), "text")
    lines = text.splitlines()
    assert lines[0] == "Fever follow-up \u2013 SOAP note"
    assert "Clinic: Anna Nagar Family Clinic" in lines
    assert "Patient: MRN-00421" in lines
    assert "Consultation: 2024-05-01 10:30 UTC" in lines
    headings = [line for line in lines if line.isupper() and line.strip()]
    assert headings == ["SUBJECTIVE", "OBJECTIVE", "ASSESSMENT", "PLAN", "FOLLOW-UP CALLS"]
    for sentence in every_sentence(signed_note()):
        assert f"- {sentence}" in lines  # exactly, Tamil and Hindi included
    follow_up = lines.index("FOLLOW-UP CALLS")
    assert lines[follow_up + 1] == "Nothing recorded."
    assert lines[-1] == SIGNED_LINE
    assert "DRAFT" not in text
    assert text.endswith("\n")


def test_a_draft_says_so_at_the_top_and_at_the_end() -> None:
    for text_format in ("text", "markdown"):
        lines = render_text(draft_note(), text_format).splitlines()  # type: ignore[arg-type]
        assert DRAFT_LINE in " ".join(lines[:3]), text_format
        assert lines[-1] == DRAFT_LINE
        assert not any(line.startswith("Electronically signed") for line in lines)


def test_a_sentence_stays_on_one_line_whatever_the_editor_typed() -> None:
    messy = ExportSection("plan", "Plan", ("Take\nparacetamol\r\n 500 mg\t\x07daily.", "  ", ""))
    note = replace(signed_note(), sections=(messy,))
    lines = render_text(note, "text").splitlines()
    assert "- Take paracetamol 500 mg daily." in lines
    assert lines[lines.index("PLAN") + 1 :][:2] == ["- Take paracetamol 500 mg daily.", ""]


def test_markdown_renders_to_headings_and_bullets_with_the_sentences_as_literal_text() -> None:
    markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py (installed with rich)")
    source = render_text(signed_note(), "markdown")
    assert source.splitlines()[0] == "# Fever follow-up \u2013 SOAP note"
    html = markdown_it.MarkdownIt("commonmark").render(source)
    headings = re.findall(r"<h2>(.*?)</h2>", html)
    assert headings == [section.title for section in SECTIONS]
    items = re.findall(r"<li>(.*?)</li>", html.split("<h2>", 1)[1])
    for sentence in (TAMIL, HINDI, CODE_MIXED, "Temperature 38.2 °C."):
        assert sentence in items
    # Markup in a sentence stays text: no emphasis, link or HTML element comes out of it.
    escaped = (
        MARKUP.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
    )
    assert escaped in items
    assert "<a " not in html and "<b>" not in html
    assert html.count("<em>") == 1 and "<em>Nothing recorded.</em>" in html
    assert html.rstrip().endswith(f"<p>{SIGNED_LINE}</p>")


def test_markdown_keeps_list_markers_in_sentences_from_nesting_lists() -> None:
    markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py (installed with rich)")
    tricky = ("1. Paracetamol.", "- dash first", "# not a heading", "+ plus", "---")
    note = replace(signed_note(), sections=(ExportSection("plan", "Plan", tricky),))
    html = markdown_it.MarkdownIt("commonmark").render(render_text(note, "markdown"))
    assert re.findall(r"<li>(.*?)</li>", html.split("<h2>", 1)[1]) == list(tricky)
    assert "<ol" not in html and "<h1>not" not in html
    assert html.count("<hr />") == 1  # the rule before the status line, none from "---"
