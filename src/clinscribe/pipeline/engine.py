"""The workflow engine of one process: DBOS configuration, launch, enqueue, retry, reconcile.

A worker process (``clinscribe serve`` or ``clinscribe worker``) is one DBOS executor with its
own executor id (see ``workers.py``). An API-only process (``clinscribe serve --no-worker``)
runs no workflows: it starts, inspects, retries and cancels them through a ``DBOSClient``, and
so does every process outside a workflow, so both roles share one code path.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from dbos import (
    DBOS,
    DBOSClient,
    DBOSConfig,
    EnqueueOptions,
    WorkflowStatus,
    WorkflowStatusString,
)
from sqlalchemy.engine import make_url

from clinscribe import metrics
from clinscribe.config import Settings
from clinscribe.consultations import repository
from clinscribe.errors import Conflict
from clinscribe.models import ConsultationStatus
from clinscribe.pipeline import workflow
from clinscribe.pipeline.runtime import Runtime
from clinscribe.pipeline.transcription import chunk_workflow_id, stt_queue_name
from clinscribe.retention import workflow as retention
from clinscribe.webhooks import delivery as webhooks
from clinscribe.webhooks.events import emit_consultation_event

log = structlog.get_logger("clinscribe.engine")

QUEUE_NAME = "consultations"
_FAILED_WORKFLOW_STATES = {
    WorkflowStatusString.ERROR.value,
    WorkflowStatusString.CANCELLED.value,
    WorkflowStatusString.MAX_RECOVERY_ATTEMPTS_EXCEEDED.value,
}


def _tune_dbos_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _system_engine(url: str) -> sa.Engine | None:
    """Our own engine for a SQLite system database, tuned for WAL (DBOS leaves full fsync)."""
    if make_url(url).get_backend_name() != "sqlite":
        return None
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
    sa.event.listen(engine, "connect", _tune_dbos_sqlite)
    return engine


APP_NAME = "clinscribe"
_client: DBOSClient | None = None
_client_engine: sa.Engine | None = None  # ours to dispose (SQLite only)
_application_version = ""  # what this process enqueues under (set at start)


def client() -> DBOSClient:
    """This process's handle on the workflow engine (after ``start``)."""
    if _client is None:
        raise RuntimeError("the workflow engine is not started in this process")
    return _client


def queue_names(settings: Settings) -> list[str]:
    """The queues this process registers (for the queue gauges of /metrics)."""
    return [QUEUE_NAME, stt_queue_name(settings.stt_provider), webhooks.QUEUE_NAME]


def configure(settings: Settings, executor_id: str) -> None:
    """Create the DBOS instance of a worker process (call once, before launch)."""
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    config: DBOSConfig = {
        "name": APP_NAME,
        "system_database_url": settings.dbos_database_url,
        "application_version": settings.application_version,
        "notification_listener_polling_interval_sec": 0.1,
        "log_level": "WARNING",
    }
    # A stable executor id lets a restarted process recover its own unfinished workflows.
    config["executor_id"] = executor_id
    engine = _system_engine(settings.dbos_database_url)
    if engine is not None:
        config["system_database_engine"] = engine
    DBOS(config=config)


async def start(settings: Settings, executor_id: str | None) -> None:
    """Start this process's part of the engine: with an executor id, launch DBOS as a
    worker; without, only create (or migrate) the system database for the client."""
    global _client, _client_engine, _application_version
    _application_version = settings.application_version
    if executor_id is not None:
        await _launch(settings, executor_id)
    else:
        await asyncio.to_thread(DBOS.migrate, settings.dbos_database_url)
    _client_engine = _system_engine(settings.dbos_database_url)
    _client = DBOSClient(
        system_database_url=settings.dbos_database_url,
        system_database_engine=_client_engine,
        application_name=APP_NAME,
    )


