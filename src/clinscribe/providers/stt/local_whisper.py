"""Offline speech-to-text with faster-whisper (CTranslate2, int8 on CPU).

The model is loaded once per process and runs in a worker thread so the event loop (API,
SSE, other workflows) stays responsive. One transcription at a time per process: two would
only fight over the same cores.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from clinscribe.config import LocalSttSettings
from clinscribe.errors import ConfigurationError, UnsupportedLanguage
from clinscribe.providers.stt.base import Segment, SttCapabilities, TranscriptionResult
from clinscribe.providers.stt.whisper_models import resolve_model_dir

_models: dict[tuple[str, str, str, int], Any] = {}
_models_lock = threading.Lock()


def _load(model_dir: Path, settings: LocalSttSettings) -> Any:
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigurationError(
            "Local speech-to-text needs the 'local' extra: pip install 'clinscribe[local]'.",
            code="model_missing",
        ) from exc
    key = (str(model_dir), settings.device, settings.compute_type, settings.cpu_threads)
    with _models_lock:
        if key not in _models:
            _models[key] = WhisperModel(
                str(model_dir),
                device=settings.device,
                compute_type=settings.compute_type,
                cpu_threads=settings.cpu_threads,
                local_files_only=True,
            )
        return _models[key]


def local_capabilities(settings: LocalSttSettings) -> SttCapabilities:
    english_only = settings.model.endswith(".en")
    return SttCapabilities(
        languages=frozenset({"en"}) if english_only else None,
        max_seconds_per_request=None,
        max_bytes_per_request=None,
        diarization=False,
        needs_key=False,
    )


class LocalWhisperSpeechToText:
    name = "local"

    def __init__(self, settings: LocalSttSettings, cache_dir: Path) -> None:
        self._settings = settings
        self._cache_dir = cache_dir
        self.model = settings.model
        self.capabilities = local_capabilities(settings)
        self._busy = asyncio.Semaphore(1)

    def _transcribe_blocking(self, audio: Path, language: str) -> TranscriptionResult:
        model_dir = resolve_model_dir(self._settings.model, self._cache_dir)
        model = _load(model_dir, self._settings)
        segments, info = model.transcribe(
            str(audio),
            language=language,
            beam_size=self._settings.beam_size,
            vad_filter=False,
            condition_on_previous_text=False,
        )
        result = [
            Segment(start=round(s.start, 2), end=round(s.end, 2), text=s.text.strip())
            for s in segments
            if s.text.strip()
        ]
        return TranscriptionResult(
            language=language,
            duration_s=round(float(info.duration), 3),
            segments=result,
            provider=self.name,
            model=self.model,
        )

    async def transcribe(self, audio: Path, *, language: str) -> TranscriptionResult:
        if self.capabilities.languages and language not in self.capabilities.languages:
            raise UnsupportedLanguage(f"The local model '{self.model}' only understands English.")
        async with self._busy:
            return await asyncio.to_thread(self._transcribe_blocking, audio, language)

    async def aclose(self) -> None:
        return None
