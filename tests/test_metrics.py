"""Observability against the real service: /metrics moves during a run, a restart after a
crash counts the workflows it resumed, and /readyz refuses while migrations are pending or
the database is unreachable. Run with -s to see the figures scraped."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from alembic import command
from prometheus_client.parser import text_string_to_metric_families

from clinscribe.db.migrate import alembic_config
from tests.fakes.openai_compat import FakeFault, FakeOpenAIServer
from tests.support.audio import SHORT_WAV
from tests.support.postgres import PostgresCluster, postgres_bin
from tests.support.server import ServerProcess, fake_stt_env

pytestmark = pytest.mark.slow

Sample = tuple[str, frozenset[tuple[str, str]]]
STAGES = ("preparing_audio", "transcribing", "writing_note", "verifying_note")


def scrape(server: ServerProcess) -> dict[Sample, float]:
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[Sample, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: dict[Sample, float], name: str, **labels: str) -> float:
    """Sum over every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def series(samples: dict[Sample, float], name: str) -> dict[str, float]:
    return {
        ",".join(f"{k}={v}" for k, v in sorted(labels)): value
        for (n, labels), value in samples.items()
        if n == name
    }


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


def test_metrics_move_while_consultations_are_processed(tmp_path: Path) -> None:
    with FakeOpenAIServer(latency_s=1.0) as fake:
        # The first call is rate limited, the second meets a 503 (both retried), the third is
        # refused for a bad key: that consultation fails with provider_auth_failed.
        fake.faults.extend(
            [FakeFault.rate_limited(0.1), FakeFault.unavailable(), FakeFault.invalid_key()]
        )
        env = fake_stt_env(fake.base_url) | {
            "CLINSCRIBE_WORKER_CONCURRENCY": "1",
            "CLINSCRIBE_RETRY__MAX_ATTEMPTS": "4",
        }
        server = ServerProcess(tmp_path / "svc", env)
        server.start()
        try:
            before = scrape(server)
            assert value(before, "clinscribe_queue_depth", queue="consultations") == 0
            assert value(before, "clinscribe_queue_running", queue="consultations") == 0

            ids = []
            for _ in range(4):
                response = server.upload(SHORT_WAV)
                assert response.status_code == 202, response.text
                ids.append(response.json()["id"])

            # One runs (concurrency 1), the others wait on the queue.
            peak_depth = peak_running = 0.0
            during: dict[Sample, float] = {}

            def queue_is_busy() -> bool:
                nonlocal peak_depth, peak_running, during
                during = scrape(server)
                depth = value(during, "clinscribe_queue_depth", queue="consultations")
                running = value(during, "clinscribe_queue_running", queue="consultations")
                peak_depth, peak_running = max(peak_depth, depth), max(peak_running, running)
                return peak_depth >= 2 and peak_running >= 1

            wait_for(queue_is_busy, 20, "consultations waiting on the queue")
            bodies = [server.wait_terminal(cid, timeout_s=90) for cid in ids]
            statuses = sorted(b["status"] for b in bodies)
            assert statuses == ["completed", "completed", "completed", "failed"], bodies
            failed = next(b for b in bodies if b["status"] == "failed")
            assert failed["error"]["code"] == "provider_auth_failed"

            after: dict[Sample, float] = {}

            def queues_drained() -> bool:
                nonlocal after
                after = scrape(server)
                return (
                    total(after, "clinscribe_queue_depth") == 0
                    and total(after, "clinscribe_queue_running") == 0
                )

            wait_for(queues_drained, 10, "the queues to drain")  # the gauges are cached 1 s
        finally:
            server.kill()

    print("\n/metrics during the run (peaks):", {"depth": peak_depth, "running": peak_running})
    for name in ("clinscribe_queue_depth", "clinscribe_queue_running"):
        print(f"  {name} during: {series(during, name)}  after: {series(after, name)}")
    for name in (
        "clinscribe_stage_duration_seconds_count",
        "clinscribe_stage_duration_seconds_sum",
        "clinscribe_provider_retries_total",
        "clinscribe_provider_errors_total",
        "clinscribe_consultations_finished_total",
        "clinscribe_consultations_accepted_total",
    ):
        print(f"  {name}: before {series(before, name)}  after {series(after, name)}")

    assert peak_depth >= 2 and peak_running == 1
    for stage in STAGES:
        name = "clinscribe_stage_duration_seconds_count"
        # The failed consultation got through preparing_audio only.
        assert value(after, name, stage=stage) - value(before, name, stage=stage) >= 3, stage
    transcribing = value(after, "clinscribe_stage_duration_seconds_sum", stage="transcribing")
    assert transcribing >= 3 * 1.0  # the fake's latency is inside the stage
    retries = "clinscribe_provider_retries_total"
    assert value(after, retries, provider="openai", reason="rate_limited") == 1
    assert value(after, retries, provider="openai", reason="server_error") == 1
    errors = "clinscribe_provider_errors_total"
    assert value(after, errors, provider="openai", code="provider_auth_failed") == 1
    finished = "clinscribe_consultations_finished_total"
    assert value(after, finished, status="completed") == 3
    assert value(after, finished, status="failed") == 1
    assert value(after, "clinscribe_consultations_accepted_total") == 4
    assert value(after, "clinscribe_workflows_recovered_total") == 0


