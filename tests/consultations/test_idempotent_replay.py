"""A repeat of an upload (same Idempotency-Key) that arrives while the first request has
stored the consultation but not yet queued it answers 503 try_again, never a confirmation:
the first request can still fail and undo it, and a client told "done" would drop its copy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, cast

import pytest
from fastapi import Response

from clinscribe.auth.principal import Principal
from clinscribe.consultations import endpoints, service
from clinscribe.errors import TryAgainShortly
from clinscribe.pipeline import engine
from clinscribe.pipeline.runtime import Runtime

pytestmark = pytest.mark.no_database


@asynccontextmanager
async def _session() -> AsyncIterator[object]:
    yield object()


RUNTIME = cast(Runtime, SimpleNamespace(db=SimpleNamespace(session=_session)))
PRINCIPAL = cast(Principal, SimpleNamespace(clinic_id="c1", actor_id="k1"))


async def test_a_repeat_before_the_first_is_queued_answers_try_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def stored(*_args: Any) -> object:
        return object()  # the first request has stored the consultation...

    async def not_queued(_consultation_id: str) -> bool:
        return False  # ...but has not queued its workflow yet

    monkeypatch.setattr(service, "find_consultation", stored)
    monkeypatch.setattr(engine, "has_run", not_queued)
    response = Response()
    with pytest.raises(TryAgainShortly) as refused:
        await endpoints._replay(RUNTIME, PRINCIPAL, response, "a" * 32)
    assert refused.value.status_code == 503
    assert refused.value.code == "try_again"
    assert refused.value.headers() == {"Retry-After": "2"}
    assert "Send it again shortly" in refused.value.message
    assert "idempotent-replayed" not in response.headers


async def test_a_key_never_used_is_no_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    async def missing(*_args: Any) -> None:
        return None

    monkeypatch.setattr(service, "find_consultation", missing)
    assert await endpoints._replay(RUNTIME, PRINCIPAL, Response(), "b" * 32) is None
