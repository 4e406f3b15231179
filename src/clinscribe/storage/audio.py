"""Where consultation audio lives: one directory per consultation, encrypted at rest.

<data_dir>/audio/<consultation id>/original    the upload, byte for byte (encrypted)
<data_dir>/audio/<consultation id>/audio.wav   16 kHz mono WAV made by preparing_audio (encrypted)
<data_dir>/work/proc-<random>/                 this process's plaintext working copies and
                                               partial uploads, only while they are needed

Decoders and speech-to-text engines want a file path, so a step that needs the audio gets a
decrypted working copy (:meth:`AudioStore.plaintext`) that is removed when the step ends. Each
process keeps its working files in its own directory, holding an exclusive lock on the
directory's ``.owner`` file for as long as it lives; a directory whose lock nobody holds
belonged to a process that died, and is removed (at start and then periodically).
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO, Literal

from clinscribe.security.crypto import Keyring

AudioKind = Literal["original", "normalized"]
_NAMES: dict[AudioKind, str] = {"original": "original", "normalized": "audio.wav"}
_OWNER = ".owner"
_UNOWNED_GRACE_S = 60


class AudioStore:
    def __init__(self, root: Path, work_root: Path, keyring: Keyring) -> None:
        self.root = root
        self.work_root = work_root
        self.keyring = keyring
        self._own_dir: Path | None = None
        self._owner_lock: IO[str] | None = None
        self._lock = threading.Lock()

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

    def _dir(self, consultation_id: str) -> Path:
        if not consultation_id.isalnum():
            raise ValueError("consultation ids are alphanumeric")
        return self.root / consultation_id

    def path(self, consultation_id: str, kind: AudioKind) -> Path:
        """The stored (encrypted) file; read it through :meth:`open` or :meth:`plaintext`."""
        return self._dir(consultation_id) / _NAMES[kind]

    def adopt_upload(self, consultation_id: str, upload: Path) -> Path:
        """Encrypt a validated upload into place and remove the plaintext upload."""
        return self.store(consultation_id, "original", upload)

    def store(self, consultation_id: str, kind: AudioKind, plaintext: Path) -> Path:
        target = self.path(consultation_id, kind)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.keyring.encrypt_file(plaintext, target)
        finally:
            plaintext.unlink(missing_ok=True)
        return target

    def open(self, consultation_id: str, kind: AudioKind) -> BinaryIO:
        """A seekable reader of the plaintext, decrypting as it reads."""
        return self.keyring.open_reader(self.path(consultation_id, kind))

    def size(self, consultation_id: str, kind: AudioKind) -> int:
        return self.keyring.plaintext_size(self.path(consultation_id, kind))

    def has(self, consultation_id: str, kind: AudioKind) -> bool:
        return self.path(consultation_id, kind).exists()

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
        """A decrypted working copy of the audio, deleted when the block ends."""
        with self.workspace() as directory:
            copy = directory / _NAMES[kind]
            self.keyring.decrypt_file(self.path(consultation_id, kind), copy)
            yield copy

    def delete(self, consultation_id: str) -> None:
        shutil.rmtree(self._dir(consultation_id), ignore_errors=True)

    def exists(self, consultation_id: str) -> bool:
        return self._dir(consultation_id).exists()

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
