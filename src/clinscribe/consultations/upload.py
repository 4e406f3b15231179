"""Streaming multipart parsing for audio uploads.

Starlette's ``request.form()`` spools the whole file to a temporary file before the endpoint
sees it, so an oversized upload fills the disk before it can be refused. Here the body is
parsed chunk by chunk as it arrives: the audio part goes straight into our upload directory,
the size limit is enforced on the fly, and small text fields are kept in memory (bounded).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from clinscribe.errors import BadRequest, UploadTooLarge

AUDIO_FIELD = "audio"
_MAX_FIELD_BYTES = 4096
_MAX_FIELDS = 20
_MAX_HEADER_BYTES = 8192  # a multipart header is a line, not a payload
_MAX_HEADERS_PER_PART = 16
_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._ -]+")


@dataclass
class ParsedUpload:
    """The audio part saved to ``audio_path`` plus the form's text fields."""

    audio_path: Path | None = None
    audio_bytes: int = 0
    filename: str | None = None
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        if self.audio_path is not None:
            self.audio_path.unlink(missing_ok=True)


def remove_abandoned_uploads(upload_dir: Path, older_than_s: float = 3600.0) -> int:
    """Delete partial uploads left by a process that died mid-upload; returns how many."""
    if not upload_dir.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    removed = 0
    for path in upload_dir.glob("*.upload"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


def safe_filename(raw: str | None) -> str | None:
    """Keep a display name only: strip directories and unusual characters, cap the length."""
    if not raw:
        return None
    name = _SAFE_FILENAME.sub("_", os.path.basename(raw.replace("\\", "/"))).strip(" .")
    return name[:200] or None


class _PartCollector:
    """Receives parser callbacks and routes each part to a file or a bounded text buffer."""

    def __init__(self, upload_dir: Path, max_bytes: int) -> None:
        self.upload_dir = upload_dir
        self.max_bytes = max_bytes
        self.result = ParsedUpload()
        self._headers: dict[str, str] = {}
        self._header_field = b""
        self._header_value = b""
        self._name: str | None = None
        self._file: BinaryIO | None = None
        self._text = bytearray()
        self._writing_file = False
        self.audio_complete = False
        self.ended = False

    # header callbacks
    def on_part_begin(self) -> None:
        self._headers = {}
        self._name = None
        self._text = bytearray()
        self._writing_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]
        self._check_header_size()

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        self._check_header_size()

    def _check_header_size(self) -> None:
        if len(self._header_field) + len(self._header_value) > _MAX_HEADER_BYTES:
            raise BadRequest("A part header of the upload is too large.", code="bad_upload")

    def on_header_end(self) -> None:
        key = self._header_field.decode("latin-1").strip().lower()
        # Latin-1 maps every byte to one character, so parse_options_header (which encodes
        # back to latin-1) returns the raw bytes; names are then decoded as UTF-8 below.
        self._headers[key] = self._header_value.decode("latin-1")
        if len(self._headers) > _MAX_HEADERS_PER_PART:
            raise BadRequest("A part of the upload has too many headers.", code="bad_upload")
        self._header_field = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", ""))
        name = options.get(b"name")
        self._name = name.decode("utf-8", "replace") if name is not None else None
        if self._name == AUDIO_FIELD:
            if self.result.audio_path is not None:
                raise BadRequest("Send exactly one 'audio' file per upload.", code="bad_upload")
            filename = options.get(b"filename")
            self.result.filename = safe_filename(
                filename.decode("utf-8", "replace") if filename else None
            )
            self.upload_dir.mkdir(parents=True, exist_ok=True)
            self.result.audio_path = self.upload_dir / f"{uuid.uuid4().hex}.upload"
            # Owner-only: the upload is plaintext until it is checked and encrypted into place.
            descriptor = os.open(
                self.result.audio_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
            )
            self._file = os.fdopen(descriptor, "wb")
            self._writing_file = True
        elif options.get(b"filename") is not None:
            raise BadRequest(
                f"Unexpected file in the form field '{(self._name or '')[:40]}'. Send the "
                "recording in a field named 'audio'.",
                code="missing_audio",
            )
        elif len(self.result.fields) >= _MAX_FIELDS:
            raise BadRequest("Too many form fields in the upload.", code="bad_upload")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._writing_file:
            assert self._file is not None
            self.result.audio_bytes += len(chunk)
            if self.result.audio_bytes > self.max_bytes:
                raise UploadTooLarge(_too_large_message(self.max_bytes))
            self._file.write(chunk)
        else:
            self._text += chunk
            if len(self._text) > _MAX_FIELD_BYTES:
                raise BadRequest(
                    f"The form field '{self._name}' is too long.", code="field_too_long"
                )

    def on_part_end(self) -> None:
        if self._writing_file:
            assert self._file is not None
            self._file.close()
            self._file = None
            self._writing_file = False
            self.audio_complete = True
        elif self._name:
            self.result.fields[self._name] = self._text.decode("utf-8", "replace").strip()

    def on_end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _too_large_message(max_bytes: int) -> str:
    return (
        f"The upload is larger than the {max_bytes / (1024 * 1024):.0f} MB limit. Compress the "
        "recording (for example to MP3 or Opus) or split it, then upload again."
    )


async def read_audio_upload(
    content_type: str | None,
    content_length: str | None,
    body: AsyncIterator[bytes],
    *,
    upload_dir: Path,
    max_bytes: int,
) -> ParsedUpload:
    """Parse a multipart body into a saved audio file and text fields.

    On any error the partial file is removed before the error propagates.
    """
    media_type, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise BadRequest(
            "Send the recording as multipart/form-data with the file in a field named 'audio'.",
            code="bad_upload",
        )
    # Refuse at once when the client announces a body far beyond the limit (form overhead is
    # small), instead of reading hundreds of megabytes first.
    if content_length and content_length.isdigit() and int(content_length) > max_bytes + 65536:
        raise UploadTooLarge(_too_large_message(max_bytes))

    collector = _PartCollector(upload_dir, max_bytes)
    callbacks = {
        name: getattr(collector, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_part_data",
            "on_part_end",
            "on_end",
        )
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in body:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        collector.close()
        collector.result.discard()
        raise BadRequest(
            "The upload is not valid multipart/form-data. Send the file in a field named 'audio'.",
            code="bad_upload",
        ) from exc
    except BaseException:
        collector.close()
        collector.result.discard()
        raise
    collector.close()
    if not collector.ended or (collector.result.audio_path and not collector.audio_complete):
        # python-multipart's finalize() does not check that the closing boundary arrived.
        collector.result.discard()
        raise BadRequest(
            "The upload ended before it was complete. Send the recording again.",
            code="incomplete_upload",
        )
    return collector.result
