"""Stream stored (encrypted) audio to a browser, with single byte ranges for seeking."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from fastapi.responses import Response, StreamingResponse

from clinscribe.errors import BadRequest
from clinscribe.storage.audio import AudioStore

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_PIECE = 256 * 1024


def _parse_range(header: str, size: int) -> tuple[int, int]:
    """The inclusive (first, last) byte of a single-range header, clamped to the file."""
    match = _RANGE.match(header.strip())
    if match is None or match.groups() == ("", ""):
        raise BadRequest(
            "Only one byte range like 'bytes=0-' or 'bytes=100-199' is supported.",
            code="bad_range",
        )
    first_text, last_text = match.groups()
    if first_text == "":  # a suffix: the last N bytes
        first, last = max(0, size - int(last_text)), size - 1
    else:
        first = int(first_text)
        last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size or first > last:
        raise _Unsatisfiable(size)
    return first, last


class _Unsatisfiable(BadRequest):
    status_code = 416
    code = "range_not_satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__("The requested byte range lies outside the recording.")
        self.size = size

    def headers(self) -> dict[str, str]:
        return {"Content-Range": f"bytes */{self.size}"}


def audio_response(store: AudioStore, consultation_id: str, range_header: str | None) -> Response:
    size = store.size(consultation_id, "normalized")
    first, last = (0, size - 1) if range_header is None else _parse_range(range_header, size)

    async def body() -> AsyncIterator[bytes]:
        reader = await asyncio.to_thread(store.open, consultation_id, "normalized")
        try:
            await asyncio.to_thread(reader.seek, first)
            remaining = last - first + 1
            while remaining > 0:
                piece = await asyncio.to_thread(reader.read, min(_PIECE, remaining))
                if not piece:
                    break
                remaining -= len(piece)
                yield piece
        finally:
            reader.close()

    headers = {"Accept-Ranges": "bytes", "Content-Length": str(last - first + 1)}
    if range_header is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return StreamingResponse(
        body(),
        status_code=206 if range_header is not None else 200,
        media_type="audio/wav",
        headers=headers,
    )
