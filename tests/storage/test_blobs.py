"""Blob stores: the local directory and S3-compatible storage (moto on 127.0.0.1) behave alike."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from clinscribe.config import StorageSettings
from clinscribe.errors import ConfigurationError
from clinscribe.storage.blobs import BlobStore, LocalBlobStore, probe
from clinscribe.storage.s3 import S3BlobStore, StorageUnavailable
from tests.storage.conftest import ACCESS_KEY, REGION, SECRET_KEY, S3Server
from tests.support.server import free_port

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py


def s3_settings(endpoint_url: str, bucket: str, prefix: str = "") -> StorageSettings:
    return StorageSettings(
        backend="s3",
        s3_bucket=bucket,
        s3_prefix=prefix,
        s3_endpoint_url=endpoint_url,
        s3_region=REGION,
        s3_access_key_id=ACCESS_KEY,
        s3_secret_access_key=SECRET_KEY,  # type: ignore[arg-type]
        s3_timeout_s=5,
    )


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "audio")
        return
    s3: S3Server = request.getfixturevalue("s3_server")
    yield S3BlobStore.from_settings(s3_settings(s3.endpoint_url, s3.new_bucket(), "pre/"))


def _file(tmp_path: Path, data: bytes, name: str = "source") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_put_open_ranged_read_keys_delete(blobs: BlobStore, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4000  # ~1 MB: several buffered reads
    source = _file(tmp_path, data)
    blobs.put("abc123/original", source)
    assert not source.exists(), "put takes the source file over"
    blobs.put("abc123/audio.flac", _file(tmp_path, b"second"))
    blobs.put("abd999/original", _file(tmp_path, b"other consultation"))

    assert blobs.exists("abc123/original") and not blobs.exists("abc123/audio.wav")
    with blobs.open("abc123/original") as reader:
        assert reader.seek(0, io.SEEK_END) == len(data)
        reader.seek(300_001)
        assert reader.read(70_000) == data[300_001:370_001]
        reader.seek(len(data) - 5)
        assert reader.read(100) == data[-5:]
        reader.seek(0)
        assert reader.read() == data
    assert blobs.keys("abc123/") == ["abc123/audio.flac", "abc123/original"]
    assert blobs.keys("") == ["abc123/audio.flac", "abc123/original", "abd999/original"]

    blobs.put("abc123/original", _file(tmp_path, b"replaced"))
    with blobs.open("abc123/original") as reader:
        assert reader.read() == b"replaced"

    blobs.delete_prefix("abc123/")
    blobs.delete_prefix("abc123/")  # nothing left: fine
    assert blobs.keys("") == ["abd999/original"]
    with pytest.raises(FileNotFoundError):
        blobs.open("abc123/original")


def test_keys_cannot_escape(blobs: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="blob keys"):
        blobs.put("../outside", _file(tmp_path, b"x"))


def test_probe_leaves_nothing(blobs: BlobStore, tmp_path: Path) -> None:
    probe(blobs, tmp_path / "work")
    assert blobs.keys("") == []
    assert list((tmp_path / "work").iterdir()) == []


def test_local_layout_is_the_data_dir_layout(tmp_path: Path) -> None:
    """Earlier releases' files (<audio dir>/<id>/<name>) are the local store's keys."""
    (tmp_path / "audio" / "old1").mkdir(parents=True)
    (tmp_path / "audio" / "old1" / "audio.wav").write_bytes(b"stored before")
    (tmp_path / "audio" / "old1" / ".audio.wav.x.tmp").write_bytes(b"a writer's temp file")
    blobs = LocalBlobStore(tmp_path / "audio")
    assert blobs.keys("") == ["old1/audio.wav"]
    with blobs.open("old1/audio.wav") as reader:
        assert reader.read() == b"stored before"


def test_s3_settings_errors_name_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="CLINSCRIBE_STORAGE__S3_BUCKET"):
        S3BlobStore.from_settings(StorageSettings(backend="s3"))
    partial = StorageSettings(backend="s3", s3_bucket="b", s3_access_key_id="only-the-id")
    with pytest.raises(ConfigurationError, match="S3_SECRET_ACCESS_KEY"):
        S3BlobStore.from_settings(partial)


def test_s3_unreachable_or_missing_bucket_says_what_to_check(
    s3_server: S3Server, tmp_path: Path
) -> None:
    nobody = S3BlobStore.from_settings(s3_settings(f"http://127.0.0.1:{free_port()}", "b"))
    nobody._client.meta.config.retries = {"max_attempts": 1}
    with pytest.raises(StorageUnavailable, match="CLINSCRIBE_STORAGE__S3_") as raised:
        nobody.exists("abc/original")
    assert raised.value.status_code == 503

    missing = S3BlobStore.from_settings(s3_settings(s3_server.endpoint_url, "no-such-bucket"))
    with pytest.raises(StorageUnavailable, match="NoSuchBucket"):
        missing.put("abc/original", _file(tmp_path, b"x"))
    assert not (tmp_path / "source").exists(), "the plaintext source is removed even then"
