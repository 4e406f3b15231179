"""The process-wide dependencies that pipeline steps use.

DBOS steps are module-level functions, so they reach settings, the database and providers
through this one object, set when the process starts (``clinscribe serve`` or ``worker``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clinscribe.config import Settings
from clinscribe.db.engine import Database
from clinscribe.notes.model import NoteWriter
from clinscribe.providers import registry
from clinscribe.providers.stt.base import SpeechToText
from clinscribe.storage.audio import AudioStore


@dataclass
class Runtime:
    settings: Settings
    db: Database
    audio: AudioStore
    _stt: SpeechToText | None = field(default=None, repr=False)
    _note_writer: NoteWriter | None = field(default=None, repr=False)

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        return cls(
            settings=settings,
            db=Database(settings.app_database_url),
            audio=AudioStore(settings.audio_dir),
        )

    @property
    def stt(self) -> SpeechToText:
        # Built on first use: a misconfigured provider fails the consultation with a clear
        # message instead of keeping the whole service from starting.
        if self._stt is None:
            self._stt = registry.build_speech_to_text(self.settings)
        return self._stt

    @property
    def note_writer(self) -> NoteWriter:
        if self._note_writer is None:
            self._note_writer = registry.build_note_writer(self.settings)
        return self._note_writer

    async def aclose(self) -> None:
        if self._stt is not None:
            await self._stt.aclose()
        await self.db.dispose()


_current: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    global _current
    _current = runtime


def get_runtime() -> Runtime:
    if _current is None:
        raise RuntimeError("the clinscribe runtime is not started in this process")
    return _current
