"""Fonts for PDF exports, shipped by PyPI packages: nothing is downloaded, no system fonts.

* ``fontpkg-noto-sans``: Noto Sans (variable font, OFL): Latin, Greek, Cyrillic and
  Devanagari (Hindi, Marathi, Nepali), with the OpenType tables for Devanagari shaping.
* ``fontpkg-noto-sans-tamil``: Noto Sans Tamil (OFL), the fallback for Tamil letters.
* ``uharfbuzz``: HarfBuzz text shaping, without which Tamil and Devanagari vowel signs and
  conjuncts come out in the wrong order.

The variable fonts are used at their default instance (Regular, normal width), which is what
their ``glyf`` outlines hold, so no instancing is needed. Missing any of these, PDFs still
render: without Noto Sans in the built-in Helvetica (Latin-1 only), without shaping unshaped;
characters no font covers are replaced, and the PDF says so (see ``pdf.py``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import structlog
from fontTools.ttLib import TTFont

log = structlog.get_logger("clinscribe.exports")

# (fpdf family name, package, file inside the package, size, sha256); the first one is the
# main font. The packages are pinned exactly in pyproject.toml; a file that differs (another
# release, a damaged install) is not used.
_PACKAGED = (
    (
        "NotoSans",
        "fontpkg_noto_sans",
        "files/NotoSans[wdth,wght].ttf",
        2049096,
        "bfb7bb691513f12e734dc346c03a03f784912432d7e3fa8e56efcf906fe86b3d",
    ),
    (
        "NotoSansTamil",
        "fontpkg_noto_sans_tamil",
        "files/NotoSansTamil[wdth,wght].ttf",
        340668,
        "aa3a9b321f4b0bb2c40203ffbde9af89713227866e0e13f76e5b9eeea727cf88",
    ),
)
CORE_FAMILY = "Helvetica"
REPLACEMENT = "\ufffd"
_LATIN_1 = frozenset(range(0x20, 0x7F)) | frozenset(range(0xA0, 0x100))


@dataclass(frozen=True)
class PdfFonts:
    """What a PDF can be set in. No ``files``: the built-in Helvetica, Latin-1 only."""

    files: tuple[tuple[str, Path], ...]
    shaping: bool
    coverage: frozenset[int]

    @property
    def main_family(self) -> str:
        return self.files[0][0] if self.files else CORE_FAMILY

    @property
    def replacement(self) -> str:
        return REPLACEMENT if ord(REPLACEMENT) in self.coverage else "?"

    def covers(self, char: str) -> bool:
        return ord(char) in self.coverage


def core_fonts() -> PdfFonts:
    """Helvetica as built into every PDF reader: Latin-1 (no Indic scripts, no dashes)."""
    return PdfFonts(files=(), shaping=False, coverage=_LATIN_1)


def _font_file(package: str, name: str, size: int, sha256: str) -> Path | None:
    try:
        path = Path(str(importlib.resources.files(package).joinpath(name)))
    except ModuleNotFoundError:
        return None
    if not path.is_file():
        return None
    if path.stat().st_size != size or hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        log.warning("pdf font file differs from the pinned release", package=package)
        return None
    return path


def _cmap(path: Path) -> frozenset[int]:
    font = TTFont(str(path), lazy=True)
    try:
        return frozenset(font.getBestCmap())
    finally:
        font.close()


@functools.cache
def packaged_fonts() -> PdfFonts:
    """The Noto fonts from their packages (looked up once per process)."""
    files = []
    for family, package, name, size, sha256 in _PACKAGED:
        path = _font_file(package, name, size, sha256)
        if path is None:
            log.warning("pdf font package missing", package=package.replace("_", "-"))
            continue
        files.append((family, path))
    if not files or files[0][0] != _PACKAGED[0][0]:
        log.warning("pdf exports fall back to Helvetica: Latin-1 only")
        return core_fonts()
    shaping = importlib.util.find_spec("uharfbuzz") is not None
    if not shaping:
        log.warning("pdf exports without text shaping: install uharfbuzz for Tamil and Hindi")
    coverage = frozenset().union(*(_cmap(path) for _, path in files))
    return PdfFonts(files=tuple(files), shaping=shaping, coverage=coverage)
