"""SQL for finding consultations the retention policy has made due."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from clinscribe.models import Consultation, ConsultationStatus, Note

_FINISHED = (
    ConsultationStatus.COMPLETED,
    ConsultationStatus.FAILED,
    ConsultationStatus.CANCELLED,
)


async def audio_due(
    session: AsyncSession, signed_before: datetime, limit: int
) -> list[Consultation]:
    """Consultations still holding audio whose note was first signed before the cut-off."""
    signed = (
        select(Note.consultation_id, func.min(Note.signed_at).label("signed_at"))
        .where(Note.signed_at.is_not(None))
        .group_by(Note.consultation_id)
        .subquery()
    )
    query = (
        select(Consultation)
        .join(signed, signed.c.consultation_id == Consultation.id)
        .where(Consultation.audio_deleted_at.is_(None), signed.c.signed_at <= signed_before)
        .order_by(Consultation.id)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def unsigned_due(
    session: AsyncSession, created_before: datetime, limit: int
) -> list[Consultation]:
    """Finished consultations created before the cut-off with no signed note version."""
    signed_ids = select(Note.consultation_id).where(Note.signed_at.is_not(None))
    query = (
        select(Consultation)
        .where(
            Consultation.created_at <= created_before,
            Consultation.status.in_(_FINISHED),
            Consultation.id.not_in(signed_ids),
        )
        .order_by(Consultation.id)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())
