"""FastAPI dependencies: who is calling (API key or session cookie), CSRF, roles, rate limits.

Every /api endpoint except the operational ones takes :data:`PrincipalDep` (or
:data:`AdminDep`); everything it reads or writes is scoped to ``principal.clinic_id``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from clinscribe.auth import credentials, service
from clinscribe.auth.principal import Principal
from clinscribe.config import Settings
from clinscribe.db.base import utcnow
from clinscribe.errors import Forbidden, RateLimited, Unauthenticated
from clinscribe.pipeline.runtime import Runtime
from clinscribe.security.rate_limit import RateLimiter

SESSION_COOKIE = "clinscribe_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class RequestLimits:
    """Per-process request budgets (each process counts its own)."""

    per_ip: RateLimiter
    per_principal: RateLimiter
    signin_per_ip: RateLimiter

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLimits:
        return cls(
            per_ip=RateLimiter(settings.ip_requests_per_minute),
            per_principal=RateLimiter(settings.api_requests_per_minute),
            signin_per_ip=RateLimiter(settings.signin_attempts_per_minute_per_ip),
        )


def check_limit(limiter: RateLimiter, key: str, what: str) -> None:
    wait = limiter.acquire(key)
    if wait is not None:
        raise RateLimited(
            f"Too many requests {what}. Wait {max(1, round(wait))} s and try again.",
            retry_after_s=wait,
        )


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_runtime(request).db.session() as session:
        yield session


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
# scope="function": the session commits before the response is sent, so a client is never
# told "done" about a change (or an audit record) whose commit then fails.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

_HOW_TO_AUTHENTICATE = (
    "Send an API key as 'Authorization: Bearer <key>' (an admin creates one with "
    "`clinscribe api-keys create`), or sign in at /sign-in."
)


async def get_principal(request: Request) -> Principal:
    limits: RequestLimits = request.app.state.limits
    ip = client_ip(request)
    check_limit(limits.per_ip, ip or "unknown", "from this address")
    authorization = request.headers.get("authorization")
    token = request.cookies.get(SESSION_COOKIE)
    if authorization is None and not token:
        raise Unauthenticated("Not signed in. " + _HOW_TO_AUTHENTICATE)
    key = _bearer_key(authorization) if authorization is not None else None
    recent = service.recent_api_keys.get(credentials.digest(key)) if key else None
    if recent is not None:
        principal = replace(recent, ip=ip)
    else:
        # Its own short transaction: the last-used time is committed at once and never holds
        # a write lock while the endpoint works in its own session.
        async with get_runtime(request).db.session() as session:
            principal = await _authenticate(session, request, key, token, ip)
    check_limit(limits.per_principal, principal.actor_id or "", "for this key or user")
    return principal


def _bearer_key(authorization: str) -> str:
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthenticated(
            "The Authorization header must be 'Bearer <api key>'.", code="bad_authorization"
        )
    return key.strip()


async def _authenticate(
    session: AsyncSession,
    request: Request,
    key: str | None,
    token: str | None,
    ip: str | None,
) -> Principal:
    now = utcnow()
    if key is not None:
        return await service.authenticate_api_key(session, key, ip, now)
    assert token is not None
    found = await service.resolve_web_session(session, token, ip, now)
    if found is None:
        raise Unauthenticated(
            "Your session has ended. Sign in again at /sign-in.", code="session_expired"
        )
    if request.method not in _SAFE_METHODS:
        _check_csrf(request, found)
    return found


def _check_csrf(request: Request, principal: Principal) -> None:
    # A cookie is sent by the browser on any site's request; the token is not, so requiring
    # it on every state-changing request stops cross-site request forgery.
    sent = request.headers.get(CSRF_HEADER, "")
    if not principal.csrf_token or not credentials.same(sent, principal.csrf_token):
        raise Forbidden(
            f"Missing or wrong CSRF token: send the {CSRF_HEADER} header with the value from "
            "GET /api/me (the web app does this for you; reload the page).",
            code="csrf_failed",
        )


async def require_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not principal.is_admin:
        raise Forbidden("This needs a clinic admin.", code="admin_only")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
AdminDep = Annotated[Principal, Depends(require_admin)]
