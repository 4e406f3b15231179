"""poppler-utils (pdftotext, pdffonts, pdfinfo) run on a real PDF, for the export tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: .ci/run must install poppler-utils")
        pytest.skip(f"{name} not installed (apt-get install poppler-utils)")
    return path


def run(tool: str, pdf: Path, *args: str) -> str:
    """The tool's output; it must not complain (e.g. "Syntax Error: No font in show")."""
    done = subprocess.run(
        [_tool(tool), *args, str(pdf), *(["-"] if tool == "pdftotext" else [])],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert not done.stderr, done.stderr[:500]
    return done.stdout.decode("utf-8")


def pdf_text(pdf: Path) -> str:
    return run("pdftotext", pdf, "-enc", "UTF-8")


def squeezed(text: str) -> str:
    """Without whitespace: pdftotext puts spaces where a shaped Indic vowel sign sits before
    its consonant, and wraps long lines."""
    return re.sub(r"\s+", "", text)
