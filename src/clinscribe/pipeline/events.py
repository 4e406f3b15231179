"""Live status for Server-Sent Events.

Every status/stage change is a row in ``consultation_events`` (written in the same
transaction as the change). The stream first sends the current status, then every later
event in order, polling every ``events_poll_interval_s`` (0.2 s by default). Reading the app
database keeps this correct when the API and the workers are different processes, and no
stage is skipped however fast it was.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from clinscribe.consultations import repository
from clinscribe.consultations.schemas import ConsultationOut
from clinscribe.models import Consultation, ConsultationEvent
from clinscribe.models.consultation import TERMINAL_STATUSES
from clinscribe.pipeline.runtime import Runtime

KEEPALIVE_S = 15.0


def format_event(event: str, data: str) -> str:
    return f"event: {event}\ndata: {data}\n\n"


def _payload(row: Consultation, event: ConsultationEvent | None) -> str:
    out = ConsultationOut.of(row)
    if event is not None:
        # The row holds the latest state; the event says what changed at that moment.
        update: dict[str, object] = {
            "status": event.status,
            "stage": event.stage,
            "updated_at": event.created_at,
        }
        if event.status != "failed":
            update["error"] = None
        if event.status != "completed":
            update["completed_at"] = None
        out = out.model_copy(update=update)
    return out.model_dump_json()


async def status_events(
    runtime: Runtime,
    consultation_id: str,
    is_disconnected: Callable[[], Awaitable[bool]],
    *,
    max_duration_s: float = 6 * 3600,
) -> AsyncIterator[str]:
    """Yield SSE frames until the consultation reaches a terminal status (or the client leaves)."""
    interval = runtime.settings.events_poll_interval_s
    async with runtime.db.session() as session:
        # Event id first, then the row: a change committed in between is sent twice (harmless)
        # rather than never.
        last_id = await repository.last_event_id(session, consultation_id)
        row = await repository.get_consultation(session, consultation_id)
    if row is None:
        return
    yield "retry: 2000\n\n"
    yield format_event("status", _payload(row, None))
    if row.is_terminal:
        return
    last_sent = time.monotonic()
    deadline = time.monotonic() + max_duration_s
    while time.monotonic() < deadline:
        await asyncio.sleep(interval)
        async with runtime.db.session() as session:
            events = await repository.events_after(session, consultation_id, last_id)
            row = await repository.get_consultation(session, consultation_id)
        if row is None:
            yield format_event("deleted", f'{{"id": "{consultation_id}"}}')
            return
        for event in events:
            last_id = event.id
            last_sent = time.monotonic()
            yield format_event("status", _payload(row, event))
            if event.status in TERMINAL_STATUSES:
                return
        if not events and row.is_terminal:  # belt and braces: never outlive the work
            yield format_event("status", _payload(row, None))
            return
        if time.monotonic() - last_sent > KEEPALIVE_S:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"
        if await is_disconnected():
            return
