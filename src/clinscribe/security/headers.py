"""Browser-facing security headers added to every HTTP response.

A pure ASGI middleware rather than `BaseHTTPMiddleware`: it only rewrites the
`http.response.start` message and passes body messages straight through, so streamed responses
(Server-Sent Events with transcript progress) reach the browser chunk by chunk.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_CSP = (
    "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; script-src 'self'; "
    "style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

# FastAPI's interactive docs pages (fastapi/openapi/docs.py, FastAPI 0.165) load Swagger UI and
# ReDoc from cdn.jsdelivr.net, the favicon from fastapi.tiangolo.com and ReDoc's fonts from Google
# Fonts. The Swagger page and the OAuth2 redirect page each run an inline script whose text
# embeds the OpenAPI URL and root path, so a hash would break whenever those change:
# 'unsafe-inline' is allowed here only, on pages that show the API schema and no patient data.
# Both UIs set inline styles and ReDoc starts its search worker from a blob: URL.
DOCS_CSP = (
    "default-src 'self'; "
    "script-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'; "
    "style-src 'self' https://cdn.jsdelivr.net https://fonts.googleapis.com 'unsafe-inline'; "
    "font-src 'self' https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com; "
    "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})

_COMMON_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    # The recording page needs the microphone; nothing may use the camera or location.
    (b"permissions-policy", b"camera=(), geolocation=(), microphone=(self)"),
)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts_max_age_s: int = 31536000) -> None:
        self.app = app
        self._hsts = f"max-age={hsts_max_age_s}; includeSubDomains".encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._headers_for(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                # The app knows better for a specific response (e.g. a page that must be framed).
                headers.extend((name, value) for name, value in extra if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _headers_for(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        path: str = scope["path"]
        csp = DOCS_CSP if path in DOCS_PATHS else DEFAULT_CSP
        headers = [*_COMMON_HEADERS, (b"content-security-policy", csp.encode("latin-1"))]
        # Behind a TLS-terminating proxy uvicorn derives the scheme from X-Forwarded-Proto; HSTS
        # over plain HTTP is ignored by browsers and would only mislead a reader of the headers.
        if scope.get("scheme") == "https":
            headers.append((b"strict-transport-security", self._hsts))
        # API responses carry patient data: no browser or proxy cache may keep a copy.
        if path.startswith("/api/"):
            headers.append((b"cache-control", b"no-store"))
        return headers