async def _launch(settings: Settings, executor_id: str) -> None:
    """Start DBOS (recovers this executor's unfinished workflows) and register our queue.

    Launched on the running loop's own thread on purpose: DBOS then runs workflows on this
    loop, so the API and the pipeline share one loop and one set of async resources (a
    launch from another thread would run them on a private loop of DBOS's). It blocks the
    loop briefly, once, at startup.
    """
    to_recover = await metrics.count_workflows_to_recover(
        settings.dbos_database_url,
        executor_id=executor_id,
        application_version=settings.application_version,
    )
    DBOS.launch()
    metrics.WORKFLOWS_RECOVERED.inc(to_recover)
    await DBOS.register_queue_async(
        QUEUE_NAME,
        worker_concurrency=settings.worker_concurrency,
        polling_interval_sec=0.2,
        on_conflict="always_update",
    )
    # Pieces of long recordings go through the provider's own queue: its concurrency and
    # rate limit hold across all consultations (and, on Postgres, across processes).
    rpm = settings.stt_requests_per_minute
    await DBOS.register_queue_async(
        stt_queue_name(settings.stt_provider),
        worker_concurrency=settings.stt_concurrency,
        limiter={"limit": rpm, "period": 60.0} if rpm else None,
        polling_interval_sec=0.05,
        on_conflict="always_update",
    )
    # Webhook attempts (each at most CLINSCRIBE_WEBHOOKS__TIMEOUT_S). A delivery waiting for
    # its next attempt is a delayed entry and holds no slot.
    await DBOS.register_queue_async(
        webhooks.QUEUE_NAME,
        worker_concurrency=16,
        polling_interval_sec=0.5,
        on_conflict="always_update",
    )
    await retention.schedule(settings)


# Of a stopping worker's grace period, what stopping DBOS itself takes (it polls each second).
_TEARDOWN_S = 1.0


async def stop(runtime: Runtime, *, worker: bool, grace_s: float) -> int:
    """Stop taking work and stop DBOS within ``grace_s``: running workflows get all of it but
    the last second to finish, then are cancelled. A cancelled workflow stays PENDING and
    resumes at its first unfinished step (on the next start, or on a live worker once this
    one's seat is released). Returns how many were cut off."""
    cut_off = 0
    if worker:
        # DBOS waits for running workflows itself, but then tears down the executor they
        # run on, under them. So: cancel whatever still runs near the end of the grace
        # period, while DBOS is still up (it would wait a little longer than that).
        stopping = asyncio.ensure_future(
            asyncio.to_thread(
                DBOS.destroy,
                destroy_registry=False,
                workflow_completion_timeout_sec=math.ceil(grace_s) + 1,
            )
        )
        done, _ = await asyncio.wait({stopping}, timeout=max(0.0, grace_s - _TEARDOWN_S))
        if not done:
            cut_off = await runtime.cancel_running_workflows()
        await stopping
    _close_client()  # briefly blocking: DBOS.destroy shut the loop's default executor down
    return cut_off


def _close_client() -> None:
    global _client, _client_engine
    if _client is not None:
        _client.destroy()
        _client = None
    if _client_engine is not None:
        _client_engine.dispose()
        _client_engine = None


async def enqueue(consultation_id: str) -> None:
    """Queue processing; idempotent because the workflow id is the consultation id."""
    options: EnqueueOptions = {
        "queue_name": QUEUE_NAME,
        "workflow_name": workflow.WORKFLOW_NAME,
        "workflow_id": consultation_id,
        "app_version": _application_version,
    }
    await client().enqueue_async(options, consultation_id)


async def _status(workflow_id: str) -> WorkflowStatus | None:
    found = await client().list_workflows_async(
        workflow_ids=[workflow_id], load_input=False, load_output=False
    )
    return found[0] if found else None


async def has_run(consultation_id: str) -> bool:
    """Whether a workflow was ever started for this id (ids are never reused)."""
    return await _status(consultation_id) is not None


async def _children(consultation_id: str) -> list[str]:
    """Ids of the chunk workflows of a consultation (long recordings only)."""
    children = await client().list_workflows_async(
        workflow_id_prefix=chunk_workflow_id(consultation_id, 0)[:-4],
        load_input=False,
        load_output=False,
    )
    return [child.workflow_id for child in children]


async def _first_unfinished_step(consultation_id: str) -> int:
    steps = await client().list_workflow_steps_async(consultation_id)
    failed = [s["function_id"] for s in steps if s["error"] is not None]
    if failed:
        return min(failed)
    finished = [s["function_id"] for s in steps]
    return max(finished) + 1 if finished else 1


async def retry(runtime: Runtime, consultation_id: str) -> None:
    """Resume a failed consultation from its first unfinished step (finished steps stay)."""
    async with runtime.db.session() as session:
        consultation = await repository.get_consultation(session, consultation_id)
        if consultation is None or consultation.status != ConsultationStatus.FAILED:
            raise Conflict(
                "Only a failed consultation can be retried; this one is "
                f"{consultation.status if consultation else 'gone'}.",
                code="not_retryable",
            )
        if consultation.error_retryable is False:
            raise Conflict(
                "This failure cannot be fixed by retrying (for example, the recording cannot "
                "be decoded). Upload the recording again.",
                code="not_retryable",
            )
        previous_error = (
            consultation.error_code or "unknown",
            consultation.error_message or "",
            True,
        )
    status = await _status(consultation_id)
    if status is not None and status.status not in _FAILED_WORKFLOW_STATES | {
        WorkflowStatusString.SUCCESS.value
    }:
        raise Conflict("This consultation is already being processed.", code="not_retryable")
    async with runtime.db.session() as session:
        await repository.update_progress(
            session, consultation_id, status=ConsultationStatus.QUEUED, stage=consultation.stage
        )
    try:
        if status is None:
            await enqueue(consultation_id)
            return
        await _rewind(runtime, consultation_id)
    except BaseException:
        async with runtime.db.session() as session:  # nothing was restarted: still failed
            await repository.update_progress(
                session, consultation_id, status=ConsultationStatus.FAILED,
                stage=consultation.stage, error=previous_error,
            )  # fmt: skip
        raise


