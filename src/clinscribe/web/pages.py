"""Sign-in and sign-out (the clinician's pages are in consultation_pages.py).

The sign-in form carries a token that must equal a cookie set with the form (double submit),
so another site cannot sign a browser in to an account of its choosing. After sign-in the
session cookie is HttpOnly and SameSite=Lax; forms and scripts echo the session's CSRF token.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from clinscribe.auth import credentials, service
from clinscribe.auth.dependencies import (
    SESSION_COOKIE,
    check_limit,
    client_ip,
    get_runtime,
)
from clinscribe.auth.principal import Principal
from clinscribe.db.base import utcnow
from clinscribe.errors import RateLimited

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
SIGNIN_CSRF_COOKIE = "clinscribe_signin_csrf"


async def current_principal(request: Request) -> Principal | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    async with get_runtime(request).db.session() as session:
        return await service.resolve_web_session(session, token, client_ip(request), utcnow())


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=get_runtime(request).settings.secure_cookies,
        path="/",
    )


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (never another site)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target[:500]
    return "/"


def _sign_in_page(
    request: Request,
    *,
    error: str | None = None,
    email: str | None = None,
    status: int = 200,
    next_url: str | None = None,
) -> HTMLResponse:
    token = credentials.new_token()
    response = templates.TemplateResponse(
        request,
        "sign_in.html",
        {
            "signin_csrf": token,
            "error": error,
            "email": email,
            "principal": None,
            "next_url": safe_next(next_url or request.query_params.get("next")),
        },
        status_code=status,
    )
    _set_cookie(request, response, SIGNIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request) -> Response:
    if await current_principal(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return _sign_in_page(request)


@router.post("/sign-in")
async def sign_in(
    request: Request,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next_url: Annotated[str, Form(alias="next", max_length=500)] = "/",
) -> Response:
    runtime = get_runtime(request)
    settings = runtime.settings
    expected = request.cookies.get(SIGNIN_CSRF_COOKIE, "")
    if not expected or not credentials.same(csrf_token, expected):
        return _sign_in_page(
            request,
            error="The sign-in form expired. Please try again.",
            status=403,
            next_url=next_url,
        )
    try:
        check_limit(request.app.state.limits.signin_per_ip, client_ip(request) or "", "")
    except RateLimited as error:
        return _sign_in_page(
            request,
            error=f"Too many sign-in attempts. Wait {round(error.retry_after_s)} s.",
            status=429,
            next_url=next_url,
        )
    policy = service.SignInPolicy(
        max_failures=settings.signin_max_failures,
        lockout=timedelta(minutes=settings.signin_lockout_minutes),
        session_lifetime=timedelta(hours=settings.session_hours),
    )
    # Commit whatever happens: failed attempts and locks must be counted and audited.
    async with runtime.db.session() as session:
        result = await service.sign_in(
            session,
            policy,
            email=email,
            password=password,
            ip=client_ip(request),
            now=utcnow(),
        )
    if result is None:
        return _sign_in_page(
            request,
            error=service.SIGNIN_FAILED_MESSAGE,
            email=email[:254],
            status=401,
            next_url=next_url,
        )
    _web_session, token = result
    response = RedirectResponse(safe_next(next_url), status_code=303)
    _set_cookie(
        request, response, SESSION_COOKIE, token, int(policy.session_lifetime.total_seconds())
    )
    response.delete_cookie(SIGNIN_CSRF_COOKIE, path="/")
    return response


@router.post("/sign-out")
async def sign_out(
    request: Request, csrf_token: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    principal = await current_principal(request)
    if principal is not None and principal.csrf_token:
        if not credentials.same(csrf_token, principal.csrf_token):
            return RedirectResponse("/", status_code=303)
        async with get_runtime(request).db.session() as session:
            await service.sign_out(session, principal)
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
