"""A cap on request body size, so a client cannot make a JSON endpoint buffer gigabytes.

Audio uploads have their own, much larger limit enforced while streaming to disk; the app
exempts that route here through `exempt_paths`.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _BodyTooLarge(Exception):
    """Raised into the app from `receive` to stop it reading an oversized body."""


def _never_exempt(method: str, path: str) -> bool:
    return False


def _human_size(n_bytes: int) -> str:
    if n_bytes >= 1024 * 1024:
        return f"{n_bytes / (1024 * 1024):.3g} MB"
    if n_bytes >= 1024:
        return f"{n_bytes / 1024:.3g} KB"
    return f"{n_bytes} bytes"


def _error(status_code: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status_code)


class BodySizeLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        exempt_paths: Callable[[str, str], bool] = _never_exempt,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt_paths = exempt_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt_paths(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return

        lengths = {value for name, value in scope["headers"] if name.lower() == b"content-length"}
        # bytes.isdigit() accepts ASCII digits only, unlike int() which takes "+1", " 1", "1_0".
        # Differing duplicates are refused too: they are a request-smuggling pattern.
        if len(lengths) > 1 or any(not value.isdigit() for value in lengths):
            response = _error(
                400, "bad_request", "The Content-Length header must be a single whole number."
            )
            await response(scope, receive, send)
            return
        if lengths and int(lengths.pop()) > self.max_bytes:
            await self._too_large()(scope, receive, send)
            return

        # No length (chunked) or one that may lie: count what actually arrives.
        received = 0
        exceeded = False
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                # An app that swallowed _BodyTooLarge and reads on gets no more of the body.
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            # After the cut the app answers an error of its own making (FastAPI turns a failed
            # body read into "400 error parsing the body"); the 413 below is the true answer.
            if exceeded:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            # Whatever the app raised after the cut is a consequence of it; the server should
            # see a finished request, not a traceback.
            if not exceeded:
                raise
        # If the response had already started we cannot change its status; the app's remaining
        # sends were dropped, so the server ends the connection on an incomplete response.
        if exceeded and not response_started:
            await self._too_large()(scope, receive, send)

    def _too_large(self) -> JSONResponse:
        return _error(
            413,
            "request_too_large",
            f"The request body is larger than the {_human_size(self.max_bytes)} limit. "
            "Consultation audio is uploaded with POST /api/consultations, which accepts "
            "larger files.",
        )
