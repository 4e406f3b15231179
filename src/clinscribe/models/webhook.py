"""Webhooks: a clinic's subscriptions, the events they are sent, and every delivery attempt.

The deliveries table is an outbox: a delivery row is written in the same transaction as the
change it reports, so a crash can never lose an event; a dispatcher then starts one durable
workflow per row (``dispatched_at``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from clinscribe.db.base import Base, UtcDateTime, utcnow
from clinscribe.db.encrypted import EncryptedJSON, EncryptedText


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinics.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    include_phi: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(String(200), default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Why clinscribe disabled it (the receiver answered 410 Gone); None when an admin did.
    disabled_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    # Encrypted, not hashed: every delivery is signed with it.
    secret: Mapped[str] = mapped_column(EncryptedText("webhook_subscriptions.secret"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class WebhookEvent(Base):
    """Something that happened, once; its id is derived from what happened, so reporting the
    same thing twice (a step re-run after a crash) finds the existing row."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinics.id"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    # No foreign key: the event stays in the delivery log after the consultation is deleted.
    consultation_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event sent to one subscription: retried until delivered or given up."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id"), index=True)
    # The request body; it holds patient data for subscriptions that opted in.
    payload: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON("webhook_deliveries.payload"))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    redelivery_of: Mapped[str | None] = mapped_column(String(32), default=None)
    failure_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # When a workflow was started for it; None rows are picked up by the dispatcher.
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None, index=True)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)

    event: Mapped[WebhookEvent] = relationship(lazy="joined")
    attempts: Mapped[list[WebhookAttempt]] = relationship(
        order_by="WebhookAttempt.number",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
    )


class WebhookAttempt(Base):
    """One POST (or a refusal to send it). ``finished_at`` None: still running, or cut off by
    a crash (shown as ``interrupted`` once the delivery resumes)."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    duration_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(String(32), default=None)
