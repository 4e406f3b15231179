"""Lossless compaction of the normalized audio: 16 kHz mono 16-bit WAV <-> FLAC (PyAV).

FLAC holds exactly the same samples in roughly half the bytes (speech with pauses compresses
well), and a FLAC decoded back gives a WAV byte for byte equal to the one compressed, so speech
to text sees what it always saw. Both functions stream frame by frame and block: call them
through ``asyncio.to_thread`` from async code.
"""

from __future__ import annotations

import wave
from pathlib import Path

import av

SAMPLE_RATE = 16_000


def wav_to_flac(source: Path, target: Path) -> None:
    """Compress a 16 kHz mono 16-bit WAV (as made by preparing_audio) into FLAC."""
    with av.open(str(source), mode="r") as wav:
        stream = wav.streams.audio[0]
        codec = stream.codec_context
        if (codec.sample_rate, codec.channels, codec.format.name) != (SAMPLE_RATE, 1, "s16"):
            raise ValueError("wav_to_flac takes the normalized 16 kHz mono 16-bit WAV")
        with av.open(str(target), mode="w", format="flac") as flac:
            out = flac.add_stream("flac", rate=SAMPLE_RATE, layout="mono")
            out.format = "s16"
            for frame in wav.decode(stream):
                frame.pts = None  # the encoder numbers the samples itself
                for packet in out.encode(frame):
                    flac.mux(packet)
            for packet in out.encode(None):
                flac.mux(packet)


def flac_to_wav(source: Path, target: Path) -> None:
    """Decode a FLAC written by :func:`wav_to_flac` back into the identical WAV."""
    with av.open(str(source), mode="r") as flac, wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        for frame in flac.decode(flac.streams.audio[0]):
            out.writeframes(frame.to_ndarray().tobytes())
