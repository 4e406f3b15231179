"""Refuse NUL characters in request text.

PostgreSQL text cannot hold U+0000 (SQLite can), so an id, an email or a note title with one
would fail deep inside a query as a 500 on one database and be stored on the other. The path,
the query and every JSON or form body are checked once, up front, the same way on both: 422
with what to fix. The text fields of a multipart upload are checked as the upload is read
(consultations/service.py), so the recording is never buffered here.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from clinscribe.errors import BadRequest


class NulInText(BadRequest):
    status_code = 422
    code = "invalid_text"

    def __init__(self) -> None:
        super().__init__(
            "Text in the request contains a NUL character (\\u0000, %00), which cannot be "
            "stored. Remove it and send the request again."
        )


def has_nul(text: str) -> bool:
    return "\x00" in text


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return has_nul(value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


async def reject_nul_characters(request: Request) -> None:
    """App-wide dependency: a NUL character in the path, the query string or a JSON or
    URL-encoded form body answers 422."""
    if has_nul(request.scope.get("path", "")) or b"%00" in request.scope.get("query_string", b""):
        raise NulInText()
    content_type = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" in content_type:
        form = await request.form()  # parsed once: FastAPI has read it for the endpoint
        if any(has_nul(key) or has_nul(str(value)) for key, value in form.multi_items()):
            raise NulInText()
        return
    if "json" not in content_type:
        return
    body = await request.body()  # cached: the endpoint reads it again for free
    if b"\\u0000" not in body:  # the only way JSON can carry a NUL (raw one is invalid JSON)
        return
    try:
        parsed = json.loads(body)
    except ValueError:
        return  # FastAPI answers invalid JSON itself
    if _has_nul(parsed):
        raise NulInText()
