"""The speech-to-text capability: one Protocol and the small result types every adapter returns.

Vendor JSON never leaves an adapter; the pipeline only sees these types.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from clinscribe.notes.model import Speaker


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    speaker: Speaker = "unknown"
    # The provider's own diarization label ("0", "SPEAKER_01"), when it has one; roles
    # (doctor/patient) are assigned from it later.
    speaker_id: str | None = None


@dataclass(frozen=True)
class TranscriptionResult:
    language: str
    duration_s: float
    segments: list[Segment]
    provider: str
    model: str

    @property
    def characters(self) -> int:
        return sum(len(segment.text) for segment in self.segments)


@dataclass(frozen=True)
class SttCapabilities:
    """What a provider can do; the registry and upload validation read these."""

    languages: frozenset[str] | None  # ISO 639-1 codes; None: any language the model knows
    max_seconds_per_request: float | None
    max_bytes_per_request: int | None
    diarization: bool
    needs_key: bool


class SpeechToText(Protocol):
    name: str
    model: str
    capabilities: SttCapabilities

    async def transcribe(self, audio: Path, *, language: str) -> TranscriptionResult:
        """Transcribe a 16 kHz mono WAV file. Raises ProviderTransientError/PermanentError."""
        ...

    async def aclose(self) -> None: ...
