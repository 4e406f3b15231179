"""Re-encrypting stored data with the current key (after rotation, or after enabling a key)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import attributes

from clinscribe.db.base import Base
from clinscribe.db.encrypted import EncryptedJSON, EncryptedText
from clinscribe.security.crypto import Keyring

_BATCH = 500


def encrypted_columns() -> dict[type[Base], list[str]]:
    """Every mapped class and its encrypted attributes, found from the column types."""
    found: dict[type[Base], list[str]] = {}
    for mapper in Base.registry.mappers:
        names = [
            column.key
            for column in mapper.columns
            if isinstance(column.type, EncryptedText | EncryptedJSON) and column.key is not None
        ]
        if names:
            found[mapper.class_] = names
    return found


async def reencrypt_database(session: AsyncSession) -> int:
    """Write every encrypted value again: the column types encrypt with the current key."""
    rewritten = 0
    for model, names in encrypted_columns().items():
        key = model.__mapper__.primary_key[0]
        last = None
        while True:
            query = select(model).order_by(key).limit(_BATCH)
            if last is not None:
                query = query.where(key > last)
            rows = list((await session.scalars(query)).all())
            if not rows:
                break
            for row in rows:
                for name in names:
                    attributes.flag_modified(row, name)
            await session.flush()
            rewritten += len(rows)
            last = getattr(rows[-1], key.key or "id")
            session.expunge_all()
    return rewritten


def reencrypt_audio(audio_dir: Path, keyring: Keyring) -> int:
    """Re-encrypt audio files not under the current key, in place (atomic per file)."""
    count = 0
    if not audio_dir.exists():
        return 0
    for path in sorted(audio_dir.glob("*/*")):
        if path.is_file() and not keyring.is_current_file(path):
            keyring.encrypt_file(path, path)
            count += 1
    return count
