"""A scaled-out deployment on one machine, for tests and bench/scale_out.py.

PostgreSQL for both databases, one API-only process (``serve --no-worker``) and N
``clinscribe worker`` processes sharing one data directory (the local audio store), all with
one encryption key, in front of a fake OpenAI-compatible STT server. Or, for comparison, the
single ``clinscribe serve`` process on SQLite.
"""

from __future__ import annotations

import hashlib
import io
import time
import wave
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.fakes.openai_compat import FakeOpenAIServer, RecordedRequest
from tests.support.audio import SHORT_WAV
from tests.support.postgres import PostgresCluster
from tests.support.server import TERMINAL, ServerProcess, fake_stt_env


def distinct_clips(count: int, source: Path = SHORT_WAV) -> list[bytes]:
    """``count`` copies of ``source`` that differ in their last sample, so the fake provider
    can tell which consultation each transcription request belongs to (by its sha256)."""
    with wave.open(str(source), "rb") as src:
        params = src.getparams()
        frames = bytearray(src.readframes(src.getnframes()))
    clips = []
    for index in range(count):
        frames[-2:] = (index + 1).to_bytes(2, "little", signed=True)
        out = io.BytesIO()
        with wave.open(out, "wb") as dst:
            dst.setparams(params)
            dst.writeframes(bytes(frames))
        clips.append(out.getvalue())
    return clips


