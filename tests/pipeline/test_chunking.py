"""Chunk planning at silences, the bundled Silero VAD, chunk WAVs, and merging chunk transcripts."""

from __future__ import annotations

import random
import time
import wave
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from clinscribe.pipeline.chunking import (
    CUT_SEARCH_FRACTION,
    VAD_WINDOW_S,
    Chunk,
    merge_segments,
    plan_chunks,
    speech_regions,
    write_chunk,
)
from clinscribe.providers.stt.base import Segment
from tests.support.audio import CONSULTATION_WAV

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

EPS = 1e-9
RATE = 16_000
# A word: (text, start, end) in seconds of the source recording.
Word = tuple[str, float, float]
VOCABULARY = [
    "cough",
    "fever",
    "three",
    "days",
    "ago",
    "chest",
    "pain",
    "breath",
    "stairs",
    "allergies",
    "taking",
    "medications",
    "temperature",
    "blood",
    "pressure",
    "pulse",
    "paracetamol",
    "twice",
    "daily",
    "after",
    "food",
    "review",
    "week",
    "tablets",
    "sputum",
    "yellow",
    "night",
    "sleep",
    "water",
    "rest",
    "x-ray,",
    "38.2",
    "degrees:",
    "128/82",
    "okay.",
]


# ----------------------------------------------------------------------------- synthetic layouts
def random_speech(rng: random.Random, duration: float) -> list[tuple[float, float]]:
    """Alternating speech and pauses; some layouts have long stretches with no pause at all."""
    regions: list[tuple[float, float]] = []
    longest = rng.choice([8.0, 20.0, 90.0])
    cursor = rng.choice([0.0, rng.uniform(0.0, 3.0)])
    while cursor < duration:
        end = min(duration, cursor + rng.uniform(0.5, longest))
        regions.append((cursor, end))
        cursor = end + rng.choice([0.15, 0.3, 0.6, rng.uniform(0.1, 4.0)])
    return regions


def silences_of(duration: float, speech: list[tuple[float, float]]) -> list[tuple[float, float]]:
    gaps, cursor = [], 0.0
    for start, end in sorted(speech):
        if start > cursor:
            gaps.append((cursor, start))
        cursor = max(cursor, end)
    if cursor < duration:
        gaps.append((cursor, duration))
    return gaps


def check_plan(
    duration: float,
    speech: list[tuple[float, float]],
    *,
    max_seconds: float,
    overlap_s: float = 1.0,
    min_seconds: float = 5.0,
) -> list[Chunk]:
    """Assert every documented property of a plan; returns it."""
    chunks = plan_chunks(
        duration, speech, max_seconds=max_seconds, overlap_s=overlap_s, min_seconds=min_seconds
    )
    assert chunks == plan_chunks(
        duration, speech, max_seconds=max_seconds, overlap_s=overlap_s, min_seconds=min_seconds
    )
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    assert chunks[0].start == 0.0
    assert chunks[-1].end == duration
    if duration <= max_seconds:
        assert len(chunks) == 1
        return chunks
    silences = silences_of(duration, speech)
    for chunk in chunks:
        assert chunk.duration <= max_seconds + EPS
        assert chunk.duration >= min_seconds - EPS
    for earlier, later in pairwise(chunks):
        # Full coverage with exactly the overlap, and progress.
        assert earlier.end - later.start == pytest.approx(overlap_s, abs=EPS)
        assert later.start > earlier.start
        cut = (earlier.end + later.start) / 2
        high = min(
            earlier.start + max_seconds - overlap_s / 2, duration - min_seconds + overlap_s / 2
        )
        low = min(earlier.start + (1 - CUT_SEARCH_FRACTION) * max_seconds, high)
        assert low - EPS <= cut <= high + EPS
        usable = [
            (max(start, low), min(end, high))
            for start, end in silences
            if min(end, high) > max(start, low)
        ]
        if not usable:
            assert cut == pytest.approx(high, abs=EPS)  # hard cut: no pause in the window
            continue
        holding = [(start, end) for start, end in usable if start - EPS <= cut <= end + EPS]
        assert holding, f"cut {cut:.3f} is not in a silence of the window"
        longest = max(end - start for start, end in usable)
        assert max(end - start for start, end in holding) == pytest.approx(longest, abs=EPS)
    return chunks


