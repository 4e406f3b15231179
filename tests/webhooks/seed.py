"""A webhook subscription with one delivery, written straight into a server's database, for
tests that need real ids (the fuzzer) without a URL the server would accept: the URL is on
loopback, so a server with the default policy refuses every attempt and sends nothing."""

from __future__ import annotations

import asyncio
import uuid

from clinscribe.auth import repository as accounts
from clinscribe.auth.principal import Principal
from clinscribe.config import WebhookSettings
from clinscribe.db.encrypted import active_keyring, use_keyring
from clinscribe.db.engine import Database
from clinscribe.models import Role
from clinscribe.security.crypto import Keyring
from clinscribe.webhooks import events, service

UNREACHABLE = "http://127.0.0.1:9/seeded"  # the discard port; refused by the default policy


async def _seed(database_url: str, clinic_name: str, consultation_id: str) -> tuple[str, str]:
    database = Database(database_url)
    try:
        async with database.session() as session:
            clinic = await accounts.get_clinic_by_name(session, clinic_name)
            assert clinic is not None
            actor = Principal(
                actor_type="system",
                actor_id=None,
                label="test seed",
                clinic_id=clinic.id,
                role=Role.ADMIN,
                display_name="test seed",
            )
            created = await service.subscribe(
                session,
                actor,
                WebhookSettings(allow_private_addresses=True),
                url=UNREACHABLE,
                events=["note.signed"],
                include_phi=False,
                description="seeded",
                enabled=True,
            )
            await events.emit(
                session,
                clinic_id=clinic.id,
                event_type="note.signed",
                event_id=uuid.uuid4().hex,
                consultation_id=consultation_id,
                data={"consultation_id": consultation_id, "links": {}},
                phi={},
            )
            delivery = await service.list_deliveries(
                session, actor, created.row.id, status=None, cursor=None, limit=1
            )
            return created.row.id, delivery[0].id
    finally:
        await database.dispose()


def seed_webhook(
    database_url: str, keyring: Keyring, clinic_name: str, consultation_id: str
) -> tuple[str, str]:
    """(webhook id, delivery id), encrypted with the server's keyring like its own rows."""
    previous = active_keyring()
    use_keyring(keyring)
    try:
        return asyncio.run(_seed(database_url, clinic_name, consultation_id))
    finally:
        use_keyring(previous)
