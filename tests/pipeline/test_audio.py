"""Upload validation and 16 kHz WAV conversion with PyAV, on real files in common formats."""

from __future__ import annotations

import random
import tracemalloc
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from clinscribe.errors import InvalidAudio
from clinscribe.pipeline.audio import convert_to_wav, inspect_audio
from tests.support.audio import CONSULTATION_WAV, DATA, SHORT_WAV

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

SHORT_DURATION_S = 4.659
NO_LIMIT_S = 3600.0

# (file name, encoder, sample rate): what browsers, phones and dictation apps upload.
ENCODINGS = [
    ("visit.ogg", "libopus", 48_000),
    ("visit.mp3", "libmp3lame", 16_000),
    ("visit.flac", "flac", 16_000),
    ("visit.m4a", "aac", 16_000),
    ("visit.webm", "libopus", 48_000),
]


def encode(source: Path, target: Path, codec: str, rate: int) -> Path:
    """Re-encode ``source`` into ``target`` (container from the suffix) with PyAV."""
    try:
        av.codec.Codec(codec, "w")
    except av.codec.codec.UnknownCodecError:  # pragma: no cover - depends on the FFmpeg build
        pytest.skip(f"PyAV's bundled FFmpeg has no {codec} encoder")
    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        formats = stream.codec_context.codec.audio_formats
        assert formats, f"{codec} lists no sample formats"
        resampler = av.AudioResampler(format=formats[0].name, layout="mono", rate=rate)
        for frame in [*src.decode(audio=0), None]:  # None flushes the resampler
            for resampled in resampler.resample(frame):
                out.mux(stream.encode(resampled))
        out.mux(stream.encode(None))
    return target


