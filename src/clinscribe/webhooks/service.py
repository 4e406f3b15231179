"""Webhook subscription use cases (clinic admins). Services take an open session and never
commit it; every change is audited. Another clinic's id answers exactly like a missing one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from clinscribe.audit.service import record
from clinscribe.auth.principal import Principal
from clinscribe.config import WebhookSettings
from clinscribe.errors import BadRequest, Conflict, NotFound
from clinscribe.models import WebhookDelivery, WebhookSubscription
from clinscribe.webhooks import addresses, repository, signing
from clinscribe.webhooks.events import EVENT_TYPES, EventType


@dataclass(frozen=True)
class NewSubscription:
    row: WebhookSubscription
    secret: str  # shown once


@dataclass(frozen=True)
class Changes:
    """A PATCH: None leaves a field as it is (an empty description clears it)."""

    url: str | None = None
    events: list[EventType] | None = None
    include_phi: bool | None = None
    description: str | None = None
    enabled: bool | None = None


def _events(events: list[EventType]) -> list[str]:
    chosen = set(events)
    if not chosen:
        raise BadRequest(
            f"Choose at least one event: {', '.join(EVENT_TYPES)}.", code="no_webhook_events"
        )
    return [event for event in EVENT_TYPES if event in chosen]


async def _checked_url(url: str, settings: WebhookSettings) -> str:
    await addresses.check(url, allow_private=settings.allow_private_addresses)
    return url.strip()


async def subscribe(
    session: AsyncSession,
    principal: Principal,
    settings: WebhookSettings,
    *,
    url: str,
    events: list[EventType],
    include_phi: bool,
    description: str | None,
    enabled: bool,
) -> NewSubscription:
    secret = signing.new_secret()
    row = WebhookSubscription(
        id=uuid.uuid4().hex,
        clinic_id=principal.clinic_id,
        url=await _checked_url(url, settings),
        events=_events(events),
        include_phi=include_phi,
        description=(description or "").strip() or None,
        enabled=enabled,
        secret=secret,
    )
    await repository.add(session, row)
    await record(session, principal, "webhook.created", webhook_id=row.id, include_phi=include_phi)
    return NewSubscription(row=row, secret=secret)


async def list_subscriptions(
    session: AsyncSession, principal: Principal
) -> list[WebhookSubscription]:
    return await repository.list_subscriptions(session, principal.clinic_id)


async def get_subscription(
    session: AsyncSession, principal: Principal, subscription_id: str
) -> WebhookSubscription:
    row = await repository.get_subscription(session, principal.clinic_id, subscription_id[:32])
    if row is None:
        raise NotFound("No webhook subscription with this id.", code="webhook_not_found")
    return row


async def update(
    session: AsyncSession,
    principal: Principal,
    settings: WebhookSettings,
    subscription_id: str,
    changes: Changes,
) -> WebhookSubscription:
    row = await get_subscription(session, principal, subscription_id)
    changed = []
    if changes.url is not None:
        row.url = await _checked_url(changes.url, settings)
        changed.append("url")
    if changes.events is not None:
        row.events = _events(changes.events)
        changed.append("events")
    if changes.include_phi is not None:
        row.include_phi = changes.include_phi
        changed.append("include_phi")
    if changes.description is not None:
        row.description = changes.description.strip() or None
        changed.append("description")
    if changes.enabled is not None:
        row.enabled = changes.enabled
        row.disabled_reason = None
        changed.append("enabled")
    await session.flush()
    await record(
        session,
        principal,
        "webhook.updated",
        webhook_id=row.id,
        changed=",".join(changed),
        include_phi=row.include_phi,
        enabled=row.enabled,
    )
    return row


async def delete(session: AsyncSession, principal: Principal, subscription_id: str) -> None:
    """Delete the subscription and its delivery log; deliveries still waiting stop."""
    row = await get_subscription(session, principal, subscription_id)
    await repository.delete_subscription(session, row.id)
    await record(session, principal, "webhook.deleted", webhook_id=row.id)


async def list_deliveries(
    session: AsyncSession,
    principal: Principal,
    subscription_id: str,
    *,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> list[WebhookDelivery]:
    """Newest first; ``cursor`` is the id of the last delivery of the previous page."""
    row = await get_subscription(session, principal, subscription_id)
    before: tuple[datetime, str] | None = None
    if cursor is not None:
        last = await repository.get_subscription_delivery(session, row.id, cursor[:32])
        if last is None:
            raise BadRequest(
                "The cursor is not valid; use the next_cursor of the previous page.",
                code="bad_cursor",
            )
        before = (last.created_at, last.id)
    return await repository.list_deliveries(
        session, row.id, status=status, before=before, limit=limit
    )


async def redeliver(
    session: AsyncSession, principal: Principal, subscription_id: str, delivery_id: str
) -> WebhookDelivery:
    """A new delivery of the same event (same body and event id, a new delivery id), sent
    whatever became of the original, to the subscription's current URL."""
    row = await get_subscription(session, principal, subscription_id)
    original = await repository.get_subscription_delivery(session, row.id, delivery_id[:32])
    if original is None:
        raise NotFound("This webhook has no delivery with this id.", code="delivery_not_found")
    if not row.enabled:
        raise Conflict(
            "This webhook subscription is disabled. Enable it (PATCH enabled=true) first.",
            code="webhook_disabled",
        )
    again = WebhookDelivery(
        id=uuid.uuid4().hex,
        subscription_id=row.id,
        event=original.event,
        payload=original.payload,
        redelivery_of=original.id,
        attempts=[],
    )
    await repository.add(session, again)
    await record(
        session,
        principal,
        "webhook.redelivered",
        webhook_id=row.id,
        delivery_id=original.id,
        new_delivery_id=again.id,
    )
    return again
