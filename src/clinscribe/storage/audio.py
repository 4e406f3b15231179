"""Where consultation audio lives: one directory per consultation, encrypted at rest.

<data_dir>/audio/<consultation id>/original    the upload, byte for byte (encrypted)
<data_dir>/audio/<consultation id>/audio.wav   16 kHz mono WAV made by preparing_audio (encrypted)
<data_dir>/work/<random>/                      plaintext working copies, only while a step runs

Decoders and speech-to-text engines want a file path, so a step that needs the audio gets a
decrypted working copy (:meth:`AudioStore.plaintext`) that is removed when the step ends, and
at start for copies left by a process that died (older than an hour).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal

from clinscribe.security.crypto import Keyring

AudioKind = Literal["original", "normalized"]
_NAMES: dict[AudioKind, str] = {"original": "original", "normalized": "audio.wav"}
_ABANDONED_AFTER_S = 3600


class AudioStore:
    def __init__(self, root: Path, work_root: Path, keyring: Keyring) -> None:
        self.root = root
        self.work_root = work_root
        self.keyring = keyring

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
        self.work_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory = Path(tempfile.mkdtemp(dir=self.work_root))
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
        """Remove working copies left by a process that died mid-step."""
        if not self.work_root.exists():
            return 0
        cutoff = time.time() - _ABANDONED_AFTER_S
        removed = 0
        for entry in self.work_root.iterdir():
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed
