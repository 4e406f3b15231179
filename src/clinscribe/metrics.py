"""Prometheus metrics. Labels carry stage/provider/code/queue names only, never PHI or ids.

Counters and histograms are updated where things happen. The queue gauges are read from the
DBOS system database when ``/metrics`` is scraped (at most once a second, whatever the
scrape rate), and only in processes that run the workflow engine.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter as Tally
from collections.abc import Iterable
from pathlib import Path

import structlog
from dbos import DBOSClient, WorkflowStatusString
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.engine import make_url

from clinscribe.errors import ProviderTransientError

log = structlog.get_logger("clinscribe.metrics")

STAGE_SECONDS = Histogram(
    "clinscribe_stage_duration_seconds",
    "Time spent in each pipeline stage",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
CONSULTATIONS_FINISHED = Counter(
    "clinscribe_consultations_finished_total",
    "Consultations reaching a terminal status",
    ["status"],
)
CONSULTATIONS_ACCEPTED = Counter(
    "clinscribe_consultations_accepted_total", "Uploads accepted and queued"
)
UPLOADS_REJECTED = Counter(
    "clinscribe_uploads_rejected_total", "Uploads refused with a 4xx", ["code"]
)
PROVIDER_ERRORS = Counter(
    "clinscribe_provider_errors_total",
    "Speech-to-text calls that failed their step (after retries), by error code",
    ["provider", "code"],
)
PROVIDER_RETRIES = Counter(
    "clinscribe_provider_retries_total",
    "Provider calls retried after a transient error, by reason",
    ["provider", "reason"],
)
WORKFLOWS_RECOVERED = Counter(
    "clinscribe_workflows_recovered_total",
    "Unfinished workflows this process resumed when it started (after a crash or restart)",
)
WEBHOOK_DELIVERIES = Counter(
    "clinscribe_webhook_deliveries_total",
    "Webhook delivery attempts by outcome (delivered, pending = will retry, failed)",
    ["outcome"],
)
QUEUE_DEPTH = Gauge(
    "clinscribe_queue_depth", "Workflows waiting on each DBOS queue (ENQUEUED)", ["queue"]
)
QUEUE_RUNNING = Gauge(
    "clinscribe_queue_running", "Workflows running from each DBOS queue (PENDING)", ["queue"]
)

_RETRY_REASONS = {
    "provider_rate_limited": "rate_limited",
    "provider_timeout": "timeout",
    "provider_network": "network",
    "provider_job_timeout": "job_timeout",
}


def retry_reason(error: ProviderTransientError) -> str:
    """A small, fixed vocabulary: rate_limited, server_error, timeout, network, ..."""
    if error.code in _RETRY_REASONS:
        return _RETRY_REASONS[error.code]
    if error.http_status is not None:
        return "server_error" if error.http_status >= 500 else f"http_{error.http_status}"
    return error.code.removeprefix("provider_")


class QueueGauges:
    """Sets the queue gauges from one count of the system database, cached for ``ttl_s``."""

    def __init__(self, ttl_s: float = 1.0) -> None:
        self.ttl_s = ttl_s
        self._refreshed_at = float("-inf")
        self._lock = asyncio.Lock()

    async def refresh(self, client: DBOSClient, queues: Iterable[str]) -> None:
        async with self._lock:  # a scrape storm waits for one query, then reads the cache
            if time.monotonic() - self._refreshed_at < self.ttl_s:
                return
            waiting, running = await _count_queued(client)
            for queue in {*queues, *waiting, *running}:  # known queues show 0, not nothing
                QUEUE_DEPTH.labels(queue).set(waiting[queue])
                QUEUE_RUNNING.labels(queue).set(running[queue])
            self._refreshed_at = time.monotonic()


async def _count_queued(client: DBOSClient) -> tuple[Tally[str], Tally[str]]:
    rows = await client.list_queued_workflows_async(
        status=[WorkflowStatusString.ENQUEUED.value, WorkflowStatusString.PENDING.value],
        load_input=False,
        load_output=False,
    )
    waiting: Tally[str] = Tally()
    running: Tally[str] = Tally()
    for row in rows:
        if row.queue_name is None:
            continue
        tally = waiting if row.status == WorkflowStatusString.ENQUEUED.value else running
        tally[row.queue_name] += 1
    return waiting, running


async def count_workflows_to_recover(
    system_database_url: str, *, executor_id: str, application_version: str
) -> int:
    """The workflows ``DBOS.launch()`` is about to recover: PENDING ones of this executor and
    version, counted (like DBOS itself does) before the launch. 0 on a first start."""
    url = make_url(system_database_url)

    def count() -> int:
        if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
            return 0
        client = DBOSClient(
            system_database_url=system_database_url,
            application_name="clinscribe",
            retry_connection_errors=False,
        )
        try:
            return len(
                client.list_workflows(
                    status=WorkflowStatusString.PENDING.value,
                    executor_id=executor_id,
                    app_version=application_version,
                    load_input=False,
                    load_output=False,
                )
            )
        finally:
            client.destroy()

    try:
        return await asyncio.wait_for(asyncio.to_thread(count), timeout=30)
    except Exception as error:  # a metric must never stop the worker from starting
        # Also on a first start against a fresh Postgres system database (no tables yet).
        log.info("could not count workflows to recover", error_type=type(error).__name__)
        return 0
