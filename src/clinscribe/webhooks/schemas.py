"""Request and response bodies for webhook subscriptions and their delivery log."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from clinscribe.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookSubscription
from clinscribe.webhooks.events import EventType


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookIn(_In):
    url: str = Field(
        min_length=1,
        max_length=2000,
        description="https:// (or http://) URL on a public address; see docs/webhooks.md",
    )
    events: list[EventType] = Field(min_length=1, max_length=10)
    include_phi: bool = Field(
        False,
        description="also send the patient reference, title and, for note.signed, the note text",
    )
    description: str | None = Field(None, max_length=200)
    enabled: bool = True


class WebhookPatch(_In):
    url: str | None = Field(None, min_length=1, max_length=2000)
    events: list[EventType] | None = Field(None, min_length=1, max_length=10)
    include_phi: bool | None = None
    description: str | None = Field(None, max_length=200, description="empty clears it")
    enabled: bool | None = None


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    include_phi: bool
    description: str | None
    enabled: bool
    disabled_reason: str | None = Field(
        description="receiver_gone: disabled by clinscribe after the receiver answered 410"
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: WebhookSubscription) -> WebhookOut:
        return cls(
            id=row.id,
            url=row.url,
            events=list(row.events),
            include_phi=row.include_phi,
            description=row.description,
            enabled=row.enabled,
            disabled_reason=row.disabled_reason,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class NewWebhookOut(WebhookOut):
    secret: str = Field(
        description="signs every delivery (X-Clinscribe-Signature): shown this once, store it"
    )


class AttemptOut(BaseModel):
    number: int
    at: datetime
    status_code: int | None = Field(description="the receiver's HTTP status, if it answered")
    error: str | None = Field(
        description="address_refused, host_unresolved, invalid_url, timeout, connection_error, "
        "tls_error, protocol_error or interrupted (a crash or shutdown cut the attempt off)"
    )
    duration_ms: int | None

    @classmethod
    def of(cls, row: WebhookAttempt) -> AttemptOut:
        return cls(
            number=row.number,
            at=row.started_at,
            status_code=row.status_code,
            error=row.error,
            duration_ms=row.duration_ms,
        )


class DeliveryOut(BaseModel):
    id: str = Field(description="sent as X-Clinscribe-Delivery, the same on every attempt")
    event_id: str = Field(description="the body's id: the same on a redelivery")
    event_type: str
    status: DeliveryStatus
    failure_reason: str | None = Field(
        description="gave_up, receiver_gone (410) or subscription_disabled"
    )
    redelivery_of: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None
    attempts: list[AttemptOut]

    @classmethod
    def of(cls, row: WebhookDelivery) -> DeliveryOut:
        return cls(
            id=row.id,
            event_id=row.event_id,
            event_type=row.event.type,
            status=DeliveryStatus(row.status),
            failure_reason=row.failure_reason,
            redelivery_of=row.redelivery_of,
            created_at=row.created_at,
            next_attempt_at=row.next_attempt_at,
            delivered_at=row.delivered_at,
            failed_at=row.failed_at,
            attempts=[AttemptOut.of(attempt) for attempt in row.attempts],
        )


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None
