"""All SQL for the audit log: insert and read, nothing else (rows are never changed)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from clinscribe.models import AuditEvent


async def add(session: AsyncSession, event: AuditEvent) -> None:
    session.add(event)
    await session.flush()


async def list_events(
    session: AsyncSession,
    clinic_id: str,
    *,
    consultation_id: str | None,
    action: str | None,
    before_id: int | None,
    limit: int,
) -> list[AuditEvent]:
    """Newest first; ``before_id`` is the id of the last row of the previous page."""
    query = select(AuditEvent).where(AuditEvent.clinic_id == clinic_id)
    if consultation_id is not None:
        query = query.where(AuditEvent.consultation_id == consultation_id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    query = query.order_by(AuditEvent.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())
