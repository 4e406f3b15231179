"""Delivering webhooks durably: a chain of short DBOS workflows, one per attempt.

    dispatcher (every second, in workers)      deliveries not yet dispatched
        └─ enqueue deliver_webhook(delivery, hop=1)     workflow id webhook-<delivery>-1
               └─ step "webhook_attempt": check the address, POST, record the attempt
               └─ not delivered, not given up: enqueue hop 2 on the queue, delayed by the
                  backoff (30 s, 1 min, 2 min, ... at most CLINSCRIBE_WEBHOOKS__MAX_RETRY_S)

Each enqueue is checkpointed by the workflow that makes it, and workflow ids are derived from
the delivery, so a crash at any point neither loses the chain nor doubles it. A waiting
delivery is a delayed queue entry, not a sleeping workflow: it holds no queue slot and does
not keep a shutting-down worker waiting.

A crash during the POST re-runs the attempt after the restart: the receiver may get the same
delivery twice, with the same X-Clinscribe-Delivery header (the idempotency key). The cut-off
attempt shows in the delivery log as ``interrupted``.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from dbos import DBOS, SetEnqueueOptions, SetWorkflowID
from dbos._error import DBOSWorkflowCancelledError

from clinscribe import metrics
from clinscribe.config import WebhookSettings
from clinscribe.db.base import utcnow
from clinscribe.models import DeliveryStatus, WebhookDelivery
from clinscribe.pipeline.runtime import Runtime, get_runtime
from clinscribe.webhooks import repository
from clinscribe.webhooks.sending import Message, Outcome, send

log = structlog.get_logger("clinscribe.webhooks")

QUEUE_NAME = "webhooks"
WORKFLOW_NAME = "deliver_webhook"
_DISPATCH_BATCH = 100
_MAX_HOPS = 500  # attempts and bookkeeping failures of one delivery, whatever happens


def workflow_id(delivery_id: str, hop: int) -> str:
    return f"webhook-{delivery_id}-{hop}"


def retry_delay_s(attempt: int, settings: WebhookSettings) -> float:
    """Wait after failed attempt number ``attempt``: doubling from the first retry, capped,
    with +-10% jitter so many deliveries failing together do not retry in step."""
    base = min(settings.max_retry_s, settings.first_retry_s * 2.0 ** min(attempt - 1, 30))
    return min(settings.max_retry_s, base * random.uniform(0.9, 1.1))


def body_of(payload: dict[str, Any], public_base_url: str | None) -> bytes:
    """The request body: the stored payload with its links made absolute when the public
    address of this service is known."""
    if public_base_url:
        base = public_base_url.rstrip("/")
        data = dict(payload["data"])
        data["links"] = {name: base + path for name, path in data.get("links", {}).items()}
        payload = payload | {"data": data}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class _Prepared:
    message: Message
    attempt_id: int
    deadline: datetime


def _finish(delivery: WebhookDelivery, status: DeliveryStatus, reason: str | None) -> None:
    now = utcnow()
    delivery.status = status
    delivery.next_attempt_at = None
    if status == DeliveryStatus.DELIVERED:
        delivery.delivered_at = now
    else:
        delivery.failed_at, delivery.failure_reason = now, reason


async def _prepare(runtime: Runtime, delivery_id: str) -> _Prepared | str:
    """Record the attempt's start (so a crash leaves a trace); the finished status instead
    when there is nothing (more) to send."""
    settings = runtime.settings.webhooks
    async with runtime.db.session() as session:
        delivery = await repository.get_delivery(session, delivery_id)
        if delivery is None:
            return "deleted"  # its subscription was deleted
        if delivery.status != DeliveryStatus.PENDING:
            return delivery.status
        subscription = await repository.get_subscription_by_id(session, delivery.subscription_id)
        assert subscription is not None
        if not subscription.enabled:
            _finish(delivery, DeliveryStatus.FAILED, "subscription_disabled")
            return delivery.status
        now = utcnow()
        for earlier in delivery.attempts:
            if earlier.finished_at is None:  # cut off by a crash or a shutdown
                earlier.finished_at, earlier.error = now, "interrupted"
        delivery.first_attempt_at = delivery.first_attempt_at or now
        deadline = delivery.first_attempt_at + timedelta(hours=settings.give_up_after_h)
        if now > deadline:  # resumed late (the service was down for a long time)
            _finish(delivery, DeliveryStatus.FAILED, "gave_up")
            return delivery.status
        attempt = await repository.start_attempt(session, delivery, now)
        message = Message(
            url=subscription.url,
            secret=subscription.secret,
            body=body_of(delivery.payload, runtime.settings.public_base_url),
            event_type=delivery.event.type,
            delivery_id=delivery.id,
            attempt=attempt.number,
        )
        return _Prepared(message=message, attempt_id=attempt.id, deadline=deadline)


async def _record(runtime: Runtime, prepared: _Prepared, outcome: Outcome) -> tuple[str, float]:
    """Store the outcome; decide: delivered, failed, or try again after how long."""
    settings = runtime.settings.webhooks
    async with runtime.db.session() as session:
        delivery = await repository.get_delivery(session, prepared.message.delivery_id)
        attempt = await repository.get_attempt(session, prepared.attempt_id)
        if delivery is None or attempt is None:
            return "deleted", 0.0
        now = utcnow()
        attempt.finished_at, attempt.duration_ms = now, outcome.duration_ms
        attempt.status_code, attempt.error = outcome.status_code, outcome.error
        if delivery.status != DeliveryStatus.PENDING:
            return delivery.status, 0.0
        if outcome.delivered:
            _finish(delivery, DeliveryStatus.DELIVERED, None)
            return delivery.status, 0.0
        if outcome.status_code == 410:  # the receiver says this URL is gone for good
            subscription = await repository.get_subscription_by_id(
                session, delivery.subscription_id
            )
            if subscription is not None:
                subscription.enabled, subscription.disabled_reason = False, "receiver_gone"
            _finish(delivery, DeliveryStatus.FAILED, "receiver_gone")
            return delivery.status, 0.0
        wait_s = retry_delay_s(attempt.number, settings)
        if now + timedelta(seconds=wait_s) > prepared.deadline:
            _finish(delivery, DeliveryStatus.FAILED, "gave_up")
            return delivery.status, 0.0
        delivery.next_attempt_at = now + timedelta(seconds=wait_s)
        return delivery.status, wait_s


# Retried inside the step only when our own bookkeeping fails (a locked or unreachable
# database); a receiver's failure is an outcome, not an exception.
@DBOS.step(
    name="webhook_attempt",
    retries_allowed=True,
    max_attempts=5,
    interval_seconds=2.0,
    backoff_rate=3.0,
)
async def attempt_delivery(delivery_id: str) -> tuple[str, float]:
    """One attempt. Returns the delivery's status and, while pending, the wait before the
    next attempt."""
    runtime = get_runtime()
    prepared = await _prepare(runtime, delivery_id)
    if isinstance(prepared, str):
        return prepared, 0.0
    settings = runtime.settings.webhooks
    outcome = await send(
        prepared.message,
        allow_private=settings.allow_private_addresses,
        timeout_s=settings.timeout_s,
    )
    status, wait_s = await _record(runtime, prepared, outcome)
    log.info(
        "webhook attempt",
        delivery_id=delivery_id,
        attempt=prepared.message.attempt,
        status_code=outcome.status_code,
        error=outcome.error,
        duration_ms=outcome.duration_ms,
        delivery_status=status,
    )
    metrics.WEBHOOK_DELIVERIES.labels(status).inc()
    return status, wait_s


@DBOS.workflow(name=WORKFLOW_NAME, max_recovery_attempts=20)
async def deliver_webhook(delivery_id: str, hop: int) -> str:
    get_runtime().track_current_task()  # cut off at shutdown after the grace: resumes later
    try:
        status, wait_s = await attempt_delivery(delivery_id)
    except DBOSWorkflowCancelledError:
        raise
    except Exception as error:
        # Our database stayed unavailable through the step's retries: keep the delivery
        # pending and come back later, a bounded number of times.
        log.error("webhook attempt failed", delivery_id=delivery_id,
                  error_type=type(error).__name__)  # fmt: skip
        status, wait_s = DeliveryStatus.PENDING.value, get_runtime().settings.webhooks.max_retry_s
        if hop >= _MAX_HOPS:
            return "error"
    if status == DeliveryStatus.PENDING:
        with (
            SetWorkflowID(workflow_id(delivery_id, hop + 1)),
            SetEnqueueOptions(delay_seconds=wait_s),
        ):
            await DBOS.enqueue_workflow_async(QUEUE_NAME, deliver_webhook, delivery_id, hop + 1)
    return status


async def start(delivery_id: str) -> None:
    """Start delivering; harmless when already started (the workflow id is fixed)."""
    with SetWorkflowID(workflow_id(delivery_id, 1)):
        await DBOS.enqueue_workflow_async(QUEUE_NAME, deliver_webhook, delivery_id, 1)


async def dispatch(runtime: Runtime) -> int:
    """Start a workflow for every delivery written since the last pass; returns how many."""
    async with runtime.db.session() as session:
        delivery_ids = await repository.undispatched(session, _DISPATCH_BATCH)
    for delivery_id in delivery_ids:
        await start(delivery_id)
    if delivery_ids:
        # After the enqueues: a crash in between starts them again, which is harmless.
        async with runtime.db.session() as session:
            await repository.mark_dispatched(session, delivery_ids, utcnow())
    return len(delivery_ids)


async def dispatch_forever(runtime: Runtime, interval_s: float = 1.0) -> None:
    while True:
        try:
            while await dispatch(runtime) == _DISPATCH_BATCH:
                pass  # a backlog: keep going
        except Exception as error:  # keep the loop alive; the next pass retries
            log.error("webhook dispatch failed", error_type=type(error).__name__)
        await asyncio.sleep(interval_s)
