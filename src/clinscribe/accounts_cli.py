"""`clinscribe users ...`, `clinscribe api-keys ...` and `clinscribe keys ...`.

Operators' scripts rely on `users create-admin --clinic NAME --email EMAIL --password-stdin`
and `api-keys create --clinic NAME --name LABEL` (the key alone on the last line): keep them.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from clinscribe.cli_common import fail, load_settings
from clinscribe.errors import ClinscribeError

T = TypeVar("T")

users_app = typer.Typer(help="Clinic users (web sign-in).", no_args_is_help=True)
api_keys_app = typer.Typer(help="API keys for integrations.", no_args_is_help=True)
keys_app = typer.Typer(help="Encryption keys for data at rest.", no_args_is_help=True)


def _in_database(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one committed transaction on the migrated app database."""
    from clinscribe.db.encrypted import use_keyring
    from clinscribe.db.engine import Database
    from clinscribe.db.migrate import upgrade
    from clinscribe.security.keys import keyring_from_settings

    settings = load_settings()
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> T:
        database = Database(settings.app_database_url)
        try:
            async with database.session() as session:
                return await work(session)
        finally:
            await database.dispose()

    try:
        use_keyring(keyring_from_settings(settings))
        upgrade(settings.app_database_url)
        return asyncio.run(run())
    except ClinscribeError as error:
        fail(error)


def _role(admin: bool) -> str:
    return "admin" if admin else "clinician"


@users_app.command("create-admin")
def create_admin(
    clinic: Annotated[str, typer.Option(help="Clinic name; created if it does not exist")],
    email: Annotated[str, typer.Option(help="The admin's email (their sign-in name)")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
    name: Annotated[str | None, typer.Option(help="Display name; default: the email")] = None,
) -> None:
    """Create a clinic admin (and the clinic). There are no default accounts or passwords."""
    from clinscribe.auth import service
    from clinscribe.auth.principal import system_actor
    from clinscribe.models import Role

    if not password_stdin:
        fail(ClinscribeError("Pass the password on standard input with --password-stdin."))
    password = sys.stdin.readline().rstrip("\r\n")

    async def work(session: AsyncSession) -> str:
        found = await service.get_or_create_clinic(session, clinic)
        actor = system_actor(found.id, "clinscribe users create-admin")
        user = await service.create_user(
            session, actor, found, email=email, password=password, role=Role.ADMIN, name=name
        )
        return user.id

    user_id = _in_database(work)
    typer.echo(f"admin {email.strip().lower()} created in clinic {clinic.strip()!r} ({user_id})")


@api_keys_app.command("create")
def create_api_key(
    clinic: Annotated[str, typer.Option(help="Name of an existing clinic")],
    name: Annotated[str, typer.Option(help="A label saying who uses the key, e.g. 'EMR'")],
    admin: Annotated[
        bool, typer.Option("--admin", help="Let the key manage users, keys and read the audit log")
    ] = False,
) -> None:
    """Create an API key; it is printed once, alone on the last line. Store it now."""
    from clinscribe.auth import service
    from clinscribe.auth.principal import system_actor
    from clinscribe.models import Role

    async def work(session: AsyncSession) -> tuple[str, str]:
        found = await service.find_clinic(session, clinic)
        actor = system_actor(found.id, "clinscribe api-keys create")
        created = await service.create_api_key(
            session, actor, found, name=name, role=Role(_role(admin))
        )
        return created.row.id, created.key

    key_id, key = _in_database(work)
    typer.echo(f"API key {name.strip()!r} ({key_id}, {_role(admin)}) for clinic {clinic!r}:")
    typer.echo(key)


@api_keys_app.command("revoke")
def revoke_api_key(
    clinic: Annotated[str, typer.Option(help="Name of the clinic the key belongs to")],
    key_id: Annotated[str, typer.Argument(help="The key's id (not the key itself)")],
) -> None:
    """Revoke an API key at once."""
    from clinscribe.audit.service import record
    from clinscribe.auth import repository, service
    from clinscribe.auth.principal import system_actor
    from clinscribe.db.base import utcnow
    from clinscribe.errors import NotFound

    async def work(session: AsyncSession) -> None:
        found = await service.find_clinic(session, clinic)
        row = await repository.get_api_key(session, found.id, key_id)
        if row is None:
            raise NotFound("No API key with this id in that clinic.")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            actor = system_actor(found.id, "clinscribe api-keys revoke")
            await record(session, actor, "api_key.revoked", api_key_id=row.id)

    _in_database(work)
    typer.echo(f"API key {key_id} revoked")


@keys_app.command("generate")
def generate() -> None:
    """Print a new encryption key (for CLINSCRIBE_ENCRYPTION_KEY)."""
    from clinscribe.security.crypto import generate_key

    typer.echo(generate_key())


@keys_app.command("rotate")
def rotate() -> None:
    """Re-encrypt all stored audio and text with the current key.

    Set the new key as CLINSCRIBE_ENCRYPTION_KEY and the old one(s) in
    CLINSCRIBE_PREVIOUS_ENCRYPTION_KEYS, restart every process with them, run this (the service
    may keep running), and drop the old keys only when it reports nothing left. Also encrypts
    data stored before a key was set.
    """
    from clinscribe.db.encrypted import use_keyring
    from clinscribe.db.engine import Database
    from clinscribe.db.migrate import upgrade
    from clinscribe.security.keys import keyring_from_settings
    from clinscribe.security.rotation import (
        count_stale_values,
        reencrypt_audio,
        reencrypt_database,
    )
    from clinscribe.storage.audio import AudioStore

    settings = load_settings()
    try:
        keyring = keyring_from_settings(settings)
    except ClinscribeError as error:
        fail(error)
    if not keyring.enabled:
        fail(ClinscribeError("Set CLINSCRIBE_ENCRYPTION_KEY to the new key first."))
    use_keyring(keyring)
    upgrade(settings.app_database_url)

    async def run() -> tuple[int, int]:
        database = Database(settings.app_database_url)
        try:
            rows = await reencrypt_database(database)
            return rows, await count_stale_values(database, keyring)
        finally:
            await database.dispose()

    try:
        rows, rows_left = asyncio.run(run())
    except ClinscribeError as error:
        fail(error)
    audio = AudioStore.from_settings(settings, keyring)
    try:
        files, files_left = reencrypt_audio(audio)
    except ClinscribeError as error:
        fail(error)
    finally:
        audio.close()
    typer.echo(
        f"re-encrypted {rows} database rows and {files} audio files "
        f"with key {keyring.current_key_id}"
    )
    if rows_left or files_left:
        typer.echo(
            f"error: {rows_left} values and {files_left} audio files are still under another "
            "key (written meanwhile by a process with the old key?). Restart every process "
            "with the new key and run this again before removing the old key.",
            err=True,
        )
        raise typer.Exit(code=1)
    typer.echo("nothing is left under an old key: CLINSCRIBE_PREVIOUS_ENCRYPTION_KEYS can go")
