"""Where stored audio bytes live: a local directory (default) or S3-compatible object storage.

A blob store keeps opaque bytes under keys such as ``<consultation id>/original``. It never
sees plaintext when encryption is on: :class:`~clinscribe.storage.audio.AudioStore` seals the
audio first and hands the ciphertext over. Readers are seekable, so the audio endpoint can
decrypt just the segments a browser's byte range needs (S3 answers them with Range GETs).

All methods block (disk or network): call them from async code through ``asyncio.to_thread``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

from clinscribe.config import Settings
from clinscribe.errors import ConfigurationError


class BlobStore(Protocol):
    def put(self, key: str, source: Path) -> None:
        """Store the file's bytes under ``key`` (replacing any), all or nothing; the source
        file is moved or removed."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A seekable reader of the stored bytes; FileNotFoundError when there is none."""
        ...

    def exists(self, key: str) -> bool: ...

    def keys(self, prefix: str) -> list[str]:
        """Every stored key starting with ``prefix``, sorted."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Remove every key starting with ``prefix`` (nothing there is fine)."""
        ...

    def describe(self) -> str:
        """Where the blobs live, for operators (no secrets)."""
        ...


def _check_key(key: str) -> None:
    # Keys are built from consultation ids and fixed names; refuse anything that could escape.
    parts = key.split("/")
    if not key or any(part in ("", ".", "..") for part in parts[:-1]) or parts[-1] in (".", ".."):
        raise ValueError("blob keys are relative paths without '.' or '..' parts")


class LocalBlobStore:
    """Blobs as files under one directory: ``<root>/<key>`` (the layout of earlier releases)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        _check_key(key)
        return self.root / key

    def put(self, key: str, source: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Same file system (the usual case: both under the data dir): an atomic rename.
            os.replace(source, target)
            return
        except OSError:
            pass
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as data:
                shutil.copyfileobj(data, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        source.unlink(missing_ok=True)

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def keys(self, prefix: str) -> list[str]:
        if not self.root.exists():
            return []
        found = (
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and not path.name.startswith(".")  # not a writer's temp file
        )
        return sorted(key for key in found if key.startswith(prefix))

    def delete_prefix(self, prefix: str) -> None:
        if prefix.endswith("/"):
            shutil.rmtree(self._path(prefix.rstrip("/")), ignore_errors=True)
            return
        for key in self.keys(prefix):
            self._path(key).unlink(missing_ok=True)

    def describe(self) -> str:
        return f"local directory {self.root}"


def blob_store_from_settings(settings: Settings) -> BlobStore:
    if settings.storage.backend == "s3":
        try:
            from clinscribe.storage.s3 import S3BlobStore  # boto3: needed by this backend only
        except ImportError:
            raise ConfigurationError(
                "CLINSCRIBE_STORAGE__BACKEND is s3 but boto3 is not installed: "
                "pip install 'clinscribe[s3]'"
            ) from None
        return S3BlobStore.from_settings(settings.storage)
    return LocalBlobStore(settings.audio_dir)


def probe(blobs: BlobStore, work_dir: Path) -> None:
    """Write, read back and delete a small object that holds no patient data (for
    `clinscribe doctor`); raises what the store raises when it cannot."""
    work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = f"_doctor/probe-{secrets.token_hex(8)}"
    payload = b"clinscribe doctor probe, no patient data\n"
    fd, temp = tempfile.mkstemp(dir=work_dir, prefix="probe-")
    with os.fdopen(fd, "wb") as out:
        out.write(payload)
    try:
        blobs.put(key, Path(temp))
        with blobs.open(key) as stored:
            if stored.read() != payload:
                raise OSError("the object read back differs from the one written")
    finally:
        Path(temp).unlink(missing_ok=True)
        blobs.delete_prefix(key)