async def _rewind(runtime: Runtime, consultation_id: str) -> None:
    # Resume under this deployment's version: a workflow left on an older version would stay
    # ENQUEUED forever, since a queue only runs work of the current version.
    version = runtime.settings.application_version
    # Failed pieces of a long recording run again; finished pieces keep their checkpoints.
    for child in await _children(consultation_id):
        child_status = await _status(child)
        if child_status is not None and child_status.status in _FAILED_WORKFLOW_STATES:
            await client().rewind_workflow_async(
                child,
                start_step=await _first_unfinished_step(child),
                queue_name=stt_queue_name(runtime.settings.stt_provider),
                application_version=version,
            )
    start_step = await _first_unfinished_step(consultation_id)
    log.info("consultation retried", consultation_id=consultation_id, start_step=start_step)
    await client().rewind_workflow_async(
        consultation_id, start_step=start_step, queue_name=QUEUE_NAME, application_version=version
    )


# A row changed this recently may be in the middle of an accept or a retry: leave it alone.
_RECONCILE_GRACE = timedelta(seconds=60)


async def reconcile(runtime: Runtime) -> int:
    """Make the app database agree with the workflow engine; returns rows repaired.

    A consultation accepted just before a crash may never have been enqueued, and one whose
    workflow ended outside our code (cancelled, recovery attempts exhausted, a retry that
    could not restart it) or waits for a version no worker runs would otherwise show
    "processing" forever.
    """
    repaired = 0
    async with runtime.db.session() as session:
        unfinished = await repository.list_unfinished(session)
    cutoff = datetime.now(UTC) - _RECONCILE_GRACE
    for consultation in unfinished:
        if consultation.updated_at > cutoff:
            continue
        try:
            repaired += await _reconcile_one(runtime, consultation.id, consultation.stage)
        except Exception as error:  # one bad row must not stop the pass
            log.error("reconcile failed for a consultation", consultation_id=consultation.id,
                      error_type=type(error).__name__)  # fmt: skip
    if repaired:
        log.warning("consultations reconciled", count=repaired)
    return repaired


async def _reconcile_one(runtime: Runtime, consultation_id: str, stage: str | None) -> int:
    status = await _status(consultation_id)
    if status is None:
        await enqueue(consultation_id)
        return 1
    stranded = status.status == WorkflowStatusString.ENQUEUED.value and (
        status.app_version not in (None, runtime.settings.application_version)
    )
    ended = status.status in _FAILED_WORKFLOW_STATES | {WorkflowStatusString.SUCCESS.value}
    if not (ended or stranded):
        return 0
    async with runtime.db.session() as session:
        if await repository.get_consultation(session, consultation_id) is None:
            return 0  # deleted meanwhile
        await repository.update_progress(
            session,
            consultation_id,
            status=ConsultationStatus.FAILED,
            stage=stage,
            error=(
                "processing_interrupted",
                "Processing was interrupted and could not resume on its own. "
                "Retry the consultation.",
                True,
            ),
        )
        await emit_consultation_event(session, consultation_id, "consultation.failed")
    return 1


async def reconcile_forever(runtime: Runtime, interval_s: float = 30.0) -> None:
    while True:
        try:
            await reconcile(runtime)
            await asyncio.to_thread(runtime.audio.remove_abandoned_work)
        except Exception as error:  # keep the loop alive; the next pass retries
            log.error("reconcile pass failed", error_type=type(error).__name__)
        await asyncio.sleep(interval_s)


async def cancel(consultation_id: str) -> None:
    """Stop processing (before a delete). A step already running finishes its current call."""
    active = {
        WorkflowStatusString.ENQUEUED.value,
        WorkflowStatusString.PENDING.value,
        WorkflowStatusString.DELAYED.value,
    }
    for workflow_id in [consultation_id, *await _children(consultation_id)]:
        status = await _status(workflow_id)
        if status is not None and status.status in active:
            await client().cancel_workflow_async(workflow_id)
