"""Live status for Server-Sent Events.

The stream reads the consultation row every ``events_poll_interval_s`` (0.2 s by default) and
sends an event whenever status or stage changes. Reading the app database, rather than an
in-memory bus, keeps it correct when the API and the workers are different processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from clinscribe.consultations import repository
from clinscribe.consultations.schemas import ConsultationOut
from clinscribe.pipeline.runtime import Runtime

KEEPALIVE_S = 15.0


def format_event(event: str, data: str) -> str:
    return f"event: {event}\ndata: {data}\n\n"


async def status_events(
    runtime: Runtime,
    consultation_id: str,
    is_disconnected: Callable[[], Awaitable[bool]],
    *,
    max_duration_s: float = 6 * 3600,
) -> AsyncIterator[str]:
    """Yield SSE frames until the consultation reaches a terminal status (or the client leaves)."""
    interval = runtime.settings.events_poll_interval_s
    last: tuple[str, str | None, str | None] | None = None
    last_sent = time.monotonic()
    deadline = time.monotonic() + max_duration_s
    yield "retry: 2000\n\n"
    while time.monotonic() < deadline:
        async with runtime.db.session() as session:
            row = await repository.get_consultation(session, consultation_id)
        if row is None:
            yield format_event("deleted", f'{{"id": "{consultation_id}"}}')
            return
        current = (row.status, row.stage, row.error_code)
        if current != last:
            last = current
            last_sent = time.monotonic()
            yield format_event("status", ConsultationOut.of(row).model_dump_json())
            if row.is_terminal:
                return
        elif time.monotonic() - last_sent > KEEPALIVE_S:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"
        if await is_disconnected():
            return
        await asyncio.sleep(interval)
