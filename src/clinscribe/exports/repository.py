"""The SQL exports need beyond the consultation and note: who acted on a note version."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from clinscribe.models import AuditEvent

# A consultation has a handful of note events; this only bounds a pathological one.
_MAX_EVENTS = 200


async def last_audit_event(
    session: AsyncSession,
    clinic_id: str,
    consultation_id: str,
    actions: tuple[str, ...],
    *,
    version: int | None = None,
) -> AuditEvent | None:
    """The newest event with one of ``actions`` (about note ``version``, when given)."""
    query = (
        select(AuditEvent)
        .where(
            AuditEvent.clinic_id == clinic_id,
            AuditEvent.consultation_id == consultation_id,
            AuditEvent.action.in_(actions),
        )
        .order_by(AuditEvent.id.desc())
        .limit(_MAX_EVENTS)
    )
    for event in (await session.scalars(query)).all():
        if version is None or event.detail.get("version") == version:
            return event
    return None
