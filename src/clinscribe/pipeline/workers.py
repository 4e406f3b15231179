"""Which process runs which workflows, and taking over the work of workers that died.

DBOS recovers a process's unfinished workflows only when a process with the same executor id
starts again. With several workers on Postgres, a machine that dies for good would leave its
consultations "processing" forever. So every worker process takes a *seat*:

- Its executor id is ``CLINSCRIBE_EXECUTOR_ID``, or the first free ``<hostname>-<n>``. An id
  is free when no row holds it, its holder stopped, its holder has been silent longer than
  the lease (``CLINSCRIBE_WORKER_LEASE_S``), or its holder was a process of this machine (same
  kernel boot and pid namespace) that no longer exists. A worker restarted on the same
  machine therefore gets its old id back and DBOS recovers its workflows at once.
- It beats every lease/6 from a thread, so a busy event loop cannot make it look dead.
- It fences itself: when it cannot beat for half the lease, or finds its id taken by another
  process, it exits at once (status 75) instead of running work another worker will resume.
- Every 5 s (lease/4 when shorter) it takes over dead workers: under a row lock, it resumes
  each PENDING workflow of the dead executor on that workflow's own queue (DBOS's public
  resume API), then deletes the row. A resumed workflow skips its finished steps; only the
  step that was running when the worker died runs again.

With SQLite there is exactly one executor, ``local`` by default, and a file lock next to the
workflow database refuses a second one (two executors on one SQLite file would "recover"
each other's running workflows and pay providers twice).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

import sqlalchemy as sa
import structlog
from dbos import DBOSClient, WorkflowStatusString
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from clinscribe import metrics
from clinscribe.config import Settings
from clinscribe.db.engine import create_sync_engine
from clinscribe.errors import ConfigurationError
from clinscribe.models import WorkerHeartbeat

log = structlog.get_logger("clinscribe.workers")

LOST_LEASE_EXIT_CODE = 75  # EX_TEMPFAIL: a supervisor should start the worker again
MAX_SLOTS_PER_HOST = 64
_heartbeats = cast(sa.Table, WorkerHeartbeat.__table__)


def _now() -> datetime:
    return datetime.now(UTC)


def _pid_namespace() -> str:
    """This kernel boot and pid namespace: two processes with the same value see the same
    pids (a hostname alone does not say so: containers may share one). "" if unknown."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot_id}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@dataclass(frozen=True)
class Lease:
    seconds: float

    @property
    def beat_every_s(self) -> float:
        return max(0.5, self.seconds / 6)

    @property
    def check_every_s(self) -> float:
        # Often enough that a released seat (a clean stop) is taken over within seconds.
        return min(5.0, max(1.0, self.seconds / 4))


