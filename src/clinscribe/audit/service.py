"""Recording audit events. The caller's session commits them with the change they describe."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clinscribe.audit import repository
from clinscribe.auth.principal import Actor
from clinscribe.models import AuditEvent


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    *,
    consultation_id: str | None = None,
    **detail: str | int | float | bool | None,
) -> None:
    """Append one event. ``detail`` holds ids, versions and counts, never patient data."""
    payload: dict[str, Any] = {k: v for k, v in detail.items() if v is not None}
    await repository.add(
        session,
        AuditEvent(
            clinic_id=actor.clinic_id,
            actor_type=actor.actor_type,
            actor_id=actor.actor_id,
            actor_label=actor.label[:254],
            action=action,
            consultation_id=consultation_id,
            ip=actor.ip,
            detail=payload,
        ),
    )
