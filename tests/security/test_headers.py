from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from clinscribe.security.headers import DEFAULT_CSP, DOCS_CSP, SecurityHeadersMiddleware

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

COMMON = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), geolocation=(), microphone=(self)",
    "content-security-policy": DEFAULT_CSP,
}
CHUNKS = [b"data: one\n\n", b"data: two\n\n", b"data: three\n\n"]


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/api/items")
    async def items() -> dict[str, int]:
        return {"count": 2}

    @app.get("/api/cached")
    async def cached() -> JSONResponse:
        return JSONResponse({}, headers={"Cache-Control": "private, max-age=5"})

    @app.get("/page", response_class=HTMLResponse)
    async def page() -> str:
        return "<h1>clinscribe</h1>"

    @app.get("/framed")
    async def framed() -> JSONResponse:
        return JSONResponse({}, headers={"X-Frame-Options": "SAMEORIGIN"})

    @app.get("/api/events")
    async def events() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for chunk in CHUNKS:
                yield chunk

        return StreamingResponse(chunks(), media_type="text/event-stream")

    app.add_middleware(SecurityHeadersMiddleware, hsts_max_age_s=600)
    return app


def client(base_url: str = "http://testserver") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app()), base_url=base_url)


def assert_common_headers(response: httpx.Response) -> None:
    for name, value in COMMON.items():
        assert response.headers.get(name) == value, name


async def test_headers_on_json_html_and_404() -> None:
    async with client() as c:
        for path, status in [("/api/items", 200), ("/page", 200), ("/missing", 404)]:
            response = await c.get(path)
            assert response.status_code == status
            assert_common_headers(response)


async def test_streaming_response_gets_headers_and_every_chunk() -> None:
    async with client() as c, c.stream("GET", "/api/events") as response:
        received = [chunk async for chunk in response.aiter_raw()]
        assert_common_headers(response)
    assert b"".join(received) == b"".join(CHUNKS)


async def test_streaming_chunks_are_forwarded_before_the_stream_ends() -> None:
    """A buffering middleware would hold chunk one until the generator finished: deadlock."""
    first_chunk_sent = asyncio.Event()
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": CHUNKS[0], "more_body": True})
        await asyncio.wait_for(first_chunk_sent.wait(), timeout=2)
        await send({"type": "http.response.body", "body": CHUNKS[1], "more_body": False})

    async def record(message: Message) -> None:
        messages.append(message)
        if message.get("body") == CHUNKS[0]:
            first_chunk_sent.set()

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope: Scope = {"type": "http", "path": "/api/events", "scheme": "http", "headers": []}
    await SecurityHeadersMiddleware(app)(scope, receive, record)

    assert [m.get("body") for m in messages[1:]] == CHUNKS[:2]
    assert (b"x-frame-options", b"DENY") in messages[0]["headers"]


async def test_header_set_by_the_app_is_kept() -> None:
    async with client() as c:
        framed = await c.get("/framed")
        cached = await c.get("/api/cached")
    assert framed.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert framed.headers["content-security-policy"] == DEFAULT_CSP
    assert cached.headers.get_list("cache-control") == ["private, max-age=5"]


async def test_hsts_only_over_https() -> None:
    async with client("https://testserver") as c:
        secure = await c.get("/page")
    async with client() as c:
        plain = await c.get("/page")
    assert secure.headers["strict-transport-security"] == "max-age=600; includeSubDomains"
    assert "strict-transport-security" not in plain.headers


async def test_no_store_only_on_api_paths() -> None:
    async with client() as c:
        api = await c.get("/api/items")
        api_missing = await c.get("/api/nothing-here")
        page = await c.get("/page")
    assert api.headers["cache-control"] == "no-store"
    assert api_missing.headers["cache-control"] == "no-store"
    assert "cache-control" not in page.headers


def directive(csp: str, name: str) -> list[str]:
    for part in csp.split(";"):
        words = part.split()
        if words and words[0] == name:
            return words[1:]
    raise AssertionError(f"{name} missing from {csp!r}")


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def test_docs_pages_get_a_csp_that_allows_what_they_load() -> None:
    async with client() as c:
        swagger = await c.get("/docs")
        redoc = await c.get("/redoc")
        oauth_redirect = await c.get("/docs/oauth2-redirect")
    for response in (swagger, redoc, oauth_redirect):
        assert response.headers["content-security-policy"] == DOCS_CSP
        assert_common_headers_except_csp(response)
    assert directive(DOCS_CSP, "frame-ancestors") == ["'none'"]

    # Every external resource the installed FastAPI pages reference must be allowed.
    for html in (swagger.text, redoc.text):
        for url in re.findall(r'<script src="([^"]+)"', html):
            assert origin(url) in directive(DOCS_CSP, "script-src"), url
        for url in re.findall(r'<link[^>]*rel="stylesheet"[^>]*>', html):
            href = re.search(r'href="([^"]+)"', url)
            assert href is not None
            assert origin(href.group(1)) in directive(DOCS_CSP, "style-src"), url
        for url in re.findall(r'<link rel="shortcut icon" href="([^"]+)"', html):
            assert origin(url) in directive(DOCS_CSP, "img-src"), url
    assert "<script>" in swagger.text
    assert "'unsafe-inline'" in directive(DOCS_CSP, "script-src")


def assert_common_headers_except_csp(response: httpx.Response) -> None:
    for name, value in COMMON.items():
        if name != "content-security-policy":
            assert response.headers.get(name) == value, name


async def test_relaxed_csp_is_only_for_docs_paths() -> None:
    async with client() as c:
        near_misses = [await c.get(path) for path in ("/docs/", "/docsx", "/api/docs", "/page")]
    for response in near_misses:
        assert response.headers["content-security-policy"] == DEFAULT_CSP
    assert "cdn.jsdelivr.net" not in DEFAULT_CSP
    assert "'unsafe-inline'" not in DEFAULT_CSP
