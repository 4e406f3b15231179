"""Split long consultations at silences for per-request provider limits, and merge the transcripts.

Providers cap a request (Reverie file API 300 s, Sarvam REST 30 s, Groq 25 MB), while
consultations last 5-30 minutes. The pipeline therefore (1) finds speech with the Silero VAD
shipped in faster-whisper (:func:`speech_regions`), (2) plans chunks that end inside silences
(:func:`plan_chunks`), (3) writes each chunk as its own WAV (:func:`write_chunk`), and (4)
merges the per-chunk segments back into one timeline (:func:`merge_segments`).

Chunk plan (pure, deterministic). Chunk ``i`` starts at ``start`` and may end at most at
``start + max_seconds``. Its cut point ``c`` is searched in the last ``CUT_SEARCH_FRACTION``
(30 %) of that window, ``[start + 0.7 * max_seconds, start + max_seconds - overlap_s / 2]``
(the upper bound is also pulled in so that the final chunk lasts at least ``min_seconds``).
Among the silences (gaps between speech regions) that intersect the window, the one with the
longest intersection wins (ties: the later one); ``c`` is the point of that intersection nearest
the silence's centre, i.e. as far from speech as the window allows. If no silence intersects
the window, ``c`` is a hard cut at the upper bound. Chunk ``i`` ends at ``c + overlap_s / 2``,
chunk ``i + 1`` starts at ``c - overlap_s / 2``: every pair of neighbours overlaps by exactly
``overlap_s`` (hard cuts included), so a word at the cut is heard whole by at least one chunk.
The last chunk ends at ``duration_s``; a recording no longer than ``max_seconds`` is one chunk.

Merge. Segment times are shifted by their chunk's start (and clipped to the chunk). Segments are
split into words; a word's time is interpolated inside its segment in proportion to character
counts (providers give segment, not word, timestamps). At each seam, with ``m`` the middle of the
overlap, the tail of the earlier chunk (words ending after ``overlap start - 2 s``) is aligned
with the head of the later one (words starting before ``overlap end + 2 s``): the longest common
subsequence of normalised words (NFKC, case-folded, punctuation dropped) in which two words may
pair only if their times agree within 0.75 s; ties go to the pairing that agrees best in time.
A pair is a word both chunks heard: it is kept once, from the earlier chunk if the pair lies
before ``m`` and from the later one after it (each chunk is least reliable at its own cut edge,
where a word may be clipped). A word only one chunk heard is kept if it lies on that chunk's side
of ``m`` (so a clipped half-word at a chunk's edge is dropped). Kept words are regrouped into
their source segments: whole segments keep their text and times, trimmed ones get the
interpolated times of their first and last kept word. Finally overlapping neighbours meet
halfway, so the result is in spoken order, non-overlapping in time and has no empty text.

Limits. Without word timestamps the pairing rests on interpolated times: a word said twice
within ~0.75 s at a seam ("no, no") can pair with the wrong copy (one copy lost), and copies
whose times disagree by more than 0.75 s are both kept or both dropped, depending on their side
of ``m``. A word dropped by the chunk trusted at its position is lost (at most the words that
chunk dropped). A word the two chunks heard differently is decided per chunk by side of ``m``,
which can keep both versions or neither. Trimmed segment text is re-joined with single spaces.
Diarization labels (``speaker_id``) are per request, so one person may carry different labels
in different chunks; matching them across chunks is the caller's job.
"""

from __future__ import annotations

import bisect
import unicodedata
import wave
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from clinscribe.providers.stt.base import Segment

VAD_SAMPLE_RATE = 16_000
# The cut is searched in this final fraction of each chunk's maximal window.
CUT_SEARCH_FRACTION = 0.3
# Short pauses between turns (~0.3-0.7 s) are the cut points we want, so the VAD must report
# them: faster-whisper's defaults (2 s silence, 400 ms padding) would merge a whole visit.
_VAD_OPTIONS = {"min_silence_duration_ms": 300, "speech_pad_ms": 100, "min_speech_duration_ms": 100}
# The VAD runs on one-minute windows so memory stays flat whatever the length: on a 30-minute
# file the whole-array call peaked at ~545 MB over the interpreter's baseline (the model's
# activations dominate), 60 s windows at ~85 MB, at the same speed (~2 s per 15 minutes here).
# Each window is read with context on both sides and only its core is kept, so the model's
# warm-up and end-of-input rule never decide a boundary.
VAD_WINDOW_S = 60.0
_VAD_CONTEXT_S = 5.0
_COPY_BLOCK_FRAMES = 65_536
# Words this far outside the overlap still take part in the seam alignment: their times are
# interpolated inside segments and may be off.
_SEAM_SLACK_S = 2.0
# Two chunks' copies of a word count as one only if their times agree this well. Measured on
# synthetic seams (tests): 0.5 s rejects true copies once segment times jitter by 0.25 s, 1 s
# pairs "okay, water, okay" wrongly; 0.75 s was exact for jitter up to 0.25 s.
_PAIR_TOLERANCE_S = 0.75


