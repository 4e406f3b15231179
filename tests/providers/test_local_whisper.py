"""Offline speech-to-text with the real tiny.en model on a short committed clip."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinscribe.config import LocalSttSettings
from clinscribe.errors import UnsupportedLanguage
from clinscribe.providers.stt.local_whisper import LocalWhisperSpeechToText
from tests.support.audio import SHORT_WAV

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

SHORT_DURATION_S = 4.659


@pytest.fixture
def tiny(tmp_path: Path) -> LocalWhisperSpeechToText:
    return LocalWhisperSpeechToText(LocalSttSettings(model="tiny.en", beam_size=1), tmp_path)


@pytest.mark.slow
async def test_tiny_en_transcribes_the_short_clip(tiny: LocalWhisperSpeechToText) -> None:
    result = await tiny.transcribe(SHORT_WAV, language="en")
    assert result.segments
    text = " ".join(s.text for s in result.segments)
    assert "fever" in text.lower()  # the clip says "Have you had any fever?"
    assert result.duration_s == pytest.approx(SHORT_DURATION_S, abs=0.05)
    starts = [s.start for s in result.segments]
    assert starts == sorted(starts)
    for segment in result.segments:
        assert 0.0 <= segment.start < segment.end <= SHORT_DURATION_S + 0.05
        assert segment.text == segment.text.strip()
    assert (result.provider, result.model, result.language) == ("local", "tiny.en", "en")


async def test_english_only_model_refuses_other_languages(tiny: LocalWhisperSpeechToText) -> None:
    assert tiny.capabilities.languages == frozenset({"en"})
    with pytest.raises(UnsupportedLanguage) as raised:
        await tiny.transcribe(SHORT_WAV, language="hi")
    assert raised.value.code == "unsupported_language"
    assert "tiny.en" in raised.value.message
