"""Progress bookkeeping shared by the pipeline steps: stage changes, timing, log context."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from clinscribe import metrics
from clinscribe.consultations import repository
from clinscribe.errors import ConsultationGone
from clinscribe.models import ConsultationStatus, Stage
from clinscribe.pipeline.runtime import get_runtime

log = structlog.get_logger("clinscribe.pipeline")


@asynccontextmanager
async def stage(
    consultation_id: str, current: Stage, *, timed: bool = True
) -> AsyncIterator[structlog.BoundLogger]:
    """Mark the consultation as being in ``stage``, time it (unless the caller times the
    stage itself: ``timed=False``), and log one line per stage."""
    runtime = get_runtime()
    async with runtime.db.session() as session:
        row = await repository.get_consultation(session, consultation_id)
        already = row is not None and (row.status, row.stage) == ("processing", current.value)
        if not already:  # several steps share a stage; announce it once
            await repository.update_progress(
                session, consultation_id, status=ConsultationStatus.PROCESSING, stage=current
            )
    started = time.perf_counter()
    yield log.bind(consultation_id=consultation_id, stage=current.value)
    if timed:
        metrics.STAGE_SECONDS.labels(current.value).observe(time.perf_counter() - started)


def elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


@asynccontextmanager
async def storing(consultation_id: str) -> AsyncIterator[AsyncSession]:
    """A session for a step's output. If the consultation was deleted meanwhile, the write
    fails on its foreign key: say so without the database's message (it quotes the values)."""
    try:
        async with get_runtime().db.session() as session:
            yield session
    except IntegrityError:
        raise ConsultationGone(
            "The consultation was deleted while it was being processed."
        ) from None
