"""HTTP endpoints for webhook subscriptions, their delivery log and redelivery (clinic admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from clinscribe.auth.dependencies import AdminDep, RuntimeDep, SessionDep
from clinscribe.models import DeliveryStatus
from clinscribe.webhooks import service
from clinscribe.webhooks.schemas import (
    DeliveryOut,
    DeliveryPage,
    NewWebhookOut,
    WebhookIn,
    WebhookOut,
    WebhookPatch,
)

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


@router.get("", response_model=list[WebhookOut], summary="The clinic's webhook subscriptions")
async def list_webhooks(principal: AdminDep, session: SessionDep) -> list[WebhookOut]:
    return [WebhookOut.of(row) for row in await service.list_subscriptions(session, principal)]


@router.post(
    "",
    status_code=201,
    response_model=NewWebhookOut,
    summary="Subscribe a URL to events (the signing secret is in this response only)",
)
async def create_webhook(
    body: WebhookIn, principal: AdminDep, session: SessionDep, runtime: RuntimeDep
) -> NewWebhookOut:
    created = await service.subscribe(
        session,
        principal,
        runtime.settings.webhooks,
        url=body.url,
        events=body.events,
        include_phi=body.include_phi,
        description=body.description,
        enabled=body.enabled,
    )
    return NewWebhookOut(**WebhookOut.of(created.row).model_dump(), secret=created.secret)


@router.get("/{webhook_id}", response_model=WebhookOut, summary="One webhook subscription")
async def get_webhook(webhook_id: str, principal: AdminDep, session: SessionDep) -> WebhookOut:
    return WebhookOut.of(await service.get_subscription(session, principal, webhook_id))


@router.patch(
    "/{webhook_id}",
    response_model=WebhookOut,
    summary="Change the URL, events, patient data opt-in or description; disable or enable",
)
async def update_webhook(
    webhook_id: str,
    body: WebhookPatch,
    principal: AdminDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> WebhookOut:
    changes = service.Changes(
        url=body.url,
        events=body.events,
        include_phi=body.include_phi,
        description=body.description,
        enabled=body.enabled,
    )
    row = await service.update(session, principal, runtime.settings.webhooks, webhook_id, changes)
    return WebhookOut.of(row)


@router.delete(
    "/{webhook_id}", status_code=204, summary="Delete a subscription and its delivery log"
)
async def delete_webhook(webhook_id: str, principal: AdminDep, session: SessionDep) -> Response:
    await service.delete(session, principal, webhook_id)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    summary="The delivery log, newest first: every attempt with its answer",
)
async def list_deliveries(
    webhook_id: str,
    principal: AdminDep,
    session: SessionDep,
    status: DeliveryStatus | None = None,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DeliveryPage:
    rows = await service.list_deliveries(
        session, principal, webhook_id, status=status, cursor=cursor, limit=limit + 1
    )
    items = [DeliveryOut.of(row) for row in rows[:limit]]
    next_cursor = items[-1].id if len(rows) > limit and items else None
    return DeliveryPage(items=items, next_cursor=next_cursor)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryOut,
    summary="Send a delivery's event again, as a new delivery",
)
async def redeliver(
    webhook_id: str, delivery_id: str, principal: AdminDep, session: SessionDep
) -> DeliveryOut:
    return DeliveryOut.of(await service.redeliver(session, principal, webhook_id, delivery_id))