@dataclass
class Deployment:
    api: ServerProcess
    workers: list[ServerProcess]
    fake: FakeOpenAIServer
    app_database: str | None = None  # libpq URL (Postgres only)
    system_database: str | None = None
    uploaded: dict[str, str] = field(default_factory=dict)  # consultation id -> clip sha256

    def upload(self, clips: list[bytes]) -> list[str]:
        ids = []
        with self.api.client() as client:
            for clip in clips:
                response = client.post(
                    "/api/consultations", files={"audio": ("visit.wav", clip, "audio/wav")}
                )
                assert response.status_code == 202, response.text
                ids.append(response.json()["id"])
                self.uploaded[ids[-1]] = hashlib.sha256(clip).hexdigest()
        return ids

    def statuses(self, ids: list[str]) -> dict[str, str]:
        """The status of each of ``ids``, read through the list endpoint (a page of 100 per
        request keeps polling far below the per-key rate limit)."""
        found: dict[str, str] = {}
        cursor: str | None = None
        with self.api.client() as client:
            for _ in range(1000):
                params = {"limit": "100"} | ({"cursor": cursor} if cursor else {})
                response = client.get("/api/consultations", params=params)
                response.raise_for_status()
                page = response.json()
                found |= {item["id"]: item["status"] for item in page["items"]}
                cursor = page["next_cursor"]
                if not cursor:
                    break
        return {cid: found.get(cid, "missing") for cid in ids}

    def wait_all(self, ids: list[str], timeout_s: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        statuses = self.statuses(ids)
        while time.monotonic() < deadline:
            if all(status in TERMINAL for status in statuses.values()):
                break
            time.sleep(0.25)
            statuses = self.statuses(ids)
        return statuses

    def executor_of(self, worker: ServerProcess) -> str:
        """The executor id a worker process took (from the heartbeats table)."""
        assert self.app_database is not None and worker.process is not None
        with psycopg.connect(self.app_database) as db:
            row = db.execute(
                "select executor_id from worker_heartbeats where pid = %s", (worker.process.pid,)
            ).fetchone()
        assert row is not None, "the worker holds no seat"
        return str(row[0])

    def workflows_by_executor(self, ids: list[str]) -> Counter[str]:
        """Which executor ran (or runs) each consultation's workflow."""
        assert self.system_database is not None
        with psycopg.connect(self.system_database) as db:
            rows = db.execute(
                "select executor_id from dbos.workflow_status where workflow_uuid = any(%s)",
                (ids,),
            ).fetchall()
        return Counter(str(executor) for (executor,) in rows)

    def transcribing_on(self, executor_id: str) -> list[str]:
        """Consultations whose transcription request ``executor_id`` has in flight now (the
        request is made by a piece's child workflow, which any worker may run)."""
        now = time.monotonic()
        by_clip = {clip: cid for cid, clip in self.uploaded.items()}
        asked = {by_clip.get(r.file_sha256 or "") for r in in_flight_at(
            self.fake.transcription_requests(), now)}  # fmt: skip
        assert self.system_database is not None
        with psycopg.connect(self.system_database) as db:
            rows = db.execute(
                "select split_part(workflow_uuid, '-chunk-', 1) from dbos.workflow_status "
                "where executor_id = %s and status = 'PENDING' and name = 'transcribe_chunk' "
                "and split_part(workflow_uuid, '-chunk-', 1) = any(%s)",
                (executor_id, [cid for cid in asked if cid]),
            ).fetchall()
        return [str(cid) for (cid,) in rows]

    def transcribed(self) -> set[str]:
        """Consultations whose transcription step has finished: its output is checkpointed."""
        assert self.system_database is not None
        with psycopg.connect(self.system_database) as db:
            rows = db.execute(
                "select distinct split_part(workflow_uuid, '-chunk-', 1) "
                "from dbos.operation_outputs where function_name = 'transcribing_chunk' "
                "and error is null and completed_at_epoch_ms is not null"
            ).fetchall()
        return {str(cid) for (cid,) in rows}

    def sent_after(self, moment: float) -> dict[str, int]:
        """Transcription requests per consultation that reached the provider after
        ``moment`` (monotonic)."""
        by_clip = {clip: cid for cid, clip in self.uploaded.items()}
        counts: dict[str, int] = {}
        for request in self.fake.transcription_requests():
            cid = by_clip.get(request.file_sha256 or "")
            if cid is not None and request.received_at > moment:
                counts[cid] = counts.get(cid, 0) + 1
        return counts

    def pending_on(self, executor_id: str) -> int:
        assert self.system_database is not None
        with psycopg.connect(self.system_database) as db:
            row = db.execute(
                "select count(*) from dbos.workflow_status where executor_id = %s "
                "and status = 'PENDING' and name = 'process_consultation'",
                (executor_id,),
            ).fetchone()
        return int(row[0]) if row else 0

    def transcriptions_by_clip(self) -> dict[str, list[RecordedRequest]]:
        by_clip: dict[str, list[RecordedRequest]] = {}
        for request in self.fake.transcription_requests():
            by_clip.setdefault(request.file_sha256 or "?", []).append(request)
        return by_clip

    def kill_all(self) -> None:
        for process in [*self.workers, self.api]:
            process.kill()


def in_flight_at(requests: list[RecordedRequest], moment: float) -> list[RecordedRequest]:
    """Requests the provider had received but not answered at ``moment`` (monotonic)."""
    return [
        r for r in requests if r.received_at < moment and (r.finished_at or moment + 1) > moment
    ]


@contextmanager
def deployment(
    data_dir: Path,
    fake: FakeOpenAIServer,
    *,
    postgres: PostgresCluster | None,
    workers: int,
    env: dict[str, str] | None = None,
) -> Iterator[Deployment]:
    """Start the API (and ``workers`` workers on Postgres); everything is killed at the end."""
    settings = fake_stt_env(fake.base_url) | (env or {})
    app_database = system_database = None
    if postgres is not None:
        app_name, sys_name = postgres.create_database("app"), postgres.create_database("sys")
        app_database = postgres.url(app_name, driver=False)
        system_database = postgres.url(sys_name, driver=False)
        settings |= {
            "CLINSCRIBE_DATABASE_URL": postgres.url(app_name),
            "CLINSCRIBE_SYSTEM_DATABASE_URL": system_database,
        }
    api_args = ("serve", "--no-worker") if workers else ("serve",)
    api = ServerProcess(data_dir, settings, args=api_args)
    worker_processes = [ServerProcess(data_dir, settings, args=("worker",)) for _ in range(workers)]
    for worker in worker_processes:
        worker.encryption_key = api.encryption_key
        worker.args = ("worker", "--metrics-port", str(worker.port))  # at worker.base_url
    found = Deployment(api, worker_processes, fake, app_database, system_database)
    try:
        api.start()
        for worker in worker_processes:
            worker.start()
        yield found
    finally:
        found.kill_all()
