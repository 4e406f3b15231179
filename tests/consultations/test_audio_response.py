"""Audio deleted between the endpoint's check and the read (a retention sweep, a delete)
answers 404 audio_not_found, not a server error."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from starlette.types import Message

from clinscribe.consultations.audio_response import audio_response
from clinscribe.storage.audio import AudioStore

pytestmark = pytest.mark.no_database


class _DeletedMeanwhile:
    def open(self, consultation_id: str, kind: str) -> Any:
        raise FileNotFoundError(f"no stored object {consultation_id}/{kind}")

    def media_type(self, consultation_id: str) -> str:
        return "audio/flac"


@pytest.mark.parametrize("range_header", [None, "bytes=0-"])
async def test_audio_deleted_after_the_check_answers_404(range_header: str | None) -> None:
    response = audio_response(cast(AudioStore, _DeletedMeanwhile()), "c1", range_header)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await response({"type": "http", "method": "GET", "headers": []}, receive, send)
    assert sent[0]["status"] == 404
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body["error"]["code"] == "audio_not_found"