@dataclass(frozen=True)
class Chunk:
    """One request's share of the recording, in seconds of the source audio."""

    index: int
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def speech_regions(wav: Path) -> list[tuple[float, float]]:
    """Speech ``(start, end)`` seconds in a 16 kHz mono 16-bit WAV, sorted and disjoint.

    Uses the Silero VAD model bundled in the faster-whisper wheel (no download). CPU-bound and
    blocking (~2 s per 15 minutes of audio on a small CPU): call it through ``asyncio.to_thread``.
    """
    # Imported here: faster-whisper takes ~0.4 s to import, and planning/merging do not need it.
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(**_VAD_OPTIONS)
    regions: list[tuple[int, int]] = []
    with wave.open(str(wav), "rb") as reader:
        _require_vad_format(wav, reader)
        total = reader.getnframes()
        window = int(VAD_WINDOW_S * VAD_SAMPLE_RATE)
        context = int(_VAD_CONTEXT_S * VAD_SAMPLE_RATE)
        for core_start in range(0, total, window):
            core_end = min(core_start + window, total)
            read_start = max(0, core_start - context)
            read_end = min(total, core_end + context)
            reader.setpos(read_start)
            pcm = np.frombuffer(reader.readframes(read_end - read_start), dtype="<i2")
            samples = pcm.astype(np.float32) / 32768.0
            found: list[dict[str, Any]] = get_speech_timestamps(
                samples, options, sampling_rate=VAD_SAMPLE_RATE
            )
            for stamp in found:
                start = max(read_start + int(stamp["start"]), core_start)
                end = min(read_start + int(stamp["end"]), core_end)
                if end <= start:
                    continue
                # Touching the previous region: speech across a window edge (or a pause the
                # VAD padding already closed).
                if regions and start <= regions[-1][1]:
                    regions[-1] = (regions[-1][0], max(end, regions[-1][1]))
                else:
                    regions.append((start, end))
    return [(start / VAD_SAMPLE_RATE, end / VAD_SAMPLE_RATE) for start, end in regions]


def _require_vad_format(wav: Path, reader: wave.Wave_read) -> None:
    shape = (reader.getframerate(), reader.getnchannels(), reader.getsampwidth())
    if shape != (VAD_SAMPLE_RATE, 1, 2):
        raise ValueError(
            f"{wav.name} is {shape[0]} Hz, {shape[1]} channel(s), {8 * shape[2]}-bit; the VAD "
            "needs the 16 kHz mono 16-bit WAV that pipeline.audio.convert_to_wav writes"
        )


def plan_chunks(
    duration_s: float,
    speech: list[tuple[float, float]],
    *,
    max_seconds: float,
    overlap_s: float = 1.0,
    min_seconds: float = 5.0,
) -> list[Chunk]:
    """Chunks of at most ``max_seconds`` covering ``[0, duration_s]``, cut in silences.

    The rule is in the module docstring. ``min_seconds`` is the shortest chunk the plan makes
    (when the recording is longer than ``max_seconds``); it must be at most half of
    ``max_seconds``, and ``overlap_s`` less than ``max_seconds``.
    """
    if duration_s <= 0:
        raise ValueError("duration_s must be positive")
    if not 0 <= overlap_s < max_seconds:
        raise ValueError("overlap_s must be at least 0 and less than max_seconds")
    if not 0 <= min_seconds <= max_seconds / 2:
        raise ValueError("min_seconds must be between 0 and half of max_seconds")
    if duration_s <= max_seconds:
        return [Chunk(0, 0.0, duration_s)]
    silences = _silences(duration_s, speech)
    silence_ends = [end for _, end in silences]
    half = overlap_s / 2
    chunks: list[Chunk] = []
    start = 0.0
    while duration_s - start > max_seconds:
        high = min(start + max_seconds - half, duration_s - min_seconds + half)
        low = min(start + (1 - CUT_SEARCH_FRACTION) * max_seconds, high)
        cut = _choose_cut(silences, silence_ends, low, high)
        chunks.append(Chunk(len(chunks), start, cut + half))
        start = cut - half
    chunks.append(Chunk(len(chunks), start, duration_s))
    return chunks


