"""Clinics, users and API keys for tests, made through the same service the CLI uses."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from clinscribe.auth import service
from clinscribe.auth.principal import system_actor
from clinscribe.db.engine import Database
from clinscribe.db.migrate import upgrade
from clinscribe.models import Role

TEST_PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Account:
    clinic: str
    api_key: str
    key_id: str
    email: str | None = None


async def _provision(url: str, clinic: str, role: Role, email: str | None) -> Account:
    database = Database(url)
    try:
        async with database.session() as session:
            found = await service.get_or_create_clinic(session, clinic)
            actor = system_actor(found.id, "tests")
            if email is not None:
                await service.create_user(
                    session, actor, found, email=email, password=TEST_PASSWORD, role=role
                )
            created = await service.create_api_key(
                session, actor, found, name=f"{role.value} key", role=role
            )
            return Account(clinic, created.key, created.row.id, email)
    finally:
        await database.dispose()


def provision(
    database_url: str,
    clinic: str = "Test Clinic",
    *,
    role: Role = Role.CLINICIAN,
    email: str | None = None,
) -> Account:
    """Migrate the database, then add (or reuse) the clinic, an API key and optionally a user."""
    upgrade(database_url)
    return asyncio.run(_provision(database_url, clinic, role, email))


def bearer(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.api_key}"}