class WorkerRegistry:
    """The ``worker_heartbeats`` rows, seen from one worker process (synchronous: it is used
    from the heartbeat thread and, through ``asyncio.to_thread``, from the take-over loop)."""

    def __init__(
        self,
        database_url: str,
        *,
        lease: Lease,
        application_version: str,
        hostname: str | None = None,
    ) -> None:
        self.engine = create_sync_engine(database_url)
        self.lease = lease
        self.application_version = application_version
        self.hostname = hostname or socket.gethostname()
        self.pid = os.getpid()
        self.pid_namespace = _pid_namespace()
        self.instance = uuid.uuid4().hex
        self.executor_id = ""

    def _holder_gone(self, row: Any, now: datetime) -> bool:
        if row.stopped_at is not None:
            return True
        if row.beat_at < now - timedelta(seconds=self.lease.seconds):
            return True
        same_pids = bool(self.pid_namespace) and row.pid_namespace == self.pid_namespace
        return same_pids and not _pid_alive(row.pid)

    def claim(self, requested: str | None) -> str:
        """Take ``requested``, or the first free ``<hostname>-<n>``; returns the id taken."""
        if requested:
            candidates = [requested]
            # The previous holder may be a process that died on another machine: wait out
            # its lease once rather than refuse at once.
            patience_s = self.lease.seconds + 2 * self.lease.beat_every_s
        else:
            candidates = [f"{self.hostname}-{n}" for n in range(1, MAX_SLOTS_PER_HOST + 1)]
            patience_s = 0.0
        deadline = time.monotonic() + patience_s
        while True:
            for candidate in candidates:
                if self._try_claim(candidate):
                    self.executor_id = candidate
                    return candidate
            if time.monotonic() >= deadline:
                break
            time.sleep(1.0)
        if requested:
            raise ConfigurationError(
                f"The workflow executor id {requested!r} (CLINSCRIBE_EXECUTOR_ID) is held by "
                "another running worker. Give every worker its own id, or leave "
                "CLINSCRIBE_EXECUTOR_ID unset to get one automatically."
            )
        raise ConfigurationError(
            f"All {MAX_SLOTS_PER_HOST} executor ids of host {self.hostname!r} are held by "
            "running workers. Stop some, or give this one CLINSCRIBE_EXECUTOR_ID."
        )

    def _try_claim(self, executor_id: str) -> bool:
        now = _now()
        values = {
            "instance": self.instance,
            "hostname": self.hostname,
            "pid_namespace": self.pid_namespace,
            "pid": self.pid,
            "application_version": self.application_version,
            "started_at": now,
            "beat_at": now,
            "stopped_at": None,
        }
        where = _heartbeats.c.executor_id == executor_id
        try:
            with self.engine.begin() as conn:
                row = conn.execute(sa.select(_heartbeats).where(where).with_for_update()).first()
                if row is None:
                    conn.execute(sa.insert(_heartbeats).values(executor_id=executor_id, **values))
                elif self._holder_gone(row, now):
                    conn.execute(sa.update(_heartbeats).where(where).values(**values))
                else:
                    return False
        except IntegrityError:  # another process inserted the same id first
            return False
        return True

    def _mine(self) -> Any:
        return sa.and_(
            _heartbeats.c.executor_id == self.executor_id,
            _heartbeats.c.instance == self.instance,
            _heartbeats.c.stopped_at.is_(None),
        )

    def beat(self) -> bool:
        """Refresh this worker's row; False when another process has taken its id."""
        with self.engine.begin() as conn:
            result = conn.execute(sa.update(_heartbeats).where(self._mine()).values(beat_at=_now()))
        return result.rowcount == 1

    def release(self) -> None:
        """Mark this worker stopped: live workers take over what it left at once."""
        with self.engine.begin() as conn:
            conn.execute(sa.update(_heartbeats).where(self._mine()).values(stopped_at=_now()))

    def dead_executors(self) -> list[str]:
        now = _now()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(_heartbeats).where(_heartbeats.c.executor_id != self.executor_id)
            ).all()
        return [row.executor_id for row in rows if self._holder_gone(row, now)]

    def take_over(self, executor_id: str, resume: Callable[[str], int]) -> int | None:
        """Resume a dead executor's workflows and forget it; None when it is not ours to take
        (another worker is taking it over, or its holder came back)."""
        where = _heartbeats.c.executor_id == executor_id
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(_heartbeats).where(where).with_for_update(skip_locked=True)
            ).first()
            if row is None or not self._holder_gone(row, _now()):
                return None
            # The row stays locked meanwhile: a process claiming this id waits, and then
            # finds nothing left for DBOS to recover.
            resumed = resume(executor_id)
            conn.execute(sa.delete(_heartbeats).where(where))
        return resumed

    def dispose(self) -> None:
        self.engine.dispose()


def resume_pending(client: DBOSClient, executor_id: str) -> int:
    """Put every PENDING workflow of ``executor_id`` back on its own queue; returns how many."""
    pending = client.list_workflows(
        status=WorkflowStatusString.PENDING.value,
        executor_id=executor_id,
        load_input=False,
        load_output=False,
    )
    for workflow in pending:
        client.resume_workflow(workflow.workflow_id, queue_name=workflow.queue_name)
    return len(pending)


def take_over_dead_workers(registry: WorkerRegistry, client: DBOSClient) -> int:
    total = 0
    for executor_id in registry.dead_executors():
        resumed = registry.take_over(executor_id, lambda dead: resume_pending(client, dead))
        if resumed is None:
            continue
        if resumed:
            log.warning("took over a stopped or silent worker's workflows",
                        executor_id=executor_id, workflows=resumed)  # fmt: skip
            metrics.WORKFLOWS_RECOVERED.inc(resumed)
        total += resumed
    return total