def _silences(duration_s: float, speech: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The gaps between the (sorted, clipped, merged) speech regions inside ``[0, duration]``."""
    gaps: list[tuple[float, float]] = []
    cursor = 0.0
    for start, end in sorted(speech):
        start, end = max(start, 0.0), min(end, duration_s)
        if end <= start:
            continue
        if start > cursor:
            gaps.append((cursor, start))
        cursor = max(cursor, end)
    if cursor < duration_s:
        gaps.append((cursor, duration_s))
    return gaps


def _choose_cut(
    silences: list[tuple[float, float]], silence_ends: list[float], low: float, high: float
) -> float:
    best: tuple[float, float] | None = None  # (intersection length, intersection start)
    cut = high  # hard cut when no silence reaches into the window
    for gap_start, gap_end in silences[bisect.bisect_left(silence_ends, low) :]:
        if gap_start >= high:
            break
        first, last = max(gap_start, low), min(gap_end, high)
        key = (last - first, first)
        if last > first and (best is None or key >= best):
            best = key
            cut = min(max((gap_start + gap_end) / 2, first), last)
    return cut


def write_chunk(wav: Path, chunk: Chunk, target: Path) -> Path:
    """Copy ``chunk``'s time range of ``wav`` into a new WAV with the same format; returns it.

    Seeks by frame and copies in blocks, so memory stays flat. The frame count is
    ``round(chunk.duration * rate)``, so the file never exceeds a limit the chunk respects.
    """
    with wave.open(str(wav), "rb") as reader:
        rate = reader.getframerate()
        total = reader.getnframes()
        first = min(max(round(chunk.start * rate), 0), total)
        remaining = min(round(chunk.duration * rate), total - first)
        reader.setpos(first)
        with wave.open(str(target), "wb") as writer:
            writer.setnchannels(reader.getnchannels())
            writer.setsampwidth(reader.getsampwidth())
            writer.setframerate(rate)
            while remaining > 0:
                block = reader.readframes(min(remaining, _COPY_BLOCK_FRAMES))
                if not block:
                    break
                writer.writeframes(block)
                remaining -= len(block) // (reader.getsampwidth() * reader.getnchannels())
    return target


@dataclass(frozen=True)
class _Word:
    text: str
    norm: str
    start: float
    end: float
    chunk: int
    segment: int  # index into that chunk's shifted segments

    @property
    def mid(self) -> float:
        return (self.start + self.end) / 2


def merge_segments(chunks: list[Chunk], results: list[list[Segment]]) -> list[Segment]:
    """One timeline from per-chunk segments (times relative to each chunk's start).

    ``results[i]`` is what the provider returned for ``chunks[i]``, in the provider's order.
    The algorithm and its limits are in the module docstring.
    """
    if len(chunks) != len(results):
        raise ValueError("merge_segments needs one result list per chunk")
    if any(later.start < earlier.start for earlier, later in pairwise(chunks)):
        raise ValueError("chunks must be ordered by start time")
    shifted = [
        [_shift(segment, chunk) for segment in segments]
        for chunk, segments in zip(chunks, results, strict=True)
    ]
    words = [
        [word for position, seg in enumerate(segs) for word in _words(seg, index, position)]
        for index, segs in enumerate(shifted)
    ]
    kept: list[_Word] = []
    head_end = 0  # words of the current chunk already consumed by the previous seam
    for index in range(len(chunks)):
        current = words[index]
        if index == len(chunks) - 1:
            kept.extend(current[head_end:])
            break
        earlier, later = chunks[index], chunks[index + 1]
        tail_start = max(_first(current, later.start - _SEAM_SLACK_S, by_end=True), head_end)
        following = words[index + 1]
        next_head_end = _first(following, earlier.end + _SEAM_SLACK_S, by_end=False)
        kept.extend(current[head_end:tail_start])
        kept.extend(
            _join_seam(current[tail_start:], following[:next_head_end], later.start, earlier.end)
        )
        head_end = next_head_end
    return _monotonic(list(_regroup(kept, shifted)))


def _shift(segment: Segment, chunk: Chunk) -> Segment:
    start = min(max(segment.start + chunk.start, chunk.start), chunk.end)
    end = min(max(segment.end + chunk.start, start), chunk.end)
    return replace(segment, start=start, end=end)


def _normalise(word: str) -> str:
    folded = unicodedata.normalize("NFKC", word).casefold()
    # Keep letters, combining marks (Tamil/Devanagari vowel signs) and digits.
    kept = "".join(ch for ch in folded if unicodedata.category(ch)[0] in "LMN")
    return kept or folded


def _words(segment: Segment, chunk: int, position: int) -> Iterator[_Word]:
    """The segment's words with times interpolated by character count."""
    tokens = segment.text.split()
    weights = [len(token) + 1 for token in tokens]
    total = sum(weights)
    span = segment.end - segment.start
    done = 0
    for token, weight in zip(tokens, weights, strict=True):
        start = segment.start + span * done / total
        done += weight
        end = segment.start + span * done / total
        yield _Word(token, _normalise(token), start, end, chunk, position)


def _first(words: list[_Word], time: float, *, by_end: bool) -> int:
    """Index of the first word ending at/after ``time`` (by_end) or starting after it."""
    for index, word in enumerate(words):
        if (word.end >= time) if by_end else (word.start > time):
            return index
    return len(words)


def _join_seam(
    tail: list[_Word], head: list[_Word], overlap_start: float, overlap_end: float
) -> list[_Word]:
    """Align the earlier chunk's tail with the later chunk's head; keep each word once."""
    middle = (overlap_start + overlap_end) / 2
    joined: list[_Word] = []
    done_tail = done_head = 0
    for i, j in [*_align(tail, head), (len(tail), len(head))]:
        # Words only one chunk heard: trust each chunk on its own side of the middle.
        joined.extend(word for word in tail[done_tail:i] if word.mid < middle)
        joined.extend(word for word in head[done_head:j] if word.mid >= middle)
        if i < len(tail):
            # Heard by both: take the copy from the chunk that heard it further from its edge.
            mine, other = tail[i], head[j]
            joined.append(mine if (mine.mid + other.mid) / 2 < middle else other)
        done_tail, done_head = i + 1, j + 1
    return joined


def _align(tail: list[_Word], head: list[_Word]) -> list[tuple[int, int]]:
    """Most pairs of equal words heard at about the same time, in order (a longest common
    subsequence where only words within ``_PAIR_TOLERANCE_S`` of each other may pair).

    Among alignments with as many pairs, the one whose pairs agree best in time wins.
    """
    rows, cols = len(tail), len(head)

    def pair_score(i: int, j: int) -> float | None:
        mine, other = tail[i], head[j]
        gap = abs(mine.mid - other.mid)
        if mine.norm != other.norm or gap > _PAIR_TOLERANCE_S:
            return None
        # Count first; the time disagreement (< 1e-3 per pair) only breaks ties.
        return 1.0 - 1e-3 * gap / _PAIR_TOLERANCE_S

    best = [[0.0] * (cols + 1) for _ in range(rows + 1)]
    for i in range(rows - 1, -1, -1):
        for j in range(cols - 1, -1, -1):
            score = max(best[i + 1][j], best[i][j + 1])
            paired = pair_score(i, j)
            if paired is not None:
                score = max(score, paired + best[i + 1][j + 1])
            best[i][j] = score
    pairs: list[tuple[int, int]] = []
    i = j = 0
    while i < rows and j < cols:
        paired = pair_score(i, j)
        if paired is not None and best[i][j] == paired + best[i + 1][j + 1]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            i += 1
        else:
            j += 1
    return pairs


def _regroup(kept: list[_Word], shifted: list[list[Segment]]) -> Iterator[Segment]:
    """Consecutive kept words of one source segment become one output segment."""
    group: list[_Word] = []
    for word in [*kept, None]:
        if group and (
            word is None or (word.chunk, word.segment) != (group[0].chunk, group[0].segment)
        ):
            source = shifted[group[0].chunk][group[0].segment]
            if len(group) == len(source.text.split()):
                yield replace(source, text=source.text.strip())
            else:
                text = " ".join(w.text for w in group)
                yield replace(source, start=group[0].start, end=group[-1].end, text=text)
            group = []
        if word is not None:
            group.append(word)


def _monotonic(segments: list[Segment]) -> list[Segment]:
    """Meet overlapping neighbours halfway, then push starts past the previous end."""
    fixed: list[Segment] = []
    for segment in segments:
        if fixed and segment.start < fixed[-1].end:
            previous = fixed[-1]
            boundary = max((segment.start + previous.end) / 2, previous.start)
            fixed[-1] = replace(previous, end=min(previous.end, boundary))
            start = max(segment.start, fixed[-1].end)
            segment = replace(segment, start=start, end=max(segment.end, start))
        fixed.append(segment)
    return fixed