def test_plan_properties_over_random_layouts() -> None:
    rng = random.Random(20240601)
    for _ in range(300):
        duration = rng.uniform(1.0, 2400.0)
        speech = random_speech(rng, duration)
        max_seconds = rng.choice([10.0, 30.0, 60.0, 300.0, 600.0])
        overlap = rng.choice([0.0, 0.5, 1.0, 2.0])
        min_seconds = rng.choice([0.0, 5.0])
        check_plan(
            duration, speech, max_seconds=max_seconds, overlap_s=overlap, min_seconds=min_seconds
        )


def test_short_recording_is_one_chunk() -> None:
    assert plan_chunks(29.5, [(0.2, 29.0)], max_seconds=30) == [Chunk(0, 0.0, 29.5)]
    assert plan_chunks(30.0, [], max_seconds=30) == [Chunk(0, 0.0, 30.0)]


@pytest.mark.parametrize(("max_seconds", "at_least"), [(30, 41), (300, 5), (600, 3)])
def test_twenty_minute_layout(max_seconds: float, at_least: int) -> None:
    rng = random.Random(7)
    speech = random_speech(rng, 1200.0)
    chunks = check_plan(1200.0, speech, max_seconds=max_seconds)
    assert at_least <= len(chunks) <= 1200 / ((1 - CUT_SEARCH_FRACTION) * max_seconds - 0.5) + 1


def test_no_silence_means_hard_cuts_with_the_same_overlap() -> None:
    chunks = check_plan(100.0, [(0.0, 100.0)], max_seconds=30)
    assert [(c.start, c.end) for c in chunks] == [
        (0.0, 30.0),
        (29.0, 59.0),
        (58.0, 88.0),
        (87.0, 100.0),
    ]


def test_final_chunk_is_never_shorter_than_min_seconds() -> None:
    chunks = check_plan(31.0, [(0.0, 31.0)], max_seconds=30, min_seconds=5)
    assert chunks[-1].duration == pytest.approx(5.0)


def test_plan_rejects_impossible_settings() -> None:
    with pytest.raises(ValueError, match="overlap_s"):
        plan_chunks(100, [], max_seconds=10, overlap_s=10)
    with pytest.raises(ValueError, match="min_seconds"):
        plan_chunks(100, [], max_seconds=10, min_seconds=6)
    with pytest.raises(ValueError, match="duration_s"):
        plan_chunks(0, [], max_seconds=10)


