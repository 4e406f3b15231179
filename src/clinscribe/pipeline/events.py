"""Live status for Server-Sent Events.

Every status/stage change is a row in ``consultation_events`` (written in the same
transaction as the change). The stream first sends the current status, then every later
event in order, polling every ``events_poll_interval_s`` (0.2 s by default). Reading the app
database keeps this correct when the API and the workers are different processes, and no
stage is skipped however fast it was.

All the streams of one process (one event loop) share one poller. Each interval it reads the
new events of every consultation that anyone is watching in one query, and which of them
still exist in another; rows are read only for consultations with news. So 200 open pages
over 50 consultations cost two queries per interval, not 200 or 100. The poller starts with
the first stream and stops with the last. It hands each consultation's streams the new
events and the latest row; each stream keeps its own position, so it sends exactly what it
would have read alone.
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
IDS_PER_QUERY = 500  # consultations per IN list: far below any database's parameter limit


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


@dataclass(eq=False)
class _Watch:
    """The streams of one consultation."""

    subscribers: set[_Subscriber] = field(default_factory=set)
    # The lowest event id any stream had read when it joined (None: none has read yet). A
    # stream never loses an event between its own read and the next poll; events it already
    # sent come again and it skips them by id.
    after_id: int | None = None

    def start_after(self, event_id: int) -> None:
        self.after_id = event_id if self.after_id is None else min(self.after_id, event_id)


class _Poller:
    """Polls the events of every watched consultation for every stream on this event loop."""

    def __init__(self, db: Database, interval_s: float) -> None:
        self.db = db
        self.interval_s = interval_s
        self.watches: dict[str, _Watch] = {}
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.create_task(self._run(), name="consultation events")

    async def _run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.interval_s)
                watched = [(cid, w) for cid, w in self.watches.items() if w.after_id is not None]
                for start in range(0, len(watched), IDS_PER_QUERY):
                    await self._poll(dict(watched[start : start + IDS_PER_QUERY]))
        except Exception as error:  # the database failed: every stream ends with it
            _forget(self)
            for watch in self.watches.values():
                for subscriber in watch.subscribers:
                    subscriber.error = error
                    subscriber.polled.set()

    async def _poll(self, watched: dict[str, _Watch]) -> None:
        lowest = min(w.after_id for w in watched.values() if w.after_id is not None)
        async with self.db.session() as session:
            found = await repository.events_after(session, watched.keys(), lowest)
            statuses = await repository.statuses_of(session, watched.keys())
            events: dict[str, list[ConsultationEvent]] = {}
            for event in found:  # in id order; the lowest position read them all
                after_id = watched[event.consultation_id].after_id
                if after_id is not None and event.id > after_id:
                    events.setdefault(event.consultation_id, []).append(event)
            # Streams wake only for news: 200 open pages must not cost 200 wake-ups per
            # interval while nothing happens.
            news = {
                cid
                for cid in watched
                if cid in events or cid not in statuses or statuses[cid] in TERMINAL_STATUSES
            }
            alive = news & statuses.keys()
            rows = await repository.get_consultations(session, alive) if alive else {}
        for cid in news:
            watch = watched[cid]
            new = events.get(cid, [])
            if new:
                watch.after_id = new[-1].id
            row = rows.get(cid)
            for subscriber in watch.subscribers:
                subscriber.events.extend(new)
                subscriber.row = row
                subscriber.deleted = row is None
                subscriber.polled.set()


_pollers: dict[Database, _Poller] = {}


def _forget(poller: _Poller) -> None:
    if _pollers.get(poller.db) is poller:
        del _pollers[poller.db]


def _join(runtime: Runtime, consultation_id: str) -> tuple[_Poller, _Watch, _Subscriber]:
    db = runtime.db
    poller = _pollers.get(db)
    if poller is None or poller.task.done() or poller.loop is not asyncio.get_running_loop():
        poller = _Poller(db, runtime.settings.events_poll_interval_s)
        _pollers[db] = poller
    watch = poller.watches.setdefault(consultation_id, _Watch())
    subscriber = _Subscriber()
    watch.subscribers.add(subscriber)
    return poller, watch, subscriber


def _leave(poller: _Poller, consultation_id: str, watch: _Watch, subscriber: _Subscriber) -> None:
    watch.subscribers.discard(subscriber)
    if not watch.subscribers and poller.watches.get(consultation_id) is watch:
        del poller.watches[consultation_id]
    if not poller.watches:
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
    poller, watch, subscriber = _join(runtime, consultation_id)
    try:
        async with runtime.db.session() as session:
            # Event id first, then the row: a change committed in between is sent twice
            # (harmless) rather than never.
            last_id = await repository.last_event_id(session, consultation_id)
            row = await repository.get_consultation(session, consultation_id)
        if row is None:
            return
        watch.start_after(last_id)
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
        _leave(poller, consultation_id, watch, subscriber)
