"""Applying the retention policy at a given time (the clock is a parameter, for tests).

* Audio is deleted ``audio_days_after_signed`` days after the note was first signed; the
  transcript and the note stay (they are the medical record).
* Consultations never signed are deleted whole ``unsigned_days`` days after upload.

Files are removed before the database change commits with its audit record: after a crash
in between, the consultation is still due and the next sweep finishes and audits it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from clinscribe.audit.service import record
from clinscribe.auth.principal import system_actor
from clinscribe.config import RetentionSettings
from clinscribe.consultations import repository as consultations
from clinscribe.db.engine import Database
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
        result.audio_deleted = await _delete_audio(db, audio, cutoff, now, policy)
    if policy.unsigned_days is not None:
        cutoff = now - timedelta(days=policy.unsigned_days)
        result.consultations_deleted = await _delete_unsigned(db, audio, cutoff, policy)
    return result


async def _delete_audio(
    db: Database, audio: AudioStore, cutoff: datetime, now: datetime, policy: RetentionSettings
) -> int:
    deleted = 0
    for _ in range(10_000):  # bounded: at most 2 million consultations per sweep
        async with db.session() as session:
            due = await repository.audio_due(session, cutoff, _BATCH)
            if not due:
                return deleted
            for consultation in due:
                audio.delete(consultation.id)
                consultation.audio_deleted_at = now
                await record(
                    session,
                    system_actor(consultation.clinic_id, ACTOR_LABEL),
                    "audio.deleted",
                    consultation_id=consultation.id,
                    reason="retention",
                    days_after_signed=policy.audio_days_after_signed,
                )
                deleted += 1
    return deleted


async def _delete_unsigned(
    db: Database, audio: AudioStore, cutoff: datetime, policy: RetentionSettings
) -> int:
    deleted = 0
    for _ in range(10_000):
        async with db.session() as session:
            due = await repository.unsigned_due(session, cutoff, _BATCH)
            if not due:
                return deleted
            for consultation in due:
                audio.delete(consultation.id)
                await consultations.delete_consultation(session, consultation.id)
                await record(
                    session,
                    system_actor(consultation.clinic_id, ACTOR_LABEL),
                    "consultation.deleted",
                    consultation_id=consultation.id,
                    reason="retention",
                    unsigned_days=policy.unsigned_days,
                )
                deleted += 1
    return deleted
