"""The must-show for object storage: a real `clinscribe serve` with the S3 backend (moto on
127.0.0.1) uploads, processes, serves a byte range and deletes; no object ever holds plaintext
audio, and the local data directory holds no audio at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinscribe.config import Settings, StorageSettings
from clinscribe.doctor import run_checks
from clinscribe.errors import ConfigurationError
from clinscribe.pipeline.audio import convert_to_wav
from clinscribe.pipeline.runtime import Runtime
from clinscribe.security.crypto import FILE_MAGIC
from clinscribe.storage.flac import flac_to_wav
from tests.fakes.openai_compat import FakeOpenAIServer
from tests.storage.conftest import S3Server, speech_windows
from tests.storage.test_blobs import s3_settings
from tests.support.audio import CONSULTATION_WAV
from tests.support.server import ServerProcess, fake_stt_env

pytestmark = pytest.mark.slow

PREFIX = "clinic-a/"
AUDIO_MAGIC = (b"RIFF", b"ID3", b"OggS", b"fLaC", b"\x00\x00\x00\x20ftyp", b"\x1aE\xdf\xa3")


def _plaintext_audio(raw: bytes, windows: list[bytes]) -> list[str]:
    found = [f"header {m!r}" for m in AUDIO_MAGIC if raw.startswith(m)]
    found += ["WAV header"] if b"WAVEfmt " in raw else []
    return found + [f"audio bytes at window {i}" for i, w in enumerate(windows) if w in raw]


def test_upload_process_range_delete_against_object_storage(
    tmp_path: Path, s3_server: S3Server, fake_stt: FakeOpenAIServer
) -> None:
    bucket = s3_server.new_bucket()
    env = fake_stt_env(fake_stt.base_url) | s3_server.env(bucket, PREFIX)
    server = ServerProcess(tmp_path / "svc", env)
    windows = speech_windows(CONSULTATION_WAV.read_bytes())
    server.start()
    try:
        response = server.upload(CONSULTATION_WAV)
        assert response.status_code == 202, response.text
        consultation_id = response.json()["id"]
        assert server.wait_terminal(consultation_id, timeout_s=120)["status"] == "completed"

        stored = s3_server.objects(bucket)
        assert sorted(stored) == [f"{PREFIX}{consultation_id}/audio.flac",
                                  f"{PREFIX}{consultation_id}/original"]  # fmt: skip
        for key, raw in stored.items():
            assert raw.startswith(FILE_MAGIC), key
            assert not _plaintext_audio(raw, windows), key

        with server.client() as client:
            base = f"/api/consultations/{consultation_id}/audio"
            whole = client.get(base)
            assert whole.status_code == 200
            assert whole.headers["content-type"] == "audio/flac"
            size = len(whole.content)
            part = client.get(base, headers={"Range": "bytes=1000-4999"})
            assert part.status_code == 206
            assert part.headers["content-range"] == f"bytes 1000-4999/{size}"
            assert part.content == whole.content[1000:5000]
            tail = client.get(base, headers={"Range": f"bytes={size - 10}-"})
            assert tail.content == whole.content[-10:]
            assert client.get(base, headers={"Range": f"bytes={size}-"}).status_code == 416
            assert client.get(base, headers={"Range": "bytes=-"}).status_code == 400

            # The served FLAC holds exactly the samples speech-to-text was given.
            (tmp_path / "served.flac").write_bytes(whole.content)
            flac_to_wav(tmp_path / "served.flac", tmp_path / "served.wav")
            convert_to_wav(CONSULTATION_WAV, tmp_path / "expected.wav")
            served = (tmp_path / "served.wav").read_bytes()
            assert served == (tmp_path / "expected.wav").read_bytes()

            # No audio on local disk: only databases and the log (the working dir is empty).
            data_dir = server.data_dir
            assert not (data_dir / "audio").exists()
            for path in data_dir.rglob("*"):
                if path.is_file() and path.name != "server.log":
                    assert not _plaintext_audio(path.read_bytes(), windows), path

            assert client.delete(f"/api/consultations/{consultation_id}").status_code == 204
        assert s3_server.objects(bucket) == {}, "deleting a consultation deletes its audio"
    finally:
        server.stop()
    assert not any((server.data_dir / "work").iterdir()), "working copies left behind"
    assert "storage_unavailable" not in server.log_text()


def test_doctor_checks_the_bucket(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    good = Settings(data_dir=tmp_path, storage=s3_settings(s3_server.endpoint_url, bucket, PREFIX))
    [check] = [c for c in run_checks(good) if c.name.startswith("audio storage")]
    assert check.ok and bucket in check.detail and "writable" in check.detail
    assert s3_server.objects(bucket) == {}, "the probe object is removed"

    missing = Settings(data_dir=tmp_path, storage=s3_settings(s3_server.endpoint_url, "nope"))
    [check] = [c for c in run_checks(missing) if c.name.startswith("audio storage")]
    assert not check.ok and "NoSuchBucket" in check.detail
    unset = Settings(data_dir=tmp_path, storage=StorageSettings(backend="s3"))
    [check] = [c for c in run_checks(unset) if c.name.startswith("audio storage")]
    assert not check.ok and "CLINSCRIBE_STORAGE__S3_BUCKET" in check.detail


def test_production_with_object_storage_still_needs_a_key(
    s3_server: S3Server, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        environment="production",
        encryption_key=None,
        storage=s3_settings(s3_server.endpoint_url, s3_server.new_bucket()),
    )
    with pytest.raises(ConfigurationError, match="CLINSCRIBE_ENCRYPTION_KEY"):
        Runtime(settings)
