"""Stream stored (encrypted) audio to a browser, with single byte ranges for seeking."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from typing import BinaryIO

from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from clinscribe.errors import BadRequest, ClinscribeError, NotFound
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
    """The normalized recording as stored (FLAC; WAV for consultations of earlier releases).

    Opening it needs disk or network reads (S3), so that happens when the response is sent,
    in a worker thread, not here on the event loop.
    """
    if range_header is not None and _RANGE.match(range_header.strip()) is None:
        _parse_range(range_header, 0)  # raises the 400 now, before anything is read
    return _StoredAudio(store, consultation_id, range_header)


class _StoredAudio(Response):
    def __init__(self, store: AudioStore, consultation_id: str, range_header: str | None) -> None:
        super().__init__()
        self._store = store
        self._id = consultation_id
        self._range = range_header

    def _open(self) -> tuple[BinaryIO, int, str]:
        reader = self._store.open(self._id, "normalized")
        try:
            return reader, reader.seek(0, io.SEEK_END), self._store.media_type(self._id)
        except BaseException:
            reader.close()
            raise

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            reader, size, media_type = await asyncio.to_thread(self._open)
        except FileNotFoundError:  # deleted (retention, a delete) since the endpoint looked
            await _error(AudioGone())(scope, receive, send)
            return
        except ClinscribeError as error:  # storage unreachable: say so, like any endpoint error
            await _error(error)(scope, receive, send)
            return
        try:
            try:
                first, last = (
                    (0, size - 1) if self._range is None else _parse_range(self._range, size)
                )
            except ClinscribeError as error:  # 416, or 400 for 'bytes=-'
                await _error(error)(scope, receive, send)
                return
            headers = {"Accept-Ranges": "bytes", "Content-Length": str(last - first + 1)}
            if self._range is not None:
                headers["Content-Range"] = f"bytes {first}-{last}/{size}"
            response = StreamingResponse(
                _pieces(reader, first, last),
                status_code=206 if self._range is not None else 200,
                media_type=media_type,
                headers=headers,
            )
            await response(scope, receive, send)
        finally:
            reader.close()


class AudioGone(NotFound):
    code = "audio_not_found"

    def __init__(self) -> None:
        super().__init__(
            "The audio is not available: not prepared yet, or deleted by the retention policy."
        )


def _error(error: ClinscribeError) -> Response:
    return JSONResponse(
        status_code=error.status_code,
        content=error.to_json(),
        headers=error.headers(),
    )


async def _pieces(reader: BinaryIO, first: int, last: int) -> AsyncIterator[bytes]:
    await asyncio.to_thread(reader.seek, first)
    remaining = last - first + 1
    while remaining > 0:
        piece = await asyncio.to_thread(reader.read, min(_PIECE, remaining))
        if not piece:
            break
        remaining -= len(piece)
        yield piece