def video_only_mp4(target: Path) -> Path:
    with av.open(str(target), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(10):
            image = np.full((64, 64, 3), i * 20, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return target


def wav_params(path: Path) -> tuple[int, int, int, float]:
    with wave.open(str(path), "rb") as wav:
        frames = wav.getnframes()
        return (
            wav.getnchannels(),
            wav.getsampwidth(),
            wav.getframerate(),
            frames / wav.getframerate(),
        )


def rejection(path: Path, max_duration_s: float = NO_LIMIT_S) -> InvalidAudio:
    with pytest.raises(InvalidAudio) as raised:
        inspect_audio(path, max_duration_s=max_duration_s)
    assert raised.value.status_code == 422
    return raised.value


# --- inspect_audio: accepted -----------------------------------------------------------------


def test_wav_is_accepted_with_its_duration() -> None:
    info = inspect_audio(SHORT_WAV, max_duration_s=NO_LIMIT_S)
    assert info.duration_s == pytest.approx(SHORT_DURATION_S, abs=0.05)
    assert (info.format_name, info.codec, info.sample_rate, info.channels) == (
        "wav",
        "pcm_s16le",
        16_000,
        1,
    )


@pytest.mark.parametrize(("name", "codec", "rate"), ENCODINGS)
def test_common_formats_are_accepted(tmp_path: Path, name: str, codec: str, rate: int) -> None:
    encoded = encode(SHORT_WAV, tmp_path / name, codec, rate)
    info = inspect_audio(encoded, max_duration_s=NO_LIMIT_S)
    # Lossy codecs may add a few ms of encoder priming (AAC measured 4.672 s).
    assert info.duration_s == pytest.approx(SHORT_DURATION_S, abs=0.05)
    assert info.channels == 1


# --- inspect_audio: rejected -----------------------------------------------------------------


def test_text_file_is_not_audio() -> None:
    error = rejection(DATA / "not_audio.txt")
    assert error.code == "not_audio"
    assert "WAV" in error.message  # tells the user which formats work


def test_random_bytes_named_wav_are_not_audio(tmp_path: Path) -> None:
    noise = tmp_path / "visit.wav"
    noise.write_bytes(random.Random(7).randbytes(20_000))
    assert rejection(noise).code == "not_audio"


def test_empty_file_is_rejected(tmp_path: Path) -> None:
    empty = tmp_path / "visit.wav"
    empty.touch()
    error = rejection(empty)
    assert "empty" in error.message
    assert "upload it again" in error.message


def test_header_without_frames_has_zero_duration() -> None:
    error = rejection(DATA / "silence_zero.wav")
    assert error.code == "zero_duration"
    assert "record again" in error.message


def test_upload_cut_off_after_2000_bytes_is_truncated() -> None:
    # The RIFF header still announces 4.66 s; only ~61 ms of it arrived.
    error = rejection(DATA / "truncated.wav")
    assert error.code == "truncated_audio"
    assert "upload it again" in error.message


def test_wav_cut_in_half_is_truncated(tmp_path: Path) -> None:
    data = SHORT_WAV.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    error = rejection(cut)
    assert error.code == "truncated_audio"
    assert "2.3 s of the 4.7 s" in error.message


def test_wav_with_extra_chunks_is_read_correctly(tmp_path: Path) -> None:
    """The header parser walks past metadata chunks (odd-sized ones are padded) to `data`."""
    data = SHORT_WAV.read_bytes()
    fmt_end = 12 + 8 + int.from_bytes(data[16:20], "little")
    assert data[fmt_end : fmt_end + 4] == b"data"
    listing = b"LIST" + (5).to_bytes(4, "little") + b"INFOx" + b"\0"  # odd size + pad byte
    body = data[12:fmt_end] + listing + data[fmt_end:]
    whole = tmp_path / "tagged.wav"
    whole.write_bytes(b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WAVE" + body)
    info = inspect_audio(whole, max_duration_s=NO_LIMIT_S)
    assert info.duration_s == pytest.approx(SHORT_DURATION_S, abs=0.05)
    cut = tmp_path / "tagged_cut.wav"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert rejection(cut).code == "truncated_audio"


def test_streamed_wav_with_unknown_data_size_is_accepted(tmp_path: Path) -> None:
    # Recorders that stream WAV write 0xFFFFFFFF as the data size: nothing can be "missing".
    data = bytearray(SHORT_WAV.read_bytes())
    assert data[36:40] == b"data"
    data[40:44] = (0xFFFFFFFF).to_bytes(4, "little")
    streamed = tmp_path / "streamed.wav"
    streamed.write_bytes(data)
    info = inspect_audio(streamed, max_duration_s=NO_LIMIT_S)
    assert info.duration_s == pytest.approx(SHORT_DURATION_S, abs=0.05)


def test_truncated_mp3_is_detected(tmp_path: Path) -> None:
    mp3 = encode(SHORT_WAV, tmp_path / "visit.mp3", "libmp3lame", 16_000)
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(mp3.read_bytes()[: mp3.stat().st_size // 3])
    error = rejection(cut)
    assert error.code == "truncated_audio"
    assert "upload it again" in error.message


def test_video_without_audio_has_no_audio_track(tmp_path: Path) -> None:
    error = rejection(video_only_mp4(tmp_path / "visit.mp4"))
    assert error.code == "no_audio_track"


def test_damaged_frames_are_corrupt_audio(tmp_path: Path) -> None:
    flac = encode(SHORT_WAV, tmp_path / "visit.flac", "flac", 16_000)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    assert rejection(cut).code == "corrupt_audio"


def test_recording_over_the_limit_is_too_long() -> None:
    error = rejection(SHORT_WAV, max_duration_s=1)
    assert error.code == "audio_too_long"
    assert "Split it" in error.message


# --- convert_to_wav ----------------------------------------------------------------------------


@pytest.mark.parametrize("source_name", ["short_en.wav", "visit.mp3"])
def test_converts_to_16k_mono_16bit_wav(tmp_path: Path, source_name: str) -> None:
    source = SHORT_WAV
    if source_name.endswith(".mp3"):
        source = encode(SHORT_WAV, tmp_path / source_name, "libmp3lame", 16_000)
    target = tmp_path / "out" / "visit.wav"
    target.parent.mkdir()
    seconds = convert_to_wav(source, target)
    channels, width, rate, duration = wav_params(target)
    assert (channels, width, rate) == (1, 2, 16_000)
    assert seconds == pytest.approx(duration, abs=1e-3)
    assert duration == pytest.approx(SHORT_DURATION_S, abs=0.05)
    assert [p.name for p in target.parent.iterdir()] == ["visit.wav"]  # no .part left


def test_stereo_44k_is_downmixed_and_resampled(tmp_path: Path) -> None:
    stereo = tmp_path / "stereo.wav"
    rate, seconds = 44_100, 2.0
    t = np.arange(int(rate * seconds)) / rate
    tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2")
    with wave.open(str(stereo), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.column_stack([tone, tone]).tobytes())
    target = tmp_path / "mono.wav"
    assert convert_to_wav(stereo, target) == pytest.approx(seconds, abs=0.05)
    assert wav_params(target)[:3] == (1, 2, 16_000)


@pytest.mark.parametrize("damage", ["no_audio_track", "cut_flac"])
def test_failed_conversion_raises_invalid_audio_and_leaves_no_part(
    tmp_path: Path, damage: str
) -> None:
    if damage == "no_audio_track":
        source = video_only_mp4(tmp_path / "visit.mp4")
    else:
        flac = encode(SHORT_WAV, tmp_path / "visit.flac", "flac", 16_000)
        source = tmp_path / "cut.flac"
        source.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InvalidAudio):
        convert_to_wav(source, out / "visit.wav")
    assert list(out.iterdir()) == []


def test_long_recording_converts_in_constant_memory(tmp_path: Path) -> None:
    long_wav = tmp_path / "long.wav"
    with wave.open(str(CONSULTATION_WAV), "rb") as src:
        params, frames = src.getparams(), src.readframes(src.getnframes())
    with wave.open(str(long_wav), "wb") as out:
        out.setparams(params)
        for _ in range(10):
            out.writeframes(frames)
    del frames
    input_s = wav_params(long_wav)[3]
    assert input_s > 500
    input_bytes = long_wav.stat().st_size  # ~16 MB: holding it whole would break the bound
    # Warm up first: the first conversion in a process pays one-off lazy imports (~6 MB).
    convert_to_wav(SHORT_WAV, tmp_path / "warm.wav")

    tracemalloc.start()
    try:
        seconds = convert_to_wav(long_wav, tmp_path / "out.wav")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seconds == pytest.approx(input_s, abs=0.05)
    assert peak < 20 * 1024 * 1024
    # Measured ~20 kB: a few frames at a time. An eighth of the file still proves streaming.
    assert peak < input_bytes / 8, f"peak {peak / 1e6:.1f} MB: the file is not streamed"
