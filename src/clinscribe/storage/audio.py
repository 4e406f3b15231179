"""Where consultation audio lives: one directory per consultation under the data dir.

<data_dir>/audio/<consultation id>/original    the upload, byte for byte
<data_dir>/audio/<consultation id>/audio.wav   16 kHz mono WAV made by preparing_audio
"""

from __future__ import annotations

import shutil
from pathlib import Path


class AudioStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, consultation_id: str) -> Path:
        if not consultation_id.isalnum():
            raise ValueError("consultation ids are alphanumeric")
        return self.root / consultation_id

    def original(self, consultation_id: str) -> Path:
        return self._dir(consultation_id) / "original"

    def normalized(self, consultation_id: str) -> Path:
        return self._dir(consultation_id) / "audio.wav"

    def adopt_upload(self, consultation_id: str, upload: Path) -> Path:
        """Move a validated upload into place (same filesystem: an atomic rename)."""
        target = self.original(consultation_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        upload.replace(target)
        return target

    def delete(self, consultation_id: str) -> None:
        shutil.rmtree(self._dir(consultation_id), ignore_errors=True)

    def exists(self, consultation_id: str) -> bool:
        return self._dir(consultation_id).exists()