def test_restart_after_a_crash_counts_the_workflows_it_resumed(tmp_path: Path) -> None:
    with FakeOpenAIServer(latency_s=3.0) as fake:
        server = ServerProcess(tmp_path / "svc", fake_stt_env(fake.base_url))
        server.start()
        try:
            first_start = value(scrape(server), "clinscribe_workflows_recovered_total")
            cid = server.upload(SHORT_WAV).json()["id"]
            wait_for(lambda: bool(fake.transcription_requests()), 30, "a transcription call")
            server.kill()  # mid-transcription: the consultation and its piece are PENDING

            server.start()
            restarted = scrape(server)
            recovered = value(restarted, "clinscribe_workflows_recovered_total")
            body = server.wait_terminal(cid, timeout_s=60)
            later = value(scrape(server), "clinscribe_workflows_recovered_total")
        finally:
            server.kill()
    print(
        f"\nclinscribe_workflows_recovered_total: first start {first_start}, "
        f"after SIGKILL + restart {recovered}, once completed {later}"
    )
    assert first_start == 0
    # process_consultation and its transcription piece (a child workflow) were both running.
    assert recovered == 2
    assert later == recovered
    assert body["status"] == "completed"


def test_readiness_fails_while_a_migration_is_pending(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "svc", {"CLINSCRIBE_AUTO_MIGRATE": "false"})
    server.account  # noqa: B018  (migrates to head and provisions)
    command.downgrade(alembic_config(server.database_url), "-1")
    server.start(ready_path="/healthz")
    try:
        response = httpx.get(f"{server.base_url}/readyz", timeout=10)
    finally:
        server.kill()
    print("\n/readyz with a migration pending:", response.status_code, response.json())
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["database"] == "ok"
    assert body["migrations"] == "1 pending"  # only the one revision it is behind


def test_readiness_fails_while_the_database_is_unreachable(tmp_path: Path) -> None:
    bin_dir = postgres_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are missing: .ci/run must install postgresql")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    cluster = PostgresCluster(bin_dir)  # our own: this test stops it
    cluster.start()
    running = True
    try:
        env = {"CLINSCRIBE_DATABASE_URL": cluster.url(cluster.create_database("app"))}
        server = ServerProcess(tmp_path / "svc", env)  # DBOS stays on SQLite
        server.start()
        try:
            ready = httpx.get(f"{server.base_url}/readyz", timeout=10)
            cluster.stop()
            running = False
            started = time.monotonic()
            refused = httpx.get(f"{server.base_url}/readyz", timeout=30)
            answered_in = time.monotonic() - started
        finally:
            server.kill()
    finally:
        if running:
            cluster.stop()
    print(f"\n/readyz with the database up: {ready.status_code} {ready.json()}")
    print(f"/readyz with it stopped: {refused.status_code} {refused.json()} in {answered_in:.2f}s")
    assert ready.status_code == 200
    assert refused.status_code == 503
    assert refused.json()["status"] == "not_ready"
    assert refused.json()["database"] == "unreachable"
    assert answered_in < 10
