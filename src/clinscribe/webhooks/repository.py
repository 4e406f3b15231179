"""All SQL for webhook subscriptions, events, deliveries and attempts. Callers own the session."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clinscribe.models import (
    ConsultationEvent,
    ConsultationStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)


async def add(
    session: AsyncSession, row: WebhookSubscription | WebhookEvent | WebhookDelivery
) -> None:
    session.add(row)
    await session.flush()


# Subscriptions


async def list_subscriptions(session: AsyncSession, clinic_id: str) -> list[WebhookSubscription]:
    query = (
        select(WebhookSubscription)
        .where(WebhookSubscription.clinic_id == clinic_id)
        .order_by(WebhookSubscription.created_at, WebhookSubscription.id)
    )
    return list((await session.scalars(query)).all())


async def enabled_subscriptions(session: AsyncSession, clinic_id: str) -> list[WebhookSubscription]:
    query = select(WebhookSubscription).where(
        WebhookSubscription.clinic_id == clinic_id, WebhookSubscription.enabled.is_(True)
    )
    return list((await session.scalars(query)).all())


async def get_subscription(
    session: AsyncSession, clinic_id: str, subscription_id: str
) -> WebhookSubscription | None:
    """The subscription only if it belongs to the clinic (another clinic's id: None)."""
    return await session.scalar(
        select(WebhookSubscription).where(
            WebhookSubscription.id == subscription_id,
            WebhookSubscription.clinic_id == clinic_id,
        )
    )


async def get_subscription_by_id(
    session: AsyncSession, subscription_id: str
) -> WebhookSubscription | None:
    return await session.get(WebhookSubscription, subscription_id, populate_existing=True)


async def delete_subscription(session: AsyncSession, subscription_id: str) -> None:
    # Child rows first, explicitly: SQLite cascades only with foreign_keys=ON.
    delivery_ids = select(WebhookDelivery.id).where(
        WebhookDelivery.subscription_id == subscription_id
    )
    await session.execute(
        delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(delivery_ids))
    )
    await session.execute(
        delete(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    )
    await session.execute(
        delete(WebhookSubscription).where(WebhookSubscription.id == subscription_id)
    )


async def forget_consultation(session: AsyncSession, consultation_id: str) -> None:
    """Delete the events of a deleted consultation with their deliveries (payloads may hold
    its patient data) and attempts."""
    event_ids = select(WebhookEvent.id).where(WebhookEvent.consultation_id == consultation_id)
    delivery_ids = select(WebhookDelivery.id).where(WebhookDelivery.event_id.in_(event_ids))
    await session.execute(
        delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(delivery_ids))
    )
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.event_id.in_(event_ids)))
    await session.execute(
        delete(WebhookEvent).where(WebhookEvent.consultation_id == consultation_id)
    )


# Events and deliveries


async def get_event(session: AsyncSession, event_id: str) -> WebhookEvent | None:
    return await session.get(WebhookEvent, event_id)


async def processing_runs(session: AsyncSession, consultation_id: str) -> int:
    """How many times a consultation was queued for processing (the upload, then retries)."""
    query = select(func.count(ConsultationEvent.id)).where(
        ConsultationEvent.consultation_id == consultation_id,
        ConsultationEvent.status == ConsultationStatus.QUEUED,
    )
    return int(await session.scalar(query) or 0)


async def get_delivery(session: AsyncSession, delivery_id: str) -> WebhookDelivery | None:
    return await session.get(WebhookDelivery, delivery_id, populate_existing=True)


async def get_subscription_delivery(
    session: AsyncSession, subscription_id: str, delivery_id: str
) -> WebhookDelivery | None:
    return await session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.subscription_id == subscription_id
        )
    )


async def list_deliveries(
    session: AsyncSession,
    subscription_id: str,
    *,
    status: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[WebhookDelivery]:
    """Newest first; ``before`` is the (created_at, id) of the last row of the previous page."""
    query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if before is not None:
        created_at, last_id = before
        query = query.where(
            or_(
                WebhookDelivery.created_at < created_at,
                and_(WebhookDelivery.created_at == created_at, WebhookDelivery.id < last_id),
            )
        )
    query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    return list((await session.scalars(query.limit(limit))).all())


async def undispatched(session: AsyncSession, limit: int) -> list[str]:
    query = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.dispatched_at.is_(None))
        .order_by(WebhookDelivery.created_at)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def mark_dispatched(session: AsyncSession, delivery_ids: Sequence[str], at: datetime) -> None:
    await session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id.in_(delivery_ids)).values(dispatched_at=at)
    )


# Attempts


async def start_attempt(
    session: AsyncSession, delivery: WebhookDelivery, at: datetime
) -> WebhookAttempt:
    attempt = WebhookAttempt(
        delivery_id=delivery.id, number=len(delivery.attempts) + 1, started_at=at
    )
    delivery.attempts.append(attempt)
    await session.flush()
    return attempt


async def get_attempt(session: AsyncSession, attempt_id: int) -> WebhookAttempt | None:
    return await session.get(WebhookAttempt, attempt_id)
