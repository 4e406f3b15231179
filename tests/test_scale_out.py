"""Scaling out on PostgreSQL: an API-only process and several workers, a worker that dies for
good, a worker stopped with SIGTERM, and the one-executor rule of SQLite.

Run with -s to see the figures (bench/scale_out.py runs the 40-consultation version)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fakes.openai_compat import FakeOpenAIServer
from tests.support.audio import SHORT_WAV
from tests.support.postgres import PostgresCluster
from tests.support.scale_out import Deployment, deployment, distinct_clips
from tests.support.server import ServerProcess, fake_stt_env

pytestmark = pytest.mark.slow

LEASE_S = 6.0
FAST_LEASE = {"CLINSCRIBE_WORKER_LEASE_S": str(LEASE_S)}


def _wait_until_busy(found: Deployment, executor_id: str, timeout_s: float = 60) -> None:
    """Until ``executor_id`` runs a consultation whose transcription request is in flight."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found.transcribing_on(executor_id):
            return
        time.sleep(0.05)
    raise AssertionError(f"{executor_id} never started a transcription")


def _figure(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} missing from /metrics")


def _assert_no_finished_step_ran_twice(
    found: Deployment, stopped_at: float, finished_then: set[str]
) -> int:
    """Every consultation's audio reached the provider, and none whose transcription step had
    finished (its output checkpointed) when the worker died or exited was sent again: only
    steps still running then ran again. Returns how many requests were repeats."""
    by_clip = found.transcriptions_by_clip()
    assert set(by_clip) == set(found.uploaded.values())
    sent_again = set(found.sent_after(stopped_at)) & finished_then
    assert not sent_again, f"finished transcriptions sent again: {sent_again}"
    return sum(len(requests) - 1 for requests in by_clip.values())


def test_api_only_process_and_two_workers_share_the_work_and_survive_a_dead_worker(
    tmp_path: Path, postgres: PostgresCluster
) -> None:
    count = 12
    with (
        FakeOpenAIServer(latency_s=1.5) as fake,
        deployment(tmp_path / "d", fake, postgres=postgres, workers=2, env=FAST_LEASE) as found,
    ):
        first, second = found.workers
        executors = {found.executor_of(first), found.executor_of(second)}
        assert len(executors) == 2, "every worker has its own executor id"
        victim = found.executor_of(second)
        ids = found.upload(distinct_clips(count))
        _wait_until_busy(found, victim)
        second.kill()  # for good: it never comes back
        killed_at, finished_then = time.monotonic(), found.transcribed()
        statuses = found.wait_all(ids, timeout_s=LEASE_S + 90)
        done_at = time.monotonic()
        assert set(statuses.values()) == {"completed"}, statuses
        interrupted = _assert_no_finished_step_ran_twice(found, killed_at, finished_then)
        by_executor = found.workflows_by_executor(ids)
        # The survivor finished what the dead worker had started: nothing is left on it.
        assert found.pending_on(victim) == 0
        assert "took over a stopped or silent worker's workflows" in first.log_text()
        # The survivor's own metrics show the work and the take-over.
        figures = httpx.get(f"{first.base_url}/metrics", timeout=10).text
        assert _figure(figures, 'clinscribe_consultations_finished_total{status="completed"}') > 0
        assert _figure(figures, "clinscribe_workflows_recovered_total") >= 1
        print(
            f"\n{count} consultations, worker {victim} SIGKILLed mid-transcription: all "
            f"completed {done_at - killed_at:.1f} s after the kill (lease {LEASE_S:.0f} s); "
            f"{interrupted} interrupted transcription(s) ran again, 0 finished ones; "
            f"final executors {dict(by_executor)}"
        )
        # The API process took no work itself and reports the engine ready.
        with found.api.client() as client:
            assert client.get("/readyz").json()["workflow_engine"] == "ok"
            assert 'clinscribe_queue_depth{queue="consultations"}' in client.get("/metrics").text
        assert "worker started" not in found.api.log_text()


