"""The retention sweep: a DBOS scheduled workflow (CLINSCRIBE_RETENTION__SCHEDULE, UTC).

The schedule lives in the DBOS system database, so with several workers each run happens
once; the run's scheduled time is the clock the policy is applied with.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from dbos import DBOS

from clinscribe.config import Settings
from clinscribe.pipeline.runtime import get_runtime
from clinscribe.retention.service import apply_retention

log = structlog.get_logger("clinscribe.retention")
SCHEDULE_NAME = "retention"


@DBOS.step(name="applying_retention")
async def apply_retention_step(now_iso: str) -> tuple[int, int]:
    runtime = get_runtime()
    result = await apply_retention(
        runtime.db, runtime.audio, runtime.settings.retention, datetime.fromisoformat(now_iso)
    )
    if result.audio_deleted or result.consultations_deleted:
        log.info(
            "retention applied",
            audio_deleted=result.audio_deleted,
            consultations_deleted=result.consultations_deleted,
        )
    return result.audio_deleted, result.consultations_deleted


@DBOS.workflow(name="retention_sweep")
async def retention_sweep(scheduled_at: datetime, _context: Any) -> None:
    await apply_retention_step(scheduled_at.isoformat())


async def schedule(settings: Settings) -> None:
    """Create or update the sweep's schedule (after DBOS has launched)."""
    await DBOS.apply_schedules_async(
        [
            {
                "schedule_name": SCHEDULE_NAME,
                "workflow_fn": retention_sweep,
                "schedule": settings.retention.schedule,
            }
        ]
    )
