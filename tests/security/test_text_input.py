"""NUL characters in JSON text answer 422 on every database (PostgreSQL cannot store them)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.requests import Request

from clinscribe.security.text_input import NulInText, reject_nul_characters

pytestmark = pytest.mark.no_database


def _request(body: bytes, content_type: str = "application/json") -> Request:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    headers = [(b"content-type", content_type.encode())]
    return Request({"type": "http", "method": "PUT", "headers": headers}, receive)


@pytest.mark.parametrize(
    "payload",
    [
        {"sections": [{"key": "plan", "title": "Pl\x00an", "sentences": []}]},
        {"name": "x\x00"},
        {"nested": {"list": ["fine", {"deep": "\x00"}]}},
        {"key\x00": "value"},
    ],
)
async def test_nul_anywhere_in_json_text_is_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(NulInText) as refused:
        await reject_nul_characters(_request(json.dumps(payload).encode()))
    assert refused.value.status_code == 422
    assert "NUL character" in refused.value.message


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"title": "Plan", "note": "fine"}).encode(),
        json.dumps({"title": "a literal \\u0000 typed as text"}).encode(),  # backslash, not NUL
        b"{not json \\u0000",  # invalid JSON: FastAPI's own 422 says so
    ],
)
async def test_other_bodies_pass(body: bytes) -> None:
    await reject_nul_characters(_request(body))


async def test_non_json_bodies_are_not_read() -> None:
    await reject_nul_characters(_request(b"audio\x00bytes", "multipart/form-data; boundary=x"))


def _scoped(path: str, query: bytes = b"", body: bytes = b"", content_type: str = "") -> Request:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    headers = [(b"content-type", content_type.encode())] if content_type else []
    scope = {"type": "http", "method": "GET", "path": path, "query_string": query}
    return Request({**scope, "headers": headers}, receive)


@pytest.mark.parametrize(
    "request_",
    [
        _scoped("/api/consultations/ab\x00cd"),  # the path arrives percent-decoded
        _scoped("/api/consultations", b"q=a%00b"),
        _scoped(
            "/sign-in",
            body=b"email=dr%00%40x.org",
            content_type="application/x-www-form-urlencoded",
        ),
    ],
)
async def test_nul_in_the_path_the_query_or_a_form_is_refused(request_: Request) -> None:
    with pytest.raises(NulInText) as refused:
        await reject_nul_characters(request_)
    assert refused.value.status_code == 422 and "Remove it" in refused.value.message


async def test_ordinary_paths_queries_and_forms_pass() -> None:
    await reject_nul_characters(_scoped("/api/consultations/ab12", b"q=a%20b&status=completed"))
    form = "application/x-www-form-urlencoded"
    await reject_nul_characters(_scoped("/sign-in", body=b"email=a%40b.org", content_type=form))
