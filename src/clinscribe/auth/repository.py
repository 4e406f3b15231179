"""All SQL for clinics, users, API keys and web sessions. Callers own the session."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clinscribe.models import ApiKey, Clinic, User, WebSession


async def get_clinic_by_name(session: AsyncSession, name: str) -> Clinic | None:
    return await session.scalar(select(Clinic).where(Clinic.name == name))


async def get_clinic(session: AsyncSession, clinic_id: str) -> Clinic | None:
    return await session.get(Clinic, clinic_id)


async def add(session: AsyncSession, row: Clinic | User | ApiKey | WebSession) -> None:
    session.add(row)
    await session.flush()


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email))


async def get_user(session: AsyncSession, clinic_id: str, user_id: str) -> User | None:
    return await session.scalar(select(User).where(User.id == user_id, User.clinic_id == clinic_id))


async def list_users(session: AsyncSession, clinic_id: str) -> list[User]:
    query = select(User).where(User.clinic_id == clinic_id).order_by(User.created_at, User.id)
    return list((await session.scalars(query)).all())


async def get_api_key_by_hash(session: AsyncSession, key_hash: str) -> ApiKey | None:
    return await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


async def get_api_key(session: AsyncSession, clinic_id: str, key_id: str) -> ApiKey | None:
    return await session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.clinic_id == clinic_id)
    )


async def list_api_keys(session: AsyncSession, clinic_id: str) -> list[ApiKey]:
    query = (
        select(ApiKey).where(ApiKey.clinic_id == clinic_id).order_by(ApiKey.created_at, ApiKey.id)
    )
    return list((await session.scalars(query)).all())


async def get_web_session(session: AsyncSession, token_hash: str) -> WebSession | None:
    return await session.scalar(select(WebSession).where(WebSession.token_hash == token_hash))


async def delete_web_session(session: AsyncSession, session_id: str) -> None:
    await session.execute(delete(WebSession).where(WebSession.id == session_id))


async def delete_user_sessions(session: AsyncSession, user_id: str) -> None:
    await session.execute(delete(WebSession).where(WebSession.user_id == user_id))


async def delete_expired_sessions(session: AsyncSession, now: datetime) -> int:
    result = await session.execute(delete(WebSession).where(WebSession.expires_at < now))
    return int(getattr(result, "rowcount", 0) or 0)


# Sign-in bookkeeping is done with single UPDATE statements, not read-modify-write, so that
# concurrent attempts cannot all see "0 failures, not locked" and slip past the lockout.
def _unlocked(now: datetime) -> ColumnElement[bool]:
    return or_(User.locked_until.is_(None), User.locked_until <= now)


async def count_failed_signin(session: AsyncSession, user_id: str, now: datetime) -> int | None:
    """Add one failure; the new count, or None when the account is locked meanwhile."""
    statement = (
        update(User)
        .where(User.id == user_id, _unlocked(now))
        .values(failed_signins=User.failed_signins + 1)
        .returning(User.failed_signins)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def lock_user(session: AsyncSession, user_id: str, until: datetime, now: datetime) -> bool:
    """Lock the account unless another attempt already did; True when this call locked it."""
    statement = (
        update(User)
        .where(User.id == user_id, _unlocked(now))
        .values(locked_until=until, failed_signins=0)
        .returning(User.id)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def record_signin(session: AsyncSession, user_id: str, now: datetime) -> bool:
    """Reset the failures of an enabled, unlocked account; False when it is locked now."""
    statement = (
        update(User)
        .where(User.id == user_id, User.disabled_at.is_(None), _unlocked(now))
        .values(failed_signins=0, locked_until=None, last_signin_at=now)
        .returning(User.id)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None