def test_sigterm_lets_running_steps_finish_and_a_live_worker_takes_the_rest_at_once(
    tmp_path: Path, postgres: PostgresCluster
) -> None:
    grace_s = 2.0  # shorter than a transcription: some are cut off and must resume
    env = {"CLINSCRIBE_WORKER_LEASE_S": "60", "CLINSCRIBE_SHUTDOWN_GRACE_S": str(grace_s)}
    with (
        FakeOpenAIServer(latency_s=10.0) as fake,
        deployment(tmp_path / "d", fake, postgres=postgres, workers=2, env=env) as found,
    ):
        first, second = found.workers
        stopping = found.executor_of(first)
        ids = found.upload(distinct_clips(4))
        _wait_until_busy(found, stopping)
        started = time.monotonic()
        code = first.stop(timeout_s=30)
        stopped_at, finished_then = time.monotonic(), found.transcribed()
        exited_after = stopped_at - started
        assert code == 0, first.log_text()[-2000:]
        assert exited_after < grace_s + 2, exited_after  # the signal, interpreter start-up
        # The lease is 60 s: only the released seat lets the other worker take over this soon.
        statuses = found.wait_all(ids, timeout_s=45)
        assert set(statuses.values()) == {"completed"}, statuses
        assert time.monotonic() - stopped_at < 45
        interrupted = _assert_no_finished_step_ran_twice(found, stopped_at, finished_then)
        assert interrupted >= 1  # the test did cut a transcription off
        assert "took over a stopped or silent worker's workflows" in second.log_text()
        print(
            f"\nSIGTERM: worker exited after {exited_after:.1f} s (grace {grace_s:.0f} s), "
            f"{interrupted} transcription(s) cut off; the other worker finished all "
            f"{len(ids)} {time.monotonic() - stopped_at:.1f} s after the exit"
        )


def test_an_executor_id_held_by_a_live_worker_is_refused(
    tmp_path: Path, postgres: PostgresCluster
) -> None:
    env = FAST_LEASE | {"CLINSCRIBE_EXECUTOR_ID": "worker-a"}
    with (
        FakeOpenAIServer() as fake,
        deployment(tmp_path / "d", fake, postgres=postgres, workers=1, env=env) as found,
    ):
        assert found.executor_of(found.workers[0]) == "worker-a"
        twin = ServerProcess(found.api.data_dir, found.api.extra_env, args=("worker",))
        twin.encryption_key = found.api.encryption_key
        with pytest.raises(RuntimeError, match="exited early") as failure:
            twin.start(timeout_s=LEASE_S + 30)
        assert "'worker-a' (CLINSCRIBE_EXECUTOR_ID) is held by another running worker" in str(
            failure.value
        )
        # The holder keeps its seat and works on.
        cid = found.upload(distinct_clips(1))[0]
        assert found.wait_all([cid], timeout_s=60)[cid] == "completed"


def test_a_worker_restarted_on_the_same_host_gets_its_executor_id_back_at_once(
    tmp_path: Path, postgres: PostgresCluster
) -> None:
    env = {"CLINSCRIBE_WORKER_LEASE_S": "600"}  # recovery cannot come from a take-over
    with (
        FakeOpenAIServer(latency_s=1.5) as fake,
        deployment(tmp_path / "d", fake, postgres=postgres, workers=1, env=env) as found,
    ):
        worker = found.workers[0]
        executor = found.executor_of(worker)
        ids = found.upload(distinct_clips(3))
        _wait_until_busy(found, executor)
        worker.kill()
        killed_at, finished_then = time.monotonic(), found.transcribed()
        worker.start()
        assert found.executor_of(worker) == executor  # its dead predecessor's pid is gone
        statuses = found.wait_all(ids, timeout_s=60)
        assert set(statuses.values()) == {"completed"}, statuses
        _assert_no_finished_step_ran_twice(found, killed_at, finished_then)


@pytest.mark.sqlite_only
def test_sqlite_refuses_a_second_process_running_workflows(tmp_path: Path) -> None:
    with FakeOpenAIServer() as fake:
        server = ServerProcess(tmp_path / "svc", fake_stt_env(fake.base_url))
        server.start()
        try:
            env = server._env()
            for command in ("worker", "serve"):
                result = subprocess.run(
                    [sys.executable, "-m", "clinscribe.cli", command],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert result.returncode == 2, (command, result.stderr[-2000:])
                assert "Another clinscribe process already runs workflows" in result.stderr
                assert "move both databases to PostgreSQL" in result.stderr
                assert "Traceback" not in result.stderr
            # The first process is unaffected.
            cid = server.upload(SHORT_WAV).json()["id"]
            assert server.wait_terminal(cid)["status"] == "completed"
        finally:
            server.kill()


@pytest.mark.sqlite_only
def test_on_sqlite_an_api_only_process_queues_for_one_worker(tmp_path: Path) -> None:
    with (
        FakeOpenAIServer() as fake,
        deployment(tmp_path / "d", fake, postgres=None, workers=1) as found,
    ):
        ids = found.upload(distinct_clips(2))
        assert set(found.wait_all(ids, timeout_s=60).values()) == {"completed"}
        assert "worker started" not in found.api.log_text()
        found.workers[0].process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        assert found.workers[0].process.wait(timeout=30) == 0  # type: ignore[union-attr]
