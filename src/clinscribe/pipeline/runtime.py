"""The process-wide dependencies that pipeline steps and endpoints use.

DBOS steps are module-level functions, so they reach settings, the database and providers
through this one object, set when the process starts (``clinscribe serve`` or ``worker``).

DBOS runs workflow steps on its own event loop (in a background thread) while the API runs on
uvicorn's. Async database pools and HTTP clients belong to the loop that created them, so each
loop gets its own set, created on first use and closed on that loop at shutdown.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from clinscribe.config import Settings
from clinscribe.db.engine import Database
from clinscribe.notes.model import NoteWriter
from clinscribe.notes.templates import TemplateLibrary
from clinscribe.providers import registry
from clinscribe.providers.stt.base import SpeechToText
from clinscribe.security.keys import keyring_from_settings
from clinscribe.storage.audio import AudioStore


@dataclass
class _LoopResources:
    db: Database
    stt: SpeechToText | None = None

    async def aclose(self) -> None:
        if self.stt is not None:
            await self.stt.aclose()
        await self.db.dispose()


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keyring = keyring_from_settings(settings)
        self.audio = AudioStore.from_settings(settings, self.keyring)
        self.templates = TemplateLibrary.from_directory(settings.resolved_templates_dir)
        self.note_engine_ready = False  # dictionaries loaded (see notes/warmup.py)
        self._loops: dict[asyncio.AbstractEventLoop, _LoopResources] = {}
        self._lock = threading.Lock()
        self._note_writer: NoteWriter | None = None
        self.running_workflows: set[asyncio.Task[object]] = set()
        try:
            self._home_loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._home_loop = None

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        return cls(settings)

    def _here(self) -> _LoopResources:
        loop = asyncio.get_running_loop()
        with self._lock:
            resources = self._loops.get(loop)
            if resources is None:
                # Only the home loop is sure to dispose its pool at shutdown.
                pooled = loop is self._home_loop
                resources = _LoopResources(
                    db=Database(self.settings.app_database_url, pooled=pooled)
                )
                self._loops[loop] = resources
            return resources

    @property
    def db(self) -> Database:
        return self._here().db

    @property
    def stt(self) -> SpeechToText:
        # Built on first use: a misconfigured provider fails the consultation with a clear
        # message instead of keeping the whole service from starting.
        resources = self._here()
        if resources.stt is None:
            resources.stt = registry.build_speech_to_text(self.settings)
        return resources.stt

    @property
    def note_writer(self) -> NoteWriter:
        if self._note_writer is None:
            self._note_writer = registry.build_note_writer(self.settings)
        return self._note_writer

    def track_current_task(self) -> None:
        """Register the running workflow's task, so a shutdown can cancel it after the grace."""
        task = asyncio.current_task()
        if task is not None:
            self.running_workflows.add(task)
            task.add_done_callback(self.running_workflows.discard)

    async def cancel_running_workflows(self, timeout_s: float = 10.0) -> int:
        """Cancel workflows still running after the shutdown grace period; they resume at
        their first unfinished step on the next start. Returns how many were cancelled."""
        tasks = [t for t in self.running_workflows if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        return len(tasks)

    async def aclose(self) -> None:
        """Close this loop's resources, after DBOS has stopped. Resources of other loops
        (none when DBOS runs on ours) are dropped: they use no pool, nothing lingers."""
        with self._lock:
            mine = self._loops.pop(asyncio.get_running_loop(), None)
            self._loops.clear()
        if mine is not None:
            await mine.aclose()
        self.audio.close()


_current: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    global _current
    _current = runtime


def get_runtime() -> Runtime:
    if _current is None:
        raise RuntimeError("the clinscribe runtime is not started in this process")
    return _current