def _exit_now(reason: str) -> None:
    log.error("this worker lost its lease and exits now; its workflows resume elsewhere",
              reason=reason, exit_code=LOST_LEASE_EXIT_CODE)  # fmt: skip
    sys.stderr.flush()
    os._exit(LOST_LEASE_EXIT_CODE)


class _Heartbeat(threading.Thread):
    def __init__(self, registry: WorkerRegistry, on_lost: Callable[[str], None]) -> None:
        super().__init__(name="clinscribe-heartbeat", daemon=True)
        self.registry = registry
        self.on_lost = on_lost
        self.stopping = threading.Event()

    def run(self) -> None:
        last_ok = time.monotonic()
        lease = self.registry.lease
        while not self.stopping.wait(lease.beat_every_s):
            try:
                if not self.registry.beat():
                    self.on_lost("another process holds this worker's executor id")
                    return
                last_ok = time.monotonic()
            except Exception as error:
                log.warning("heartbeat failed", error_type=type(error).__name__)
                if time.monotonic() - last_ok > lease.seconds / 2:
                    self.on_lost("no heartbeat reached the database for half the lease")
                    return


class _SqliteLock:
    """An exclusive lock on ``<workflow database>.lock``, held while the process runs."""

    def __init__(self, database_path: Path) -> None:
        self.path = database_path.with_name(database_path.name + ".lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ConfigurationError(
                "Another clinscribe process already runs workflows on this SQLite database "
                f"({self.path.parent}). Run one `clinscribe serve` (it includes a worker), or "
                "`clinscribe serve --no-worker` beside one `clinscribe worker`; to run several "
                "workers, move both databases to PostgreSQL."
            ) from None
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def check_sqlite_seat_free(settings: Settings) -> None:
    """Fail now, with the message, when another process runs workflows on this SQLite
    database (the seat itself is taken again when the worker starts)."""
    url = make_url(settings.dbos_database_url)
    if url.get_backend_name() == "sqlite":
        lock = _SqliteLock(Path(url.database or "workflows.sqlite3").resolve())
        lock.acquire()
        lock.release()


class Seat:
    """This process's place among the workers: its executor id, and either the heartbeat
    row (Postgres) or the file lock (SQLite) that keeps it exclusive."""

    def __init__(self, executor_id: str, *, registry: WorkerRegistry | None = None,
                 lock: _SqliteLock | None = None) -> None:  # fmt: skip
        self.executor_id = executor_id
        self.registry = registry
        self._lock = lock
        self._heartbeat: _Heartbeat | None = None

    @classmethod
    def take(cls, settings: Settings) -> Seat:
        """Claim an executor id for this process (blocking; call from a thread)."""
        url = make_url(settings.dbos_database_url)
        if url.get_backend_name() == "sqlite":
            lock = _SqliteLock(Path(url.database or "workflows.sqlite3").resolve())
            lock.acquire()
            return cls(settings.executor_id or "local", lock=lock)
        registry = WorkerRegistry(
            settings.app_database_url,
            lease=Lease(settings.worker_lease_s),
            application_version=settings.application_version,
        )
        try:
            executor_id = registry.claim(settings.executor_id)
        except BaseException:
            registry.dispose()
            raise
        log.info("worker seat taken", executor_id=executor_id)
        return cls(executor_id, registry=registry)

    def start_heartbeat(self, on_lost: Callable[[str], None] = _exit_now) -> None:
        if self.registry is not None:
            self._heartbeat = _Heartbeat(self.registry, on_lost)
            self._heartbeat.start()

    async def take_over_forever(self, client: DBOSClient) -> None:
        """Resume the workflows of workers that stopped or went silent (Postgres only)."""
        registry = self.registry
        if registry is None:
            return
        while True:
            try:
                await asyncio.to_thread(take_over_dead_workers, registry, client)
            except Exception as error:  # keep the loop alive; the next pass retries
                log.error("take-over pass failed", error_type=type(error).__name__)
            await asyncio.sleep(registry.lease.check_every_s)

    def release(self) -> None:
        """Give the seat up (after the workflow engine has stopped)."""
        if self._heartbeat is not None:
            self._heartbeat.stopping.set()
            self._heartbeat.join(timeout=10)
        if self.registry is not None:
            try:
                self.registry.release()
            except Exception as error:  # then the lease runs out instead
                log.warning("could not release the worker seat", error_type=type(error).__name__)
            self.registry.dispose()
        if self._lock is not None:
            self._lock.release()
