"""Account use cases: clinics, users, API keys, sign-in with lockout, sessions.

Services take an open session and never commit it. Secrets (passwords, keys, session tokens)
are only ever stored as hashes; a new API key or session token is returned once.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from clinscribe.audit.service import record
from clinscribe.auth import credentials, repository
from clinscribe.auth.principal import Actor, Principal
from clinscribe.db.base import utcnow
from clinscribe.errors import BadRequest, Conflict, NotFound, Unauthenticated
from clinscribe.models import ApiKey, Clinic, Role, User, WebSession

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Writing last-used / last-seen times on every request would turn reads into writes.
_TOUCH_EVERY = timedelta(minutes=1)


class RecentApiKeys:
    """API keys this process found valid in the last ``ttl_s`` seconds, by key hash.

    An integration polling a consultation every second then costs one key lookup per few
    seconds instead of one per request. A key revoked through this process stops working at
    once; revoked through another process (or the CLI), within ``ttl_s``.
    """

    def __init__(self, ttl_s: float = 5.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, key_hash: str) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if time.monotonic() - entry[0] > self.ttl_s:
            del self._entries[key_hash]
            return None
        return entry[1]

    def put(self, key_hash: str, principal: Principal) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic(), principal)

    def forget(self, key_id: str) -> None:
        for key_hash, (_, principal) in list(self._entries.items()):
            if principal.actor_id == key_id:
                del self._entries[key_hash]


recent_api_keys = RecentApiKeys()

SIGNIN_FAILED_MESSAGE = (
    "The email or password is wrong, or the account is locked for a while after repeated "
    "failed sign-ins. Try again later or ask your clinic admin."
)


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        raise BadRequest("Give a valid email address.", code="invalid_email")
    return email


async def get_or_create_clinic(session: AsyncSession, name: str) -> Clinic:
    name = name.strip()
    if not name or len(name) > 200:
        raise BadRequest("The clinic name must be 1 to 200 characters.", code="invalid_clinic")
    clinic = await repository.get_clinic_by_name(session, name)
    if clinic is None:
        clinic = Clinic(id=uuid.uuid4().hex, name=name)
        await repository.add(session, clinic)
    return clinic


async def find_clinic(session: AsyncSession, name: str) -> Clinic:
    clinic = await repository.get_clinic_by_name(session, name.strip())
    if clinic is None:
        raise NotFound(
            f"No clinic named {name.strip()!r}. Create its first admin with "
            "`clinscribe users create-admin --clinic NAME ...`.",
            code="clinic_not_found",
        )
    return clinic


async def create_user(
    session: AsyncSession,
    actor: Actor,
    clinic: Clinic,
    *,
    email: str,
    password: str,
    role: Role,
    name: str | None = None,
) -> User:
    email = normalize_email(email)
    if problem := credentials.password_problem(password):
        raise BadRequest(problem, code="weak_password")
    if await repository.get_user_by_email(session, email) is not None:
        raise Conflict("A user with this email already exists.", code="user_exists")
    user = User(
        id=uuid.uuid4().hex,
        clinic_id=clinic.id,
        email=email,
        name=(name or email).strip()[:200],
        role=role,
        password_hash=await asyncio.to_thread(credentials.hash_password, password),
        failed_signins=0,
    )
    await repository.add(session, user)
    await record(session, actor, "user.created", user_id=user.id, role=role.value)
    return user


@dataclass(frozen=True)
class NewApiKey:
    row: ApiKey
    key: str  # shown once, never stored


async def create_api_key(
    session: AsyncSession, actor: Actor, clinic: Clinic, *, name: str, role: Role
) -> NewApiKey:
    name = name.strip()
    if not name or len(name) > 100:
        raise BadRequest("The key's name must be 1 to 100 characters.", code="invalid_name")
    key = credentials.new_api_key()
    row = ApiKey(
        id=uuid.uuid4().hex,
        clinic_id=clinic.id,
        name=name,
        role=role,
        prefix=key[:10],
        key_hash=credentials.digest(key),
    )
    await repository.add(session, row)
    await record(session, actor, "api_key.created", api_key_id=row.id, role=role.value)
    return NewApiKey(row=row, key=key)


async def revoke_api_key(session: AsyncSession, principal: Principal, key_id: str) -> ApiKey:
    row = await repository.get_api_key(session, principal.clinic_id, key_id)
    if row is None:
        raise NotFound("No API key with this id.", code="api_key_not_found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await record(session, principal, "api_key.revoked", api_key_id=row.id)
    recent_api_keys.forget(row.id)
    return row


async def authenticate_api_key(
    session: AsyncSession, key: str, ip: str | None, now: datetime
) -> Principal:
    key_hash = credentials.digest(key)
    row = await repository.get_api_key_by_hash(session, key_hash)
    if row is None:
        raise Unauthenticated(
            "This API key is not valid. Check it was copied whole, or ask your clinic admin "
            "for a new one.",
            code="invalid_api_key",
        )
    if row.revoked_at is not None:
        raise Unauthenticated(
            "This API key was revoked. Ask your clinic admin for a new one.",
            code="api_key_revoked",
        )
    if row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY:
        row.last_used_at = now
    principal = Principal(
        actor_type="api_key",
        actor_id=row.id,
        label=f"api key {row.name}",
        clinic_id=row.clinic_id,
        ip=ip,
        role=Role(row.role),
        display_name=row.name,
    )
    recent_api_keys.put(key_hash, principal)
    return principal


@dataclass(frozen=True)
class SignInPolicy:
    max_failures: int
    lockout: timedelta
    session_lifetime: timedelta


async def sign_in(
    session: AsyncSession,
    policy: SignInPolicy,
    *,
    email: str,
    password: str,
    ip: str | None,
    now: datetime,
) -> tuple[WebSession, str] | None:
    """Check the password; on success a new session and its cookie token, else None.

    Repeated failures lock the account for ``policy.lockout``; while locked even the right
    password is refused. Every failure, lock and sign-in is audited: the caller commits the
    session whatever the outcome, then answers with :data:`SIGNIN_FAILED_MESSAGE` on None.
    """
    user = await repository.get_user_by_email(session, email.strip().lower()[:254])
    valid = await asyncio.to_thread(
        credentials.verify_password, user.password_hash if user else None, password
    )
    if user is None:
        return None
    actor = Actor(
        actor_type="user", actor_id=user.id, label=user.email, clinic_id=user.clinic_id, ip=ip
    )
    if user.disabled_at is not None:
        await record(session, actor, "user.signin_refused", reason="disabled")
        return None
    if user.locked_until is not None and user.locked_until > now:
        await record(session, actor, "user.signin_refused", reason="locked")
        return None
    if not valid:
        failures = await repository.count_failed_signin(session, user.id, now)
        if failures is None:  # another attempt locked the account meanwhile
            await record(session, actor, "user.signin_refused", reason="locked")
            return None
        await record(session, actor, "user.signin_failed", failures=failures)
        if failures >= policy.max_failures:
            until = now + policy.lockout
            if await repository.lock_user(session, user.id, until, now):
                await record(
                    session,
                    actor,
                    "user.locked",
                    until=until.isoformat(),
                    minutes=round(policy.lockout.total_seconds() / 60, 2),
                )
        return None
    if not await repository.record_signin(session, user.id, now):
        await record(session, actor, "user.signin_refused", reason="locked")
        return None
    await repository.delete_expired_sessions(session, now)
    token = credentials.new_token()
    web_session = WebSession(
        id=uuid.uuid4().hex,
        user_id=user.id,
        token_hash=credentials.digest(token),
        csrf_token=credentials.new_token(),
        created_at=now,
        expires_at=now + policy.session_lifetime,
        last_seen_at=now,
    )
    await repository.add(session, web_session)
    await record(session, actor, "user.signed_in")
    return web_session, token


async def resolve_web_session(
    session: AsyncSession, token: str, ip: str | None, now: datetime
) -> Principal | None:
    """The principal of a session cookie, or None when it is unknown or expired."""
    web_session = await repository.get_web_session(session, credentials.digest(token))
    if web_session is None or web_session.expires_at <= now:
        return None
    user = await session.get(User, web_session.user_id)
    if user is None or user.disabled_at is not None:
        return None
    if now - web_session.last_seen_at > _TOUCH_EVERY:
        web_session.last_seen_at = now
    return Principal(
        actor_type="user",
        actor_id=user.id,
        label=user.email,
        clinic_id=user.clinic_id,
        ip=ip,
        role=Role(user.role),
        display_name=user.name,
        csrf_token=web_session.csrf_token,
        session_id=web_session.id,
    )


async def sign_out(session: AsyncSession, principal: Principal) -> None:
    if principal.session_id is not None:
        await repository.delete_web_session(session, principal.session_id)
        await record(session, principal, "user.signed_out")


async def update_user(
    session: AsyncSession,
    principal: Principal,
    user_id: str,
    *,
    role: Role | None,
    disabled: bool | None,
    unlock: bool,
) -> User:
    user = await repository.get_user(session, principal.clinic_id, user_id)
    if user is None:
        raise NotFound("No user with this id.", code="user_not_found")
    if user.id == principal.actor_id and (disabled or (role is not None and role != user.role)):
        raise Conflict(
            "You cannot disable yourself or change your own role; ask another admin.",
            code="self_change",
        )
    if role is not None and role != user.role:
        user.role = role
        await record(session, principal, "user.role_changed", user_id=user.id, role=role.value)
    if disabled is not None and disabled != (user.disabled_at is not None):
        user.disabled_at = utcnow() if disabled else None
        if disabled:
            await repository.delete_user_sessions(session, user.id)
        await record(
            session, principal, "user.disabled" if disabled else "user.enabled", user_id=user.id
        )
    if unlock and (user.locked_until is not None or user.failed_signins):
        user.locked_until = None
        user.failed_signins = 0
        await record(session, principal, "user.unlocked", user_id=user.id)
    return user
