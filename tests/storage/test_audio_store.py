"""AudioStore over both backends: sealed before storing, FLAC for the normalized audio (the
same samples back as WAV), older WAV consultations still readable, deleted, re-encrypted."""

from __future__ import annotations

import io
import shutil
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from clinscribe.pipeline.audio import convert_to_wav
from clinscribe.security.crypto import FILE_MAGIC, Keyring, generate_key, keyring_from_keys
from clinscribe.storage.audio import AudioStore
from clinscribe.storage.blobs import BlobStore, LocalBlobStore
from clinscribe.storage.flac import flac_to_wav, wav_to_flac
from clinscribe.storage.s3 import S3BlobStore
from tests.storage.conftest import S3Server, speech_windows
from tests.storage.test_blobs import s3_settings
from tests.support.audio import CONSULTATION_WAV, SHORT_WAV

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

PLAINTEXT_MARKS = (b"RIFF", b"fLaC", b"OggS")


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "audio")
        return
    s3: S3Server = request.getfixturevalue("s3_server")
    yield S3BlobStore.from_settings(s3_settings(s3.endpoint_url, s3.new_bucket()))


@pytest.fixture
def keyring() -> Keyring:
    return keyring_from_keys(generate_key())


def _normalized(tmp_path: Path, source: Path = SHORT_WAV) -> Path:
    target = tmp_path / "normalized.wav"
    convert_to_wav(source, target)
    return target


def _stored_bytes(blobs: BlobStore) -> dict[str, bytes]:
    found = {}
    for key in blobs.keys(""):
        with blobs.open(key) as reader:
            found[key] = reader.read()
    return found


def test_store_seals_and_compacts(blobs: BlobStore, keyring: Keyring, tmp_path: Path) -> None:
    store = AudioStore(blobs, tmp_path / "work", keyring)
    upload = tmp_path / "upload.wav"
    shutil.copyfile(SHORT_WAV, upload)
    store.adopt_upload("c1", upload)
    normalized = _normalized(tmp_path)
    expected_wav = normalized.read_bytes()
    store.store("c1", "normalized", normalized)
    assert not upload.exists() and not normalized.exists(), "plaintext inputs are removed"

    stored = _stored_bytes(blobs)
    assert sorted(stored) == ["c1/audio.flac", "c1/original"]
    pcm = SHORT_WAV.read_bytes()[44:]
    for key, raw in stored.items():
        assert raw.startswith(FILE_MAGIC), key
        assert not raw.startswith(PLAINTEXT_MARKS) and b"WAVEfmt " not in raw, key
        assert not any(window in raw for window in speech_windows(pcm)), key

    assert store.has("c1", "original") and store.has("c1", "normalized")
    assert store.media_type("c1") == "audio/flac"
    with store.open("c1", "normalized") as reader:
        assert reader.read(4) == b"fLaC"
        reader.seek(1000)
        assert len(reader.read(500)) == 500
    with store.plaintext("c1", "normalized") as wav:
        assert wav.read_bytes() == expected_wav, "speech-to-text sees the very same WAV"
        assert wav.parent.parent == store.process_dir()
    with store.plaintext("c1", "original") as original:
        assert original.read_bytes() == SHORT_WAV.read_bytes()
    assert not wav.exists() and not original.exists()

    store.delete("c1")
    assert blobs.keys("") == [] and not store.exists("c1")
    assert not store.has("c1", "normalized")
    store.close()
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())


def test_consultations_stored_as_wav_stay_readable(keyring: Keyring, tmp_path: Path) -> None:
    """Earlier releases kept <audio dir>/<id>/audio.wav (encrypted WAV)."""
    legacy = tmp_path / "audio" / "old1" / "audio.wav"
    legacy.parent.mkdir(parents=True)
    keyring.encrypt_file(SHORT_WAV, legacy)
    store = AudioStore(tmp_path / "audio", tmp_path / "work", keyring)
    assert store.has("old1", "normalized")
    assert store.media_type("old1") == "audio/wav"
    assert store.size("old1", "normalized") == SHORT_WAV.stat().st_size
    with store.open("old1", "normalized") as reader:
        assert reader.read(4) == b"RIFF"
    with store.plaintext("old1", "normalized") as wav:
        assert wav.read_bytes() == SHORT_WAV.read_bytes()
    store.delete("old1")
    assert not legacy.parent.exists()


def test_stored_without_a_key_in_development(tmp_path: Path) -> None:
    store = AudioStore(tmp_path / "audio", tmp_path / "work", Keyring(None))
    store.store("c2", "normalized", _normalized(tmp_path))
    assert (tmp_path / "audio" / "c2" / "audio.flac").read_bytes()[:4] == b"fLaC"
    with store.plaintext("c2", "normalized") as wav, wave.open(str(wav)) as reader:
        assert reader.getframerate() == 16_000


def test_reencrypt_after_rotation(blobs: BlobStore, tmp_path: Path) -> None:
    old_key, new_key = generate_key(), generate_key()
    old = AudioStore(blobs, tmp_path / "work", keyring_from_keys(old_key))
    old.store("c3", "normalized", _normalized(tmp_path))
    upload = tmp_path / "u.wav"
    shutil.copyfile(SHORT_WAV, upload)
    old.adopt_upload("c3", upload)
    with old.plaintext("c3", "normalized") as wav:
        expected = wav.read_bytes()

    rotated = AudioStore(blobs, tmp_path / "work", keyring_from_keys(new_key, old_key))
    assert rotated.reencrypt() == (2, 0)
    assert rotated.reencrypt() == (0, 0)
    only_new = AudioStore(blobs, tmp_path / "work", keyring_from_keys(new_key))
    with only_new.plaintext("c3", "normalized") as wav:
        assert wav.read_bytes() == expected


def test_flac_round_trip_is_exact_and_smaller(tmp_path: Path) -> None:
    wav = _normalized(tmp_path, CONSULTATION_WAV)
    flac, back = tmp_path / "a.flac", tmp_path / "back.wav"
    wav_to_flac(wav, flac)
    flac_to_wav(flac, back)
    assert back.read_bytes() == wav.read_bytes()
    assert flac.stat().st_size < 0.6 * wav.stat().st_size
    with pytest.raises(ValueError, match="16 kHz mono"):
        stereo = tmp_path / "stereo.wav"
        with wave.open(str(stereo), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(16_000)
            out.writeframes(io.BytesIO(b"\x00" * 6400).read())
        wav_to_flac(stereo, tmp_path / "x.flac")
