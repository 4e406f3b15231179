"""Applying the retention policy at a given time (the clock is a parameter, for tests).

* Audio is deleted ``audio_days_after_signed`` days after the note was first signed; the
  transcript and the note stay (they are the medical record).
* Consultations never signed are deleted whole ``unsigned_days`` days after upload.

Files are removed before the database change commits with its audit record: after a crash
in between, the consultation is still due and the next sweep finishes and audits it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from clinscribe.audit.service import record
from clinscribe.auth.principal import system_actor
from clinscribe.config import RetentionSettings
from clinscribe.consultations import repository as consultations
from clinscribe.db.engine import Database
from clinscribe.models import Consultation
from clinscribe.retention import repository
from clinscribe.storage.audio import AudioStore

_BATCH = 200
ACTOR_LABEL = "retention policy"


@dataclass
class RetentionResult:
    audio_deleted: int = 0
    consultations_deleted: int = 0


async def apply_retention(
    db: Database, audio: AudioStore, policy: RetentionSettings, now: datetime
) -> RetentionResult:
    result = RetentionResult()
    if policy.audio_days_after_signed is not None:
        cutoff = now - timedelta(days=policy.audio_days_after_signed)

        async def delete_audio(session: AsyncSession, consultation: Consultation) -> None:
            await asyncio.to_thread(audio.delete, consultation.id)
            consultation.audio_deleted_at = now
            await _audit(session, consultation, "audio.deleted",
                         days_after_signed=policy.audio_days_after_signed)  # fmt: skip

        result.audio_deleted = await _sweep(db, repository.audio_due, cutoff, delete_audio)
    if policy.unsigned_days is not None:
        cutoff = now - timedelta(days=policy.unsigned_days)

        async def delete_whole(session: AsyncSession, consultation: Consultation) -> None:
            await asyncio.to_thread(audio.delete, consultation.id)
            await consultations.delete_consultation(session, consultation.id)
            await _audit(session, consultation, "consultation.deleted",
                         unsigned_days=policy.unsigned_days)  # fmt: skip

        result.consultations_deleted = await _sweep(
            db, repository.unsigned_due, cutoff, delete_whole
        )
    return result


FindDue = Callable[[AsyncSession, datetime, int], Awaitable[list[Consultation]]]
Delete = Callable[[AsyncSession, Consultation], Awaitable[None]]


async def _sweep(db: Database, find_due: FindDue, cutoff: datetime, delete: Delete) -> int:
    """Apply ``delete`` to every due consultation, a committed batch at a time."""
    deleted = 0
    for _ in range(10_000):  # bounded: at most 2 million consultations per sweep
        async with db.session() as session:
            due = await find_due(session, cutoff, _BATCH)
            if not due:
                break
            for consultation in due:
                await delete(session, consultation)
                deleted += 1
    return deleted


async def _audit(
    session: AsyncSession, consultation: Consultation, action: str, **detail: float | None
) -> None:
    actor = system_actor(consultation.clinic_id, ACTOR_LABEL)
    await record(
        session, actor, action, consultation_id=consultation.id, reason="retention", **detail
    )
