"""The live status stream (SSE) in process against a real database (SQLite, or PostgreSQL in
the Postgres pass): what one stream sends (current status, then every later change in order,
deleted, terminal close, keep-alive, max duration, disconnect), and that any number of
streams of any number of consultations share one poller: one events query per interval,
started with the first stream, gone with the last."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import event

from clinscribe.auth import service as accounts
from clinscribe.consultations import repository
from clinscribe.db.engine import Database
from clinscribe.db.migrate import upgrade
from clinscribe.models import Consultation, ConsultationStatus
from clinscribe.pipeline import events as sse
from clinscribe.pipeline.runtime import Runtime

INTERVAL_S = 0.05
STAGES = ["preparing_audio", "transcribing", "writing_note", "verifying_note"]


@pytest.fixture
async def db(app_database_url: str) -> AsyncIterator[Database]:
    upgrade(app_database_url)
    database = Database(app_database_url)
    try:
        yield database
    finally:
        await database.dispose()


def _runtime(db: Database) -> Runtime:
    settings = SimpleNamespace(events_poll_interval_s=INTERVAL_S)
    return cast(Runtime, SimpleNamespace(db=db, settings=settings))


async def _consultation(db: Database) -> str:
    async with db.session() as session:
        clinic = await accounts.get_or_create_clinic(session, "Stream Clinic")
        row = Consultation(
            id=uuid.uuid4().hex,
            clinic_id=clinic.id,
            status=ConsultationStatus.QUEUED,
            language="en",
            template="soap",
            stt_provider="openai",
        )
        await repository.add_consultation(session, row)  # with its "queued" event
    return row.id


async def _progress(db: Database, cid: str, status: str, stage: str | None) -> None:
    async with db.session() as session:
        await repository.update_progress(
            session, cid, status=status, stage=stage, completed=status == "completed"
        )


async def _never_disconnected() -> bool:
    return False


def _parse(frames: list[str]) -> list[tuple[str, Any]]:
    """(event name, parsed data) per frame; comments as ("comment", text)."""
    parsed: list[tuple[str, Any]] = []
    for frame in frames:
        if frame.startswith(":"):
            parsed.append(("comment", frame.strip()))
        elif frame.startswith("event:"):
            name, data = frame.strip().split("\n")
            parsed.append((name.split(": ", 1)[1], json.loads(data.split(": ", 1)[1])))
    return parsed


async def _listen(
    runtime: Runtime,
    cid: str,
    *,
    is_disconnected: Callable[[], Awaitable[bool]] = _never_disconnected,
    **kwargs: float,
) -> list[tuple[str, Any]]:
    frames = [f async for f in sse.status_events(runtime, cid, is_disconnected, **kwargs)]
    return _parse(frames)


def _stages(parsed: list[tuple[str, Any]]) -> list[tuple[str, str | None]]:
    return [(body["status"], body["stage"]) for name, body in parsed if name == "status"]


async def _run_pipeline(db: Database, cid: str, pause_s: float = INTERVAL_S * 1.5) -> None:
    for stage in STAGES:
        await asyncio.sleep(pause_s)
        await _progress(db, cid, "processing", stage)
    await asyncio.sleep(pause_s)
    await _progress(db, cid, "completed", "finalizing")


EXPECTED = [
    ("queued", None),
    *(("processing", stage) for stage in STAGES),
    ("completed", "finalizing"),
]


async def test_current_status_then_every_change_in_order_then_close(db: Database) -> None:
    cid = await _consultation(db)
    listener = asyncio.create_task(_listen(_runtime(db), cid))
    await asyncio.sleep(INTERVAL_S / 2)
    await _run_pipeline(db, cid, pause_s=0.0)  # all changes inside one interval: none lost
    parsed = await asyncio.wait_for(listener, 10)
    assert _stages(parsed) == EXPECTED
    assert parsed[-1][1]["completed_at"] is not None
    assert all(body["completed_at"] is None for _, body in parsed[:-1])
    assert sse._pollers == {}


async def test_finished_consultation_sends_its_status_once(db: Database) -> None:
    cid = await _consultation(db)
    await _progress(db, cid, "completed", "finalizing")
    frames = [f async for f in sse.status_events(_runtime(db), cid, _never_disconnected)]
    assert frames[0] == "retry: 2000\n\n"
    assert _stages(_parse(frames)) == [("completed", "finalizing")]
    assert sse._pollers == {}


async def test_missing_consultation_sends_nothing(db: Database) -> None:
    assert await _listen(_runtime(db), uuid.uuid4().hex) == []
    assert sse._pollers == {}


async def test_deleted_consultation_sends_deleted_and_closes(db: Database) -> None:
    cid = await _consultation(db)
    listener = asyncio.create_task(_listen(_runtime(db), cid))
    await asyncio.sleep(INTERVAL_S * 2)
    async with db.session() as session:
        await repository.delete_consultation(session, cid)
    parsed = await asyncio.wait_for(listener, 10)
    assert parsed == [("status", parsed[0][1]), ("deleted", {"id": cid})]


async def test_keep_alive_max_duration_and_disconnect(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = await _consultation(db)
    monkeypatch.setattr(sse, "KEEPALIVE_S", INTERVAL_S)
    parsed = await asyncio.wait_for(_listen(_runtime(db), cid, max_duration_s=0.5), 10)
    assert parsed[0][0] == "status"
    assert ("comment", ": keep-alive") in parsed

    calls = 0

    async def gone_after_two_checks() -> bool:
        nonlocal calls
        calls += 1
        return calls >= 2

    parsed = await asyncio.wait_for(
        _listen(_runtime(db), cid, is_disconnected=gone_after_two_checks), 10
    )
    assert calls == 2 and _stages(parsed) == [("queued", None)]
    assert sse._pollers == {}


async def test_many_streams_of_many_consultations_share_one_poll_per_interval(
    db: Database,
) -> None:
    cid = await _consultation(db)
    other = await _consultation(db)
    idle = [await _consultation(db) for _ in range(3)]  # watched, nothing happens to them
    runtime = _runtime(db)
    polls: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM consultation_events" in statement and "consultation_events.id >" in statement:
            polls.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    subscribers = 12  # within the connection pool: first reads never wait for one
    ready: list[str] = []

    async def listen(consultation_id: str) -> list[tuple[str, Any]]:
        frames = []
        async for frame in sse.status_events(runtime, consultation_id, _never_disconnected):
            frames.append(frame)
            if frame.startswith("event: status") and len(frames) == 2:  # after "retry:"
                ready.append(consultation_id)  # has sent its current status
        return _parse(frames)

    started = asyncio.get_running_loop().time()
    watched = [cid if i % 2 else other for i in range(subscribers - len(idle))] + idle
    listeners = [asyncio.create_task(listen(consultation_id)) for consultation_id in watched]
    try:
        # Every stream has sent the current status (first reads take a while on a busy
        # machine) before anything changes, so each must then send exactly the same changes.
        for _ in range(1000):
            if len(ready) == subscribers:
                break
            await asyncio.sleep(0.01)
        assert len(ready) == subscribers
        assert list(sse._pollers) == [db]  # one poller, not one per stream or consultation
        assert set(sse._pollers[db].watches) == {cid, other, *idle}
        await asyncio.gather(_run_pipeline(db, cid), _run_pipeline(db, other))
        for consultation_id in idle:
            await _progress(db, consultation_id, "cancelled", None)
        results = await asyncio.wait_for(asyncio.gather(*listeners), 10)
    finally:  # a failure must not leave streams running into the loop's teardown
        for listener in listeners:
            listener.cancel()
        await asyncio.wait(listeners, timeout=10)
    elapsed = asyncio.get_running_loop().time() - started
    event.remove(db.engine.sync_engine, "before_cursor_execute", count)

    busy = subscribers - len(idle)
    assert all(_stages(parsed) == EXPECTED for parsed in results[:busy])
    assert all(
        _stages(parsed) == [("queued", None), ("cancelled", None)] for parsed in results[busy:]
    )
    # One query per interval for all of them (alone, each stream would poll by itself).
    assert len(polls) <= elapsed / INTERVAL_S + 2, (len(polls), elapsed)
    assert sse._pollers == {}


async def test_a_late_stream_joins_the_running_poller_without_losing_changes(
    db: Database,
) -> None:
    cid = await _consultation(db)
    runtime = _runtime(db)
    early = asyncio.create_task(_listen(runtime, cid))
    await asyncio.sleep(INTERVAL_S * 2)
    await _progress(db, cid, "processing", "preparing_audio")
    await asyncio.sleep(INTERVAL_S * 2)
    poller = sse._pollers[db]
    late = asyncio.create_task(_listen(runtime, cid))
    await _progress(db, cid, "processing", "transcribing")  # may land before its first read
    await asyncio.sleep(INTERVAL_S * 2)
    assert sse._pollers[db] is poller and len(poller.watches[cid].subscribers) == 2
    await _progress(db, cid, "completed", "finalizing")
    early_parsed, late_parsed = await asyncio.wait_for(asyncio.gather(early, late), 10)
    assert _stages(early_parsed) == [
        ("queued", None),
        ("processing", "preparing_audio"),
        ("processing", "transcribing"),
        ("completed", "finalizing"),
    ]
    late_stages = _stages(late_parsed)
    # Its first frame is the status when it read; then everything after, in order.
    assert late_stages[-2:] == [("processing", "transcribing"), ("completed", "finalizing")]
    assert late_stages[0] in {("processing", "preparing_audio"), ("processing", "transcribing")}
    assert poller.task.cancelled() or poller.task.done()
    assert sse._pollers == {}


async def test_a_stream_that_is_closed_early_leaves_the_poller(db: Database) -> None:
    cid = await _consultation(db)
    runtime = _runtime(db)
    stream = sse.status_events(runtime, cid, _never_disconnected)
    assert (await anext(stream)).startswith("retry")
    assert (await anext(stream)).startswith("event: status")
    poller = sse._pollers[db]
    await stream.aclose()  # what the server does when the client goes away mid-stream
    await asyncio.sleep(0)
    assert sse._pollers == {} and poller.task.cancelled()


async def test_a_database_error_ends_every_stream_of_the_poller(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = await _consultation(db)
    runtime = _runtime(db)
    listeners = [asyncio.create_task(_listen(runtime, cid)) for _ in range(3)]
    await asyncio.sleep(INTERVAL_S * 2)

    async def broken(*_args: object) -> None:
        raise RuntimeError("database unreachable")

    monkeypatch.setattr(repository, "events_after", broken)
    results = await asyncio.wait_for(asyncio.gather(*listeners, return_exceptions=True), 10)
    assert all(isinstance(r, RuntimeError) for r in results), results
    assert sse._pollers == {}
