"""HTTP endpoints for the caller's identity, users and API keys (admins), and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from clinscribe.audit import repository as audit_repository
from clinscribe.auth import repository, service
from clinscribe.auth.dependencies import AdminDep, PrincipalDep, SessionDep
from clinscribe.auth.schemas import (
    ApiKeyIn,
    ApiKeyOut,
    AuditEventOut,
    AuditPage,
    ClinicOut,
    MeOut,
    NewApiKeyOut,
    UserIn,
    UserOut,
    UserPatch,
)
from clinscribe.errors import BadRequest

router = APIRouter(prefix="/api", tags=["accounts"])


@router.get("/me", response_model=MeOut, summary="Who is calling, in which clinic")
async def me(principal: PrincipalDep, session: SessionDep) -> MeOut:
    clinic = await repository.get_clinic(session, principal.clinic_id)
    assert clinic is not None
    return MeOut(
        clinic=ClinicOut(id=clinic.id, name=clinic.name),
        actor_type=principal.actor_type,
        id=principal.actor_id,
        name=principal.display_name,
        role=principal.role,
        csrf_token=principal.csrf_token,
    )


@router.get("/api-keys", response_model=list[ApiKeyOut], summary="The clinic's API keys")
async def list_api_keys(principal: AdminDep, session: SessionDep) -> list[ApiKeyOut]:
    return [
        ApiKeyOut.of(row) for row in await repository.list_api_keys(session, principal.clinic_id)
    ]


@router.post(
    "/api-keys",
    status_code=201,
    response_model=NewApiKeyOut,
    summary="Create an API key (the key is in this response only)",
)
async def create_api_key(body: ApiKeyIn, principal: AdminDep, session: SessionDep) -> NewApiKeyOut:
    clinic = await repository.get_clinic(session, principal.clinic_id)
    assert clinic is not None
    created = await service.create_api_key(
        session, principal, clinic, name=body.name, role=body.role
    )
    return NewApiKeyOut(**ApiKeyOut.of(created.row).model_dump(), key=created.key)


@router.delete("/api-keys/{key_id}", status_code=204, summary="Revoke an API key")
async def revoke_api_key(key_id: str, principal: AdminDep, session: SessionDep) -> Response:
    await service.revoke_api_key(session, principal, key_id[:32])
    return Response(status_code=204)


@router.get("/users", response_model=list[UserOut], summary="The clinic's users")
async def list_users(principal: AdminDep, session: SessionDep) -> list[UserOut]:
    return [UserOut.of(row) for row in await repository.list_users(session, principal.clinic_id)]


@router.post("/users", status_code=201, response_model=UserOut, summary="Add a user")
async def create_user(body: UserIn, principal: AdminDep, session: SessionDep) -> UserOut:
    clinic = await repository.get_clinic(session, principal.clinic_id)
    assert clinic is not None
    user = await service.create_user(
        session,
        principal,
        clinic,
        email=body.email,
        password=body.password,
        role=body.role,
        name=body.name,
    )
    return UserOut.of(user)


@router.patch(
    "/users/{user_id}",
    response_model=UserOut,
    summary="Change a user's role, disable or enable them, or lift a sign-in lock",
)
async def update_user(
    user_id: str, body: UserPatch, principal: AdminDep, session: SessionDep
) -> UserOut:
    user = await service.update_user(
        session, principal, user_id[:32], role=body.role, disabled=body.disabled, unlock=body.unlock
    )
    return UserOut.of(user)


@router.get("/audit", response_model=AuditPage, summary="The clinic's audit log, newest first")
async def audit_log(
    principal: AdminDep,
    session: SessionDep,
    consultation_id: Annotated[str | None, Query(max_length=32)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AuditPage:
    if cursor is not None and not cursor.isdigit():
        raise BadRequest(
            "The cursor is not valid; use the next_cursor of the previous page.",
            code="bad_cursor",
        )
    rows = await audit_repository.list_events(
        session,
        principal.clinic_id,
        consultation_id=consultation_id,
        action=action,
        before_id=int(cursor) if cursor else None,
        limit=limit + 1,
    )
    items = [AuditEventOut.of(row) for row in rows[:limit]]
    next_cursor = str(items[-1].id) if len(rows) > limit and items else None
    return AuditPage(items=items, next_cursor=next_cursor)
