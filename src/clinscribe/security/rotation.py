"""Re-encrypting stored data with the current key (after rotation, or after enabling a key).

Safe beside a running service: rows are rewritten in small committed batches (no long write
lock), only the stored audio blobs of each consultation are touched (never a writer's
temporary file), and a consultation deleted meanwhile is skipped. A final count of values and
files still under another key tells the operator whether the old key can be dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Text, select, type_coerce
from sqlalchemy.orm import attributes

from clinscribe.db.base import Base
from clinscribe.db.encrypted import EncryptedJSON, EncryptedText
from clinscribe.db.engine import Database
from clinscribe.security.crypto import Keyring
from clinscribe.storage.audio import AudioStore

_BATCH = 200


@dataclass
class RotationResult:
    rows: int = 0
    files: int = 0
    rows_left: int = 0  # values still under another key (written meanwhile by an old process)
    files_left: int = 0


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


async def reencrypt_database(db: Database) -> int:
    """Write every encrypted value again, a committed batch at a time: the column types
    encrypt with the current key."""
    rewritten = 0
    for model, names in encrypted_columns().items():
        key = model.__mapper__.primary_key[0]
        last: object = None
        for _ in range(1_000_000):  # bounded: 200 million rows
            async with db.session() as session:
                query = select(model).order_by(key).limit(_BATCH)
                if last is not None:
                    query = query.where(key > last)
                rows = list((await session.scalars(query)).all())
                for row in rows:
                    for name in names:
                        attributes.flag_modified(row, name)
            if not rows:
                break
            rewritten += len(rows)
            last = getattr(rows[-1], key.key or "id")
    return rewritten


async def count_stale_values(db: Database, keyring: Keyring) -> int:
    """Stored values not encrypted with the current key (read raw, without decrypting)."""
    stale = 0
    async with db.session() as session:
        for model, names in encrypted_columns().items():
            for name in names:
                raw = type_coerce(getattr(model, name), Text)
                values = (await session.scalars(select(raw).where(raw.is_not(None)))).all()
                stale += sum(1 for value in values if not keyring.is_current(value))
    return stale


def reencrypt_audio(audio: AudioStore) -> tuple[int, int]:
    """Re-encrypt stored audio not under the current key, wherever it is stored (local
    directory or object storage), one blob at a time (each replaced atomically).

    Returns (files re-encrypted, files still under another key).
    """
    return audio.reencrypt()
