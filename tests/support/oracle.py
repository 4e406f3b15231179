"""A long consultation whose every word's time is known, and a fake transcriber that answers
with exactly the words spoken in whatever piece of it a provider receives.

The recording repeats the committed clip; repeat k has k added to every sample (inaudible) so
that each stretch of audio is unique and a received piece can be located in the source.
"""

from __future__ import annotations

import io
import json
import re
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.support.audio import CONSULTATION_WAV, DATA

_NEEDLE_S = 2.0  # long enough to span a pause between turns, so the match is unique
_WORDS_PER_SEGMENT = 8


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str
    speaker: str


def normalise(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace(".", " "))


class ScriptedRecording:
    def __init__(self, repeats: int) -> None:
        with wave.open(str(CONSULTATION_WAV), "rb") as clip:
            self.rate = clip.getframerate()
            samples = np.frombuffer(clip.readframes(clip.getnframes()), dtype=np.int16)
        self.clip_s = len(samples) / self.rate
        self.repeats = repeats
        pieces = [np.clip(samples.astype(np.int32) + k, -32768, 32767) for k in range(repeats)]
        self.pcm = np.concatenate(pieces).astype(np.int16).tobytes()
        turns = json.loads((DATA / "consultation_en.json").read_text())["turns"]
        self.words: list[Word] = []
        for k in range(repeats):
            offset = k * self.clip_s
            for turn in turns:
                tokens = turn["text"].split()
                step = (turn["end"] - turn["start"]) / len(tokens)
                for i, token in enumerate(tokens):
                    start = offset + turn["start"] + i * step
                    self.words.append(Word(start, start + step, token, turn["speaker"]))

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / self.rate

    def reference_words(self) -> list[str]:
        return normalise(" ".join(w.text for w in self.words))

    def write(self, target: Path) -> Path:
        with wave.open(str(target), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(self.rate)
            out.writeframes(self.pcm)
        return target

    def locate(self, audio: bytes) -> tuple[float, float]:
        """(start, end) seconds of a received WAV piece within the recording."""
        with wave.open(io.BytesIO(audio), "rb") as piece:
            frames = piece.readframes(piece.getnframes())
        needle = frames[: int(_NEEDLE_S * self.rate) * 2]
        position = self.pcm.find(needle)
        while position >= 0 and position % 2:  # sample-aligned matches only
            position = self.pcm.find(needle, position + 1)
        if position < 0:
            raise AssertionError("the provider received audio that is not part of the recording")
        start = position / 2 / self.rate
        return start, start + len(frames) / 2 / self.rate

    def segments_in(self, audio: bytes) -> list[tuple[float, float, str, str]]:
        """The words spoken in the piece, as (start, end, text, speaker) relative to the piece,
        grouped into short segments that never cross a change of speaker."""
        start, end = self.locate(audio)
        words = [w for w in self.words if start <= (w.start + w.end) / 2 < end]
        segments: list[tuple[float, float, str, str]] = []
        group: list[Word] = []
        for word in [*words, None]:
            if group and (word is None or word.speaker != group[0].speaker
                          or len(group) == _WORDS_PER_SEGMENT):  # fmt: skip
                segments.append((
                    max(0.0, group[0].start - start), min(end, group[-1].end) - start,
                    " ".join(w.text for w in group), group[0].speaker,
                ))  # fmt: skip
                group = []
            if word is not None:
                group.append(word)
        return segments
