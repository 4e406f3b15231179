from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.types import Message, Receive, Scope, Send

from clinscribe.security.body_limit import BodySizeLimitMiddleware

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

LIMIT = 1024


class Note(BaseModel):
    text: str


def make_app(handled: list[str]) -> FastAPI:
    """`handled` records each handler that ran to completion."""
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        body = await request.body()
        handled.append("echo")
        return {"received": len(body)}

    @app.post("/notes")
    async def notes(note: Note) -> dict[str, int]:
        handled.append("notes")
        return {"length": len(note.text)}

    @app.post("/api/consultations")
    async def upload(request: Request) -> dict[str, int]:
        body = await request.body()
        handled.append("upload")
        return {"received": len(body)}

    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=LIMIT,
        exempt_paths=lambda method, path: method == "POST" and path == "/api/consultations",
    )
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def chunked(total: int, chunk: int = 256) -> AsyncIterator[bytes]:
    for start in range(0, total, chunk):
        yield b"x" * min(chunk, total - start)


async def test_small_body_passes() -> None:
    handled: list[str] = []
    async with client(make_app(handled)) as c:
        response = await c.post("/echo", content=b"x" * LIMIT)
    assert response.status_code == 200
    assert response.json() == {"received": LIMIT}
    assert handled == ["echo"]


async def test_declared_length_over_limit_is_refused_before_the_app_runs() -> None:
    handled: list[str] = []
    async with client(make_app(handled)) as c:
        response = await c.post("/echo", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "request_too_large"
    assert "1 KB" in error["message"]
    assert "POST /api/consultations" in error["message"]
    assert handled == []


async def test_chunked_body_over_limit_is_cut_off() -> None:
    handled: list[str] = []
    async with client(make_app(handled)) as c:
        response = await c.post("/echo", content=chunked(LIMIT * 4))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert handled == []


async def test_chunked_body_under_limit_passes() -> None:
    handled: list[str] = []
    async with client(make_app(handled)) as c:
        response = await c.post("/echo", content=chunked(LIMIT - 10))
    assert response.status_code == 200
    assert response.json() == {"received": LIMIT - 10}


async def test_app_error_after_the_cut_is_replaced_by_413() -> None:
    # FastAPI answers 400 "error parsing the body" when reading a model body fails.
    handled: list[str] = []
    body = json.dumps({"text": "x" * (LIMIT * 2)}).encode()
    async with client(make_app(handled)) as c:
        response = await c.post(
            "/notes", content=chunked(len(body)), headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert handled == []


async def test_exempt_path_accepts_a_large_body() -> None:
    handled: list[str] = []
    async with client(make_app(handled)) as c:
        response = await c.post("/api/consultations", content=b"x" * (LIMIT * 10))
    assert response.status_code == 200
    assert response.json() == {"received": LIMIT * 10}
    assert handled == ["upload"]


async def call_raw(
    app: BodySizeLimitMiddleware, headers: list[tuple[bytes, bytes]], body_chunks: list[bytes]
) -> list[Message]:
    """Drive the middleware by hand, as a server would, recording what it sends."""
    pending: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(body_chunks) - 1}
        for i, chunk in enumerate(body_chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "root_path": "",
        "http_version": "1.1",
        "scheme": "http",
        "headers": headers,
    }
    await app(scope, receive, send)
    return sent


def status_and_body(sent: list[Message]) -> tuple[int, dict[str, dict[str, str]]]:
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return starts[0]["status"], json.loads(body)


async def test_malformed_content_length_is_a_bad_request() -> None:
    handled: list[str] = []
    app = BodySizeLimitMiddleware(make_app(handled), max_bytes=LIMIT)
    for value in (b"abc", b"-5", b"+5", b"1_0", b""):
        sent = await call_raw(app, [(b"content-length", value)], [b"hello"])
        status, body = status_and_body(sent)
        assert status == 400, value
        assert body["error"]["code"] == "bad_request"
    assert handled == []


async def test_conflicting_content_lengths_are_a_bad_request() -> None:
    app = BodySizeLimitMiddleware(make_app([]), max_bytes=LIMIT)
    headers = [(b"content-length", b"5"), (b"content-length", b"50")]
    status, body = status_and_body(await call_raw(app, headers, [b"hello"]))
    assert status == 400
    assert body["error"]["code"] == "bad_request"


async def test_lying_content_length_is_caught_while_reading() -> None:
    handled: list[str] = []
    app = BodySizeLimitMiddleware(make_app(handled), max_bytes=LIMIT)
    sent = await call_raw(app, [(b"content-length", b"10")], [b"x" * 600, b"x" * 600])
    status, body = status_and_body(sent)
    assert status == 413
    assert body["error"]["code"] == "request_too_large"
    assert handled == []


async def test_app_that_swallows_the_cut_and_answers_anyway_is_ignored() -> None:
    reads: list[str] = []

    async def stubborn_app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            while (await receive()).get("more_body"):
                pass
        except Exception:
            reads.append("cut")
        reads.append((await receive())["type"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = BodySizeLimitMiddleware(stubborn_app, max_bytes=LIMIT)
    sent = await call_raw(app, [], [b"x" * 600, b"x" * 600, b"x" * 600])
    status, body = status_and_body(sent)
    assert status == 413
    assert body["error"]["code"] == "request_too_large"
    assert reads == ["cut", "http.disconnect"]
