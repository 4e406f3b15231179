"""Where consultation audio lives: encrypted blobs in a local directory or S3-compatible storage.

Blob keys (for the local backend, files under <data_dir>/audio/)::

    <consultation id>/original     the upload, byte for byte (encrypted)
    <consultation id>/audio.flac   16 kHz mono audio made by preparing_audio, as FLAC (encrypted)
    <consultation id>/audio.wav    the same as WAV, as stored by earlier releases (still read)

<data_dir>/work/proc-<random>/ holds this process's plaintext working copies and partial
uploads, only while they are needed.

Encryption happens here, before a blob store sees any byte: the blob store (storage/blobs.py)
keeps only ciphertext. Decoders and speech-to-text engines want a file path, so a step that
needs the audio gets a decrypted working copy (:meth:`AudioStore.plaintext`; the normalized
audio always as WAV) that is removed when the step ends. Each process keeps its working files
in its own directory, holding an exclusive lock on the directory's ``.owner`` file for as long
as it lives; a directory whose lock nobody holds belonged to a process that died, and is
removed (at start and then periodically).

Every method blocks (disk, network, codecs): call them from async code through
``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO, Literal

from clinscribe.config import Settings
from clinscribe.security.crypto import DEFAULT_SEGMENT_SIZE, Keyring
from clinscribe.storage.blobs import BlobStore, LocalBlobStore, blob_store_from_settings
from clinscribe.storage.flac import flac_to_wav, wav_to_flac

AudioKind = Literal["original", "normalized"]
_ORIGINAL = "original"
_FLAC = "audio.flac"
_LEGACY_WAV = "audio.wav"
_STORED_NAMES = (_ORIGINAL, _FLAC, _LEGACY_WAV)
_OWNER = ".owner"
_UNOWNED_GRACE_S = 60


class AudioStore:
    def __init__(self, blobs: Path | BlobStore, work_root: Path, keyring: Keyring) -> None:
        """``blobs``: a directory (the local backend) or any :class:`BlobStore`."""
        self.blobs: BlobStore = LocalBlobStore(blobs) if isinstance(blobs, Path) else blobs
        self.work_root = work_root
        self.keyring = keyring
        self._own_dir: Path | None = None
        self._owner_lock: IO[str] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, keyring: Keyring) -> AudioStore:
        return cls(blob_store_from_settings(settings), settings.work_dir, keyring)

    def process_dir(self) -> Path:
        """This process's private directory for plaintext working files (created once)."""
        with self._lock:
            if self._own_dir is None:
                self.work_root.mkdir(parents=True, exist_ok=True, mode=0o700)
                directory = Path(tempfile.mkdtemp(prefix="proc-", dir=self.work_root))
                lock = (directory / _OWNER).open("w")
                fcntl.flock(lock, fcntl.LOCK_EX)
                self._own_dir, self._owner_lock = directory, lock
            return self._own_dir

    def upload_dir(self) -> Path:
        return self.process_dir() / "uploads"

    def close(self) -> None:
        """Remove this process's working directory (at shutdown)."""
        with self._lock:
            if self._own_dir is not None and self._owner_lock is not None:
                shutil.rmtree(self._own_dir, ignore_errors=True)
                self._owner_lock.close()
                self._own_dir = self._owner_lock = None

    @staticmethod
    def _prefix(consultation_id: str) -> str:
        if not consultation_id.isalnum():
            raise ValueError("consultation ids are alphanumeric")
        return f"{consultation_id}/"

    def _key(self, consultation_id: str, kind: AudioKind) -> str:
        """The stored blob of ``kind`` (for normalized audio, FLAC unless only a WAV exists)."""
        prefix = self._prefix(consultation_id)
        if kind == "original":
            return prefix + _ORIGINAL
        if self.blobs.exists(prefix + _FLAC) or not self.blobs.exists(prefix + _LEGACY_WAV):
            return prefix + _FLAC
        return prefix + _LEGACY_WAV

    def adopt_upload(self, consultation_id: str, upload: Path) -> None:
        """Encrypt a validated upload into place and remove the plaintext upload."""
        self.store(consultation_id, "original", upload)

    def store(self, consultation_id: str, kind: AudioKind, plaintext: Path) -> None:
        """Seal ``plaintext`` (for normalized audio: the 16 kHz WAV, kept as FLAC) and store it;
        the plaintext file is removed either way."""
        prefix = self._prefix(consultation_id)
        try:
            with self.workspace() as directory:
                source, key = plaintext, prefix + _ORIGINAL
                if kind == "normalized":
                    source, key = directory / _FLAC, prefix + _FLAC
                    wav_to_flac(plaintext, source)
                sealed = directory / "sealed"
                self.keyring.encrypt_file(source, sealed)
                self.blobs.put(key, sealed)
        finally:
            plaintext.unlink(missing_ok=True)

    def open(self, consultation_id: str, kind: AudioKind) -> BinaryIO:
        """A seekable reader of the stored audio's plaintext (FLAC, or WAV for older
        consultations; see :meth:`media_type`), decrypting as it reads."""
        return self.keyring.open_stream_reader(self.blobs.open(self._key(consultation_id, kind)))

    def size(self, consultation_id: str, kind: AudioKind) -> int:
        with self.open(consultation_id, kind) as reader:
            return reader.seek(0, io.SEEK_END)

    def media_type(self, consultation_id: str) -> str:
        """The MIME type of what :meth:`open` gives for the normalized audio."""
        key = self._key(consultation_id, "normalized")
        return "audio/flac" if key.endswith(_FLAC) else "audio/wav"

    def has(self, consultation_id: str, kind: AudioKind) -> bool:
        return self.blobs.exists(self._key(consultation_id, kind))

    @contextlib.contextmanager
    def workspace(self) -> Iterator[Path]:
        """A private scratch directory for plaintext working files, removed afterwards."""
        directory = Path(tempfile.mkdtemp(dir=self.process_dir()))
        try:
            yield directory
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    @contextlib.contextmanager
    def plaintext(self, consultation_id: str, kind: AudioKind) -> Iterator[Path]:
        """A decrypted working copy of the audio (normalized: a 16 kHz mono WAV), deleted when
        the block ends."""
        with self.workspace() as directory:
            copy = directory / ("audio.wav" if kind == "normalized" else _ORIGINAL)
            self.write_plaintext(consultation_id, kind, copy)
            yield copy

    def write_plaintext(self, consultation_id: str, kind: AudioKind, target: Path) -> None:
        """Decrypt the audio into ``target``, a path in a :meth:`workspace` (normalized audio
        as the 16 kHz mono WAV that speech-to-text takes, whatever its stored form)."""
        key = self._key(consultation_id, kind)
        compact = key.endswith(_FLAC)
        copy = target.with_name(target.name + ".flac") if compact else target
        try:
            with self.open(consultation_id, kind) as plain, copy.open("wb") as out:
                shutil.copyfileobj(plain, out, DEFAULT_SEGMENT_SIZE)
            if compact:
                flac_to_wav(copy, target)
        finally:
            if compact:
                copy.unlink(missing_ok=True)

    def delete(self, consultation_id: str) -> None:
        self.blobs.delete_prefix(self._prefix(consultation_id))

    def exists(self, consultation_id: str) -> bool:
        return bool(self.blobs.keys(self._prefix(consultation_id)))

    def reencrypt(self) -> tuple[int, int]:
        """Re-seal stored audio not under the current key (after a key rotation).

        Returns (blobs re-encrypted, blobs still under another key). A consultation deleted
        meanwhile is skipped (checked just before each blob is written back).
        """
        done = 0
        for key in self._audio_keys():
            try:
                if self._is_current(key):
                    continue
                with self.workspace() as directory:
                    sealed = directory / "sealed"
                    with (
                        self.keyring.open_stream_reader(self.blobs.open(key)) as plain,
                        self.keyring.open_writer(sealed) as out,
                    ):
                        shutil.copyfileobj(plain, out, DEFAULT_SEGMENT_SIZE)
                    if self.blobs.exists(key):
                        self.blobs.put(key, sealed)
                        done += 1
            except FileNotFoundError:
                continue  # deleted meanwhile
        left = 0
        for key in self._audio_keys():
            with contextlib.suppress(FileNotFoundError):
                left += 0 if self._is_current(key) else 1
        return done, left

    def _audio_keys(self) -> list[str]:
        return [k for k in self.blobs.keys("") if k.rpartition("/")[2] in _STORED_NAMES]

    def _is_current(self, key: str) -> bool:
        with self.blobs.open(key) as stored:
            return self.keyring.is_current_stream(stored)

    def remove_abandoned_work(self) -> int:
        """Remove the working directories of processes that died (their lock is free)."""
        if not self.work_root.exists():
            return 0
        removed = 0
        for entry in self.work_root.iterdir():
            if entry == self._own_dir or not entry.is_dir():
                continue
            if _owner_is_gone(entry):
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed


def _owner_is_gone(directory: Path) -> bool:
    owner = directory / _OWNER
    if not owner.exists():
        # Being created right now, or left by an older release: judged by age.
        return directory.stat().st_mtime < time.time() - _UNOWNED_GRACE_S
    try:
        with owner.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # a live process holds it
    except FileNotFoundError:
        return False  # its owner just removed it
    return True