# ------------------------------------------------------------------------------------- real audio
def write_silence(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(b"\x00\x00" * int(seconds * RATE))
    return path


def read_frames(path: Path, first: int, count: int) -> bytes:
    with wave.open(str(path), "rb") as reader:
        reader.setpos(first)
        return reader.readframes(count)


def rms_around(path: Path, at: float, width: float = 0.05) -> float:
    first = max(0, round((at - width / 2) * RATE))
    pcm = np.frombuffer(read_frames(path, first, round(width * RATE)), dtype="<i2")
    return float(np.sqrt(np.mean((pcm.astype(np.float64) / 32768.0) ** 2)))


def concatenate(source: Path, target: Path, copies: int) -> float:
    """``copies`` back-to-back copies of ``source``, streamed one copy at a time; duration."""
    with wave.open(str(source), "rb") as reader:
        params = reader.getparams()
        body = reader.readframes(reader.getnframes())
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        for _ in range(copies):
            out.writeframes(body)
    return copies * params.nframes / params.framerate


def test_speech_regions_find_the_turns_of_a_consultation() -> None:
    regions = speech_regions(CONSULTATION_WAV)
    assert len(regions) >= 12
    for (_, end), (start, _) in pairwise(regions):
        assert start > end  # disjoint, ordered, with a gap
        assert rms_around(CONSULTATION_WAV, (start + end) / 2, width=0.02) < 1e-3
    with wave.open(str(CONSULTATION_WAV), "rb") as reader:
        duration = reader.getnframes() / RATE
    assert regions[0][0] >= 0.0 and regions[-1][1] <= duration


def test_speech_regions_are_the_same_across_vad_windows(tmp_path: Path) -> None:
    """Three copies span VAD window edges; each copy's regions match the single file's."""
    single = speech_regions(CONSULTATION_WAV)
    with wave.open(str(CONSULTATION_WAV), "rb") as reader:
        length = reader.getnframes() / RATE
    concatenate(CONSULTATION_WAV, tmp_path / "triple.wav", 3)
    triple = speech_regions(tmp_path / "triple.wav")
    expected = [(s + k * length, e + k * length) for k in range(3) for s, e in single]

    def matched(region: tuple[float, float]) -> bool:
        return any(abs(s - region[0]) <= 0.1 and abs(e - region[1]) <= 0.1 for s, e in triple)

    assert sum(map(matched, expected)) >= 0.9 * len(expected)
    for edge in (VAD_WINDOW_S, 2 * VAD_WINDOW_S):
        # Speech that crosses a window edge comes out as one region, exactly where it should be.
        crossing = [region for region in expected if region[0] < edge < region[1]]
        assert crossing
        assert all(matched(region) for region in crossing)


def test_speech_regions_of_silence_is_empty(tmp_path: Path) -> None:
    assert speech_regions(write_silence(tmp_path / "quiet.wav", 20.0)) == []


def test_speech_regions_refuse_other_formats(tmp_path: Path) -> None:
    path = tmp_path / "cd.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44_100)
        out.writeframes(b"\x00" * 4 * 44_100)
    with pytest.raises(ValueError, match="16 kHz mono"):
        speech_regions(path)


def test_write_chunk_copies_exactly_that_range(tmp_path: Path) -> None:
    with wave.open(str(CONSULTATION_WAV), "rb") as reader:
        total = reader.getnframes()
    for chunk in [Chunk(0, 10.3, 20.7), Chunk(1, 0.0, 3.0), Chunk(2, 45.0, total / RATE)]:
        target = write_chunk(CONSULTATION_WAV, chunk, tmp_path / f"chunk{chunk.index}.wav")
        with wave.open(str(target), "rb") as reader:
            assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (
                1,
                2,
                RATE,
            )
            frames = reader.getnframes()
            body = reader.readframes(frames)
        assert abs(frames - chunk.duration * RATE) <= 1
        assert body == read_frames(CONSULTATION_WAV, round(chunk.start * RATE), frames)


# -------------------------------------------------------------------------------------- merging
def random_words(rng: random.Random, duration: float, *, pauses: bool = True) -> list[Word]:
    """Words with timings roughly proportional to their length, as speech is.

    No immediate repeats: "no no" across a seam is ambiguous without word timestamps (see the
    module's limits).
    """
    words: list[Word] = []
    cursor = rng.uniform(0.0, 1.0)
    previous = ""
    while True:
        text = rng.choice([w for w in VOCABULARY if w != previous])
        length = 0.06 * (len(text) + 1) * rng.uniform(0.6, 1.4)
        if cursor + length > duration:
            return words
        words.append((text, cursor, cursor + length))
        previous = text
        gap = rng.uniform(0.0, 0.12) if not pauses or rng.random() < 0.8 else rng.uniform(0.3, 2)
        cursor += length + gap


def transcribe_slice(
    rng: random.Random,
    words: list[Word],
    chunk: Chunk,
    *,
    jitter: float = 0.0,
    drop: Word | None = None,
) -> list[Segment]:
    """A fake provider: the words whose midpoints lie in the chunk, as segments of 1-8 words
    that end at pauses (like Whisper's), with times relative to the chunk and clipped to it."""
    inside = [w for w in words if chunk.start <= (w[1] + w[2]) / 2 <= chunk.end and w != drop]
    segments: list[Segment] = []
    while inside:
        size = 1
        limit = rng.randint(1, 8)
        while size < min(limit, len(inside)) and inside[size][1] - inside[size - 1][2] < 0.25:
            size += 1
        group, inside = inside[:size], inside[size:]
        start = group[0][1] - chunk.start + rng.uniform(-jitter, jitter)
        end = group[-1][2] - chunk.start + rng.uniform(-jitter, jitter)
        start = min(max(start, 0.0), chunk.duration)
        end = min(max(end, start), chunk.duration)
        segments.append(Segment(start, end, " ".join(w[0] for w in group), speaker="doctor"))
    return segments


def random_chunks(rng: random.Random, duration: float) -> list[Chunk]:
    """Arbitrary overlapping chunks (not from plan_chunks): uneven lengths and overlaps."""
    chunks: list[Chunk] = []
    start = 0.0
    while True:
        end = start + rng.uniform(8.0, 40.0)
        if end >= duration:
            chunks.append(Chunk(len(chunks), start, duration))
            return chunks
        chunks.append(Chunk(len(chunks), start, end))
        start = end - rng.uniform(0.3, 2.5)


def check_merged(merged: list[Segment]) -> list[str]:
    """Assert ordered, non-overlapping, non-empty segments; return the merged words."""
    for segment in merged:
        assert segment.text.strip()
        assert segment.start <= segment.end
    for earlier, later in pairwise(merged):
        assert later.start >= earlier.end - EPS
    return [word for segment in merged for word in segment.text.split()]


def speech_of(words: list[Word]) -> list[tuple[float, float]]:
    return [(start, end) for _, start, end in words]


def test_merge_restores_the_exact_word_sequence() -> None:
    rng = random.Random(99)
    for layout in range(200):
        duration = rng.uniform(40.0, 400.0)
        words = random_words(rng, duration, pauses=layout % 3 != 0)
        if layout % 2:
            chunks = random_chunks(rng, duration)
        else:
            max_seconds = rng.choice([10.0, 20.0, 30.0, 60.0])
            overlap = rng.choice([0.5, 1.0, 2.0])
            chunks = plan_chunks(
                duration, speech_of(words), max_seconds=max_seconds, overlap_s=overlap
            )
        results = [transcribe_slice(rng, words, chunk) for chunk in chunks]
        merged = merge_segments(chunks, results)
        assert check_merged(merged) == [w[0] for w in words], f"layout {layout}"
        assert merged[0].speaker == "doctor"


def test_merge_with_jitter_and_a_word_dropped_at_the_seam() -> None:
    rng = random.Random(5)
    for layout in range(200):
        duration = rng.uniform(60.0, 300.0)
        words = random_words(rng, duration, pauses=layout % 2 == 0)
        chunks = plan_chunks(duration, speech_of(words), max_seconds=30.0, overlap_s=1.0)
        seam = rng.randrange(len(chunks) - 1)
        earlier, later = chunks[seam], chunks[seam + 1]
        shared = [w for w in words if later.start <= (w[1] + w[2]) / 2 <= earlier.end]
        drop = rng.choice(shared) if shared else None
        dropper = rng.choice([seam, seam + 1])
        results = [
            transcribe_slice(rng, words, chunk, jitter=0.1, drop=drop if i == dropper else None)
            for i, chunk in enumerate(chunks)
        ]
        merged = check_merged(merge_segments(chunks, results))
        expected = [w[0] for w in words]
        if merged != expected:
            assert drop is not None, f"layout {layout}"
            position = words.index(drop)
            assert merged == expected[:position] + expected[position + 1 :], f"layout {layout}"


def test_merge_trims_segments_and_keeps_order_and_labels() -> None:
    chunks = [Chunk(0, 0.0, 10.5), Chunk(1, 9.5, 20.0)]
    results = [
        [
            Segment(0.0, 4.0, "Good morning.", speaker_id="0"),
            Segment(7.0, 9.8, "Any chest pain?", speaker_id="1"),
        ],
        [
            Segment(0.0, 1.0, "pain?", speaker_id="A"),
            Segment(2.0, 6.0, "No, no chest pain.", speaker_id="B"),
        ],
    ]
    merged = merge_segments(chunks, results)
    assert [(s.text, s.speaker_id) for s in merged] == [
        ("Good morning.", "0"),
        ("Any chest pain?", "1"),
        ("No, no chest pain.", "B"),
    ]
    assert merged[1].start == 7.0
    assert merged[2].start == 11.5
    assert merge_segments([Chunk(0, 0.0, 5.0)], [[Segment(0, 1, "   ")]]) == []
    with pytest.raises(ValueError, match="one result list per chunk"):
        merge_segments(chunks, [[]])


# ------------------------------------------------------------------- a twenty-minute consultation
def test_twenty_minute_consultation_is_cut_in_silences(tmp_path: Path) -> None:
    long_wav = tmp_path / "twenty_minutes.wav"
    duration = concatenate(CONSULTATION_WAV, long_wav, 24)
    assert duration > 1200

    started = time.perf_counter()
    regions = speech_regions(long_wav)
    vad_seconds = time.perf_counter() - started
    print(f"VAD on {duration:.0f} s of audio: {vad_seconds:.2f} s, {len(regions)} regions")
    assert len(regions) >= 24 * 12

    for max_seconds in (300.0, 30.0):
        chunks = check_plan(duration, regions, max_seconds=max_seconds)
        assert len(chunks) > duration / max_seconds
        for chunk in chunks:
            target = write_chunk(long_wav, chunk, tmp_path / f"{max_seconds:.0f}_{chunk.index}.wav")
            with wave.open(str(target), "rb") as reader:
                assert reader.getnframes() <= max_seconds * RATE
        for earlier, later in pairwise(chunks):
            cut = (earlier.end + later.start) / 2
            assert rms_around(long_wav, cut) < 1e-3, f"cut at {cut:.2f} s is not in silence"
