"""Request and response bodies for accounts, API keys and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from clinscribe.models import ApiKey, AuditEvent, Role, User


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClinicOut(BaseModel):
    id: str
    name: str


class MeOut(BaseModel):
    clinic: ClinicOut
    actor_type: str
    id: str | None
    name: str
    role: Role
    csrf_token: str | None = Field(
        None, description="web sessions: send as X-CSRF-Token on state-changing requests"
    )


class ApiKeyIn(_In):
    name: str = Field(min_length=1, max_length=100)
    role: Role = Role.CLINICIAN


class ApiKeyOut(BaseModel):
    id: str
    name: str
    role: Role
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiKey) -> ApiKeyOut:
        return cls(
            id=row.id,
            name=row.name,
            role=Role(row.role),
            prefix=row.prefix,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


class NewApiKeyOut(ApiKeyOut):
    key: str = Field(description="the key itself: shown this once, store it now")


class UserIn(_In):
    email: str = Field(min_length=3, max_length=254)
    name: str = Field(min_length=1, max_length=200)
    role: Role = Role.CLINICIAN
    password: str = Field(min_length=1, max_length=1024)


class UserPatch(_In):
    role: Role | None = None
    disabled: bool | None = None
    unlock: bool = False


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    role: Role
    disabled: bool
    locked_until: datetime | None
    created_at: datetime
    last_signin_at: datetime | None

    @classmethod
    def of(cls, row: User) -> UserOut:
        return cls(
            id=row.id,
            email=row.email,
            name=row.name,
            role=Role(row.role),
            disabled=row.disabled_at is not None,
            locked_until=row.locked_until,
            created_at=row.created_at,
            last_signin_at=row.last_signin_at,
        )


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    actor_type: str
    actor_id: str | None
    actor: str
    action: str
    consultation_id: str | None
    ip: str | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, row: AuditEvent) -> AuditEventOut:
        return cls(
            id=row.id,
            at=row.at,
            actor_type=row.actor_type,
            actor_id=row.actor_id,
            actor=row.actor_label,
            action=row.action,
            consultation_id=row.consultation_id,
            ip=row.ip,
            detail=row.detail,
        )


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None
