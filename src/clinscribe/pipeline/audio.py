"""Audio decoding with PyAV (bundled FFmpeg): validation of uploads and 16 kHz mono WAV output.

Both functions stream frame by frame, so memory stays flat whatever the file's length. They are
CPU-bound and blocking: call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from clinscribe.errors import InvalidAudio

TARGET_SAMPLE_RATE = 16_000
# A file whose decodable audio is much shorter than its header promises was cut off in transit.
_TRUNCATION_TOLERANCE = 0.9
_MIN_DURATION_S = 0.1


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    format_name: str
    codec: str
    sample_rate: int
    channels: int


def _declared_duration_s(container: av.container.InputContainer, stream: av.AudioStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _declared_wav_duration_s(path: Path) -> float:
    """Duration a RIFF/WAVE header announces (data chunk size / byte rate); 0 if unknown.

    FFmpeg estimates WAV duration from the file size, which hides a cut-off upload.
    """
    with path.open("rb") as handle:
        head = handle.read(65536)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return 0.0
    byte_rate = 0
    offset = 12
    while offset + 8 <= len(head):
        chunk_id = head[offset : offset + 4]
        size = struct.unpack_from("<I", head, offset + 4)[0]
        if chunk_id == b"fmt " and offset + 16 <= len(head):
            byte_rate = struct.unpack_from("<I", head, offset + 16)[0]
        if chunk_id == b"data":
            # 0 and 0xFFFFFFFF mean "unknown/streaming" in practice.
            if byte_rate and 0 < size < 0xFFFFFFFF:
                return float(size / byte_rate)
            return 0.0
        offset += 8 + size + (size & 1)
    return 0.0


def inspect_audio(path: Path, *, max_duration_s: float) -> AudioInfo:
    """Decode the whole file to prove it is usable audio; raise InvalidAudio saying what to fix."""
    if path.stat().st_size == 0:
        raise InvalidAudio("The uploaded file is empty. Choose a recording and upload it again.")
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidAudio(
            "The uploaded file is not audio that can be decoded. Upload a recording in a common "
            "format such as WAV, MP3, M4A, OGG, WEBM or FLAC.",
            code="not_audio",
        ) from exc
    with container:
        if not container.streams.audio:
            raise InvalidAudio(
                "The uploaded file has no audio track. Upload an audio recording of the "
                "consultation.",
                code="no_audio_track",
            )
        stream = container.streams.audio[0]
        declared = _declared_duration_s(container, stream)
        if container.format.name == "wav":
            declared = max(declared, _declared_wav_duration_s(path))
        decoded_samples = 0
        sample_rate = stream.rate or 0
        try:
            for frame in container.decode(stream):
                decoded_samples += frame.samples
                sample_rate = frame.sample_rate or sample_rate
                if sample_rate and decoded_samples / sample_rate > max_duration_s:
                    raise InvalidAudio(
                        f"The recording is longer than the {max_duration_s / 60:g}-minute limit."
                        " Split it into shorter recordings.",
                        code="audio_too_long",
                    )
        except av.error.FFmpegError as exc:
            raise InvalidAudio(
                "The audio file is damaged and could not be decoded to the end. Upload the "
                "original recording again.",
                code="corrupt_audio",
            ) from exc
        duration = decoded_samples / sample_rate if sample_rate else 0.0
        if declared > 0 and duration < declared * _TRUNCATION_TOLERANCE:
            raise InvalidAudio(
                f"The audio file is incomplete: it holds {duration:.1f} s of the {declared:.1f} s "
                "its header announces. The upload was probably cut off; upload it again.",
                code="truncated_audio",
            )
        if duration < _MIN_DURATION_S:
            raise InvalidAudio(
                "The recording contains no sound (zero duration). Check the microphone and "
                "record again.",
                code="zero_duration",
            )
        return AudioInfo(
            duration_s=round(duration, 3),
            format_name=container.format.name,
            codec=stream.codec_context.name,
            sample_rate=sample_rate,
            channels=stream.channels,
        )


def convert_to_wav(source: Path, target: Path) -> float:
    """Write ``source`` as 16 kHz mono 16-bit WAV to ``target``; return its duration in seconds."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=TARGET_SAMPLE_RATE)
    partial = target.with_suffix(target.suffix + ".part")
    samples = 0
    try:
        with av.open(str(source), mode="r") as container:
            if not container.streams.audio:
                raise InvalidAudio("The recording has no audio track.", code="no_audio_track")
            stream = container.streams.audio[0]
            with wave.open(str(partial), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(TARGET_SAMPLE_RATE)
                for frame in container.decode(stream):
                    for converted in resampler.resample(frame):
                        out.writeframes(converted.to_ndarray().tobytes())
                        samples += converted.samples
                for converted in resampler.resample(None):
                    out.writeframes(converted.to_ndarray().tobytes())
                    samples += converted.samples
    except av.error.FFmpegError as exc:
        partial.unlink(missing_ok=True)
        raise InvalidAudio(
            "The stored recording could not be decoded. Upload the original recording again.",
            code="corrupt_audio",
        ) from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    # Rename last, so a crash never leaves a half-written file under the final name.
    partial.replace(target)
    return samples / TARGET_SAMPLE_RATE
