"""The FastAPI application factory and the process lifecycle (migrations, DBOS launch)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from clinscribe import __version__, metrics
from clinscribe.auth.dependencies import RequestLimits
from clinscribe.auth.endpoints import router as accounts_router
from clinscribe.config import Settings, get_settings
from clinscribe.consultations.endpoints import router as consultations_router
from clinscribe.consultations.upload import remove_abandoned_uploads
from clinscribe.db import migrate
from clinscribe.db.encrypted import use_keyring
from clinscribe.errors import ClinscribeError
from clinscribe.exports.endpoints import router as exports_router
from clinscribe.logging import configure_logging
from clinscribe.notes.endpoints import router as notes_router
from clinscribe.notes.warmup import warm_up as warm_up_notes
from clinscribe.pipeline import engine
from clinscribe.pipeline.runtime import Runtime, set_runtime
from clinscribe.pipeline.workers import Seat
from clinscribe.security.body_limit import BodySizeLimitMiddleware
from clinscribe.security.headers import SecurityHeadersMiddleware
from clinscribe.security.keys import UNENCRYPTED_WARNING
from clinscribe.security.text_input import reject_nul_characters
from clinscribe.web.consultation_pages import router as consultation_pages_router
from clinscribe.web.pages import router as pages_router
from clinscribe.webhooks import delivery as webhook_delivery
from clinscribe.webhooks.endpoints import router as webhooks_router

STATIC_DIR = Path(__file__).parent / "web" / "static"

log = structlog.get_logger("clinscribe.app")


async def _load_note_engine(runtime: Runtime) -> None:
    started = time.perf_counter()
    await asyncio.to_thread(warm_up_notes)
    runtime.note_engine_ready = True
    log.info("note engine ready", seconds=round(time.perf_counter() - started, 1))


@asynccontextmanager
async def worker_lifecycle(settings: Settings, *, run_worker: bool) -> AsyncIterator[Runtime]:
    """Everything a process needs to serve or process consultations, torn down in reverse."""
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    if removed := remove_abandoned_uploads(settings.upload_tmp_dir):
        log.info("abandoned partial uploads removed", count=removed)
    if settings.auto_migrate:
        await asyncio.to_thread(migrate.upgrade, settings.app_database_url)
    runtime = Runtime.create(settings)
    use_keyring(runtime.keyring)
    if not runtime.keyring.enabled:
        log.warning(UNENCRYPTED_WARNING)
    if removed := runtime.audio.remove_abandoned_work():
        log.info("abandoned working copies removed", count=removed)
    set_runtime(runtime)
    if run_worker and not settings.auto_migrate:
        pending = await asyncio.to_thread(migrate.pending_revisions, settings.app_database_url)
        if pending:
            # Workflows would write to tables the database does not have yet. Serve the API
            # (whose /readyz says why) and run none until `clinscribe db upgrade`.
            log.error("database migrations are pending: this process runs no workflows; run "
                      "`clinscribe db upgrade`, then restart it", pending=len(pending))  # fmt: skip
            run_worker = False
    # A worker first takes its seat: an executor id of its own (and, on Postgres, a heartbeat).
    seat = await asyncio.to_thread(Seat.take, settings) if run_worker else None
    background: list[asyncio.Task[None]] = []
    warm_up: asyncio.Task[None] | None = None
    try:
        # Drug names, negation triggers, ICD-10-CM: seconds to load; in a thread, while DBOS
        # starts, not inside the first consultation's step. /readyz waits for it.
        warm_up = asyncio.create_task(_load_note_engine(runtime))
        if seat is not None:
            engine.configure(settings, seat.executor_id)
        await engine.start(settings, seat.executor_id if seat else None)
        if seat is not None:
            seat.start_heartbeat()
            background = [
                asyncio.create_task(seat.take_over_forever(engine.client())),
                asyncio.create_task(engine.reconcile_forever(runtime)),
                asyncio.create_task(webhook_delivery.dispatch_forever(runtime)),
            ]
            log.info(
                "worker started",
                executor_id=seat.executor_id,
                application_version=settings.application_version,
                stt_provider=settings.stt_provider,
                note_provider=settings.note_provider,
            )
        yield runtime
    finally:
        if seat is not None:
            log.info("stopping: running consultations get the grace period to finish",
                     grace_s=settings.shutdown_grace_s)  # fmt: skip
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Stop taking work, give running consultations the grace period, then stop DBOS.
        # Whatever is unfinished resumes at its first unfinished step: on the next start of
        # this worker, or at once on a live worker when the seat is released (Postgres).
        cancelled = await engine.stop(
            runtime, worker=seat is not None, grace_s=settings.shutdown_grace_s
        )
        if cancelled:
            log.warning("unfinished consultations will resume elsewhere or on the next start",
                        count=cancelled)  # fmt: skip
        if seat is not None:
            seat.release()
        if warm_up is not None:  # a thread: usually long done, never cut off
            await asyncio.gather(warm_up, return_exceptions=True)
        await runtime.aclose()
        set_runtime(None)


async def _workflow_engine_check() -> str:
    """Whether this process reaches the workflow (system) database."""
    try:
        await asyncio.wait_for(engine.client().check_connection_async(), timeout=5)
    except Exception:
        return "unreachable"
    return "ok"


def _error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}})


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    if any(error.get("type") == "json_invalid" for error in exc.errors()):
        return "The request body is not valid JSON. Send a JSON object as documented at /docs."
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return "The request is not valid. " + "; ".join(parts) + "."


def create_app(settings: Settings | None = None, *, run_worker: bool = True) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, settings.log_format)
        async with worker_lifecycle(settings, run_worker=run_worker) as runtime:
            app.state.runtime = runtime
            app.state.limits = RequestLimits.from_settings(settings)
            yield

    app = FastAPI(
        title="clinscribe",
        version=__version__,
        summary="Consultation audio -> transcript -> clinical note, durably.",
        lifespan=lifespan,
        dependencies=[Depends(reject_nul_characters)],
    )
    app.include_router(consultations_router)
    app.include_router(accounts_router)
    app.include_router(notes_router)
    app.include_router(webhooks_router)
    app.include_router(exports_router)
    app.include_router(pages_router)
    app.include_router(consultation_pages_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # Audio uploads have their own streaming limit (CLINSCRIBE_MAX_UPLOAD_MB).
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_request_kb * 1024,
        exempt_paths=lambda method, path: method == "POST" and path == "/api/consultations",
    )
    app.add_middleware(SecurityHeadersMiddleware)

    @app.exception_handler(ClinscribeError)
    async def _clinscribe_error(_request: Request, exc: ClinscribeError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("request failed", error_code=exc.code)
        response = _error_response(exc.status_code, exc.code, exc.message)
        response.headers.update(exc.headers())
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error_response(422, "invalid_request", _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 404:
            message = "No such endpoint. The API is under /api; see /docs for the list."
        return _error_response(exc.status_code, code, message)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", error_type=type(exc).__name__)
        return _error_response(
            500,
            "internal_error",
            "Something went wrong on the server. Try again; if it persists, "
            "ask your administrator to check the logs.",
        )

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["operations"])
    async def readyz(request: Request) -> JSONResponse:
        runtime: Runtime = request.app.state.runtime
        checks: dict[str, str] = {}
        try:
            async with runtime.db.session() as session:
                await session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception:
            checks["database"] = "unreachable"
        if checks["database"] == "ok":
            pending = await asyncio.to_thread(migrate.pending_revisions, settings.app_database_url)
            checks["migrations"] = "ok" if not pending else f"{len(pending)} pending"
        checks["workflow_engine"] = await _workflow_engine_check()
        checks["note_engine"] = "ok" if runtime.note_engine_ready else "loading"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            status_code=200 if ready else 503,
            content={"status": "ready" if ready else "not_ready", **checks},
        )

    queue_gauges = metrics.QueueGauges(ttl_s=1.0)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def metrics_endpoint(request: Request) -> PlainTextResponse:
        try:
            await queue_gauges.refresh(engine.client(), engine.queue_names(settings))
        except Exception as error:  # the other figures are still worth a scrape
            log.warning("queue depth unavailable", error_type=type(error).__name__)
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    return app
