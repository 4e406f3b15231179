"""Live status for Server-Sent Events.

Every status/stage change is a row in ``consultation_events`` (written in the same
transaction as the change). The stream first sends the current status, then every later
event in order, polling every ``events_poll_interval_s`` (0.2 s by default). Reading the app
database keeps this correct when the API and the workers are different processes, and no
stage is skipped however fast it was.

All the streams of one consultation in one process (one event loop) share one poller: a
clinic with 200 open pages costs one query pair per consultation and interval, not 200. The
poller starts with the first subscriber, stops when the last one leaves, and hands every
subscriber the new events and the latest row; each subscriber keeps its own position, so it
sends exactly what it would have read alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from clinscribe.consultations import repository
from clinscribe.consultations.schemas import ConsultationOut
from clinscribe.db.engine import Database
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


@dataclass(eq=False)
class _Subscriber:
    """What the poller has read for one stream and the stream has not yet sent."""

    events: list[ConsultationEvent] = field(default_factory=list)
    row: Consultation | None = None
    deleted: bool = False
    error: BaseException | None = None
    polled: asyncio.Event = field(default_factory=asyncio.Event)


class _Poller:
    """Polls one consultation's events for every stream of it on this event loop."""

    def __init__(self, db: Database, consultation_id: str, interval_s: float) -> None:
        self.db = db
        self.consultation_id = consultation_id
        self.interval_s = interval_s
        self.subscribers: set[_Subscriber] = set()
        self.loop = asyncio.get_running_loop()
        # The lowest event id any subscriber had read when it joined (None: nobody yet). A
        # subscriber never loses an event between its own read and the next poll; events it
        # already sent come again and it skips them by id.
        self.after_id: int | None = None
        self.task = asyncio.create_task(self._run(), name=f"events {consultation_id}")

    def start_after(self, event_id: int) -> None:
        self.after_id = event_id if self.after_id is None else min(self.after_id, event_id)

    async def _run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.interval_s)
                if self.after_id is None:
                    continue
                async with self.db.session() as session:
                    events = await repository.events_after(
                        session, self.consultation_id, self.after_id
                    )
                    row = await repository.get_consultation(session, self.consultation_id)
                if events:
                    self.after_id = events[-1].id
                # Streams wake only for news: 200 open pages must not cost 200 wake-ups
                # per interval while nothing happens.
                news = bool(events) or row is None or row.is_terminal
                for subscriber in self.subscribers:
                    subscriber.events.extend(events)
                    subscriber.row = row
                    subscriber.deleted = row is None
                    if news:
                        subscriber.polled.set()
        except Exception as error:  # the database failed: every stream ends with it
            _forget(self)
            for subscriber in self.subscribers:
                subscriber.error = error
                subscriber.polled.set()


_pollers: dict[tuple[Database, str], _Poller] = {}


def _forget(poller: _Poller) -> None:
    key = (poller.db, poller.consultation_id)
    if _pollers.get(key) is poller:
        del _pollers[key]


def _join(runtime: Runtime, consultation_id: str) -> tuple[_Poller, _Subscriber]:
    db = runtime.db
    poller = _pollers.get((db, consultation_id))
    if poller is None or poller.task.done() or poller.loop is not asyncio.get_running_loop():
        poller = _Poller(db, consultation_id, runtime.settings.events_poll_interval_s)
        _pollers[(db, consultation_id)] = poller
    subscriber = _Subscriber()
    poller.subscribers.add(subscriber)
    return poller, subscriber


def _leave(poller: _Poller, subscriber: _Subscriber) -> None:
    poller.subscribers.discard(subscriber)
    if not poller.subscribers:
        _forget(poller)
        poller.task.cancel()


async def status_events(
    runtime: Runtime,
    consultation_id: str,
    is_disconnected: Callable[[], Awaitable[bool]],
    *,
    max_duration_s: float = 6 * 3600,
) -> AsyncIterator[str]:
    """Yield SSE frames until the consultation reaches a terminal status (or the client leaves)."""
    # Join before the first read: every event after that read reaches us through the poller.
    poller, subscriber = _join(runtime, consultation_id)
    try:
        async with runtime.db.session() as session:
            # Event id first, then the row: a change committed in between is sent twice
            # (harmless) rather than never.
            last_id = await repository.last_event_id(session, consultation_id)
            row = await repository.get_consultation(session, consultation_id)
        if row is None:
            return
        poller.start_after(last_id)
        yield "retry: 2000\n\n"
        yield format_event("status", _payload(row, None))
        if row.is_terminal:
            return
        last_sent = time.monotonic()
        deadline = time.monotonic() + max_duration_s
        while (left := deadline - time.monotonic()) > 0:
            # Between changes, wake for the keep-alive (and a disconnect check) only. The
            # server notices a client that left at once anyway (the response listens for it).
            quiet_s = max(0.0, KEEPALIVE_S - (time.monotonic() - last_sent))
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that lands as the wait ends, and the stream would outlive its client.
                async with asyncio.timeout(min(left, quiet_s)):
                    await subscriber.polled.wait()
            except TimeoutError:
                if deadline - time.monotonic() <= 0:
                    return
                last_sent = time.monotonic()
                yield ": keep-alive\n\n"
                if await is_disconnected():
                    return
                continue
            subscriber.polled.clear()
            if subscriber.error is not None:
                raise subscriber.error
            if subscriber.deleted:
                yield format_event("deleted", f'{{"id": "{consultation_id}"}}')
                return
            row = subscriber.row
            assert row is not None
            events = [event for event in subscriber.events if event.id > last_id]
            subscriber.events.clear()
            for event in events:
                last_id = event.id
                last_sent = time.monotonic()
                yield format_event("status", _payload(row, event))
                if event.status in TERMINAL_STATUSES:
                    return
            if not events and row.is_terminal:  # belt and braces: never outlive the work
                yield format_event("status", _payload(row, None))
                return
            if await is_disconnected():
                return
    finally:
        _leave(poller, subscriber)
