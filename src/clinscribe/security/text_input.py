"""Refuse NUL characters in JSON request bodies.

PostgreSQL text columns cannot store U+0000 (SQLite can), so a note title or a name with one
would fail deep inside a write as a 500 on one database and be stored on the other. Every
JSON body is checked once, up front, the same way on both: 422 with what to fix.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from clinscribe.errors import BadRequest


class NulInText(BadRequest):
    status_code = 422
    code = "invalid_text"


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


async def reject_nul_characters(request: Request) -> None:
    """App-wide dependency: JSON bodies whose text holds a NUL character answer 422."""
    if "json" not in request.headers.get("content-type", ""):
        return
    body = await request.body()  # cached: the endpoint reads it again for free
    if b"\\u0000" not in body:  # the only way JSON can carry a NUL (raw one is invalid JSON)
        return
    try:
        parsed = json.loads(body)
    except ValueError:
        return  # FastAPI answers invalid JSON itself
    if _has_nul(parsed):
        raise NulInText(
            "Text in the request contains a NUL character (\\u0000), which cannot be stored. "
            "Remove it and send the request again."
        )
