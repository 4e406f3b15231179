"""Small audio helpers for tests (stdlib only)."""

from __future__ import annotations

import wave
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
SHORT_WAV = DATA / "short_en.wav"
CONSULTATION_WAV = DATA / "consultation_en.wav"


def padded_copy(source: Path, target: Path, silence_s: float) -> Path:
    """``source`` followed by ``silence_s`` of silence: distinct bytes, same speech."""
    with wave.open(str(source), "rb") as src:
        params = src.getparams()
        frames = src.readframes(src.getnframes())
    pad = b"\x00" * (int(params.framerate * silence_s) * params.sampwidth * params.nchannels)
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes(frames + pad)
    return target
