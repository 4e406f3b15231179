"""Column types that encrypt patient data at rest (AES-GCM, see ``security/crypto.py``).

Each column has a *purpose* (its ``table.column``) that is bound into the ciphertext, so a
value cannot be copied from one column into another and still decrypt. The process's keyring
is set once at start (:func:`use_keyring`); without a key, values are stored as plain text and
the process says so loudly at start (development only).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator

from clinscribe.security.crypto import Keyring

_keyring = Keyring(None)


def use_keyring(keyring: Keyring) -> None:
    """Set the keyring every encrypted column uses in this process (at process start)."""
    global _keyring
    _keyring = keyring


def active_keyring() -> Keyring:
    return _keyring


class EncryptedText(TypeDecorator[str]):
    impl = Text
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: str | None, dialect: object) -> str | None:
        return None if value is None else _keyring.encrypt_text(value, purpose=self.purpose)

    def process_result_value(self, value: str | None, dialect: object) -> str | None:
        return None if value is None else _keyring.decrypt_text(value, purpose=self.purpose)


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON value serialised, then encrypted as text."""

    impl = Text
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: Any, dialect: object) -> str | None:
        if value is None:
            return None
        plain = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return _keyring.encrypt_text(plain, purpose=self.purpose)

    def process_result_value(self, value: str | None, dialect: object) -> Any:
        if value is None:
            return None
        return json.loads(_keyring.decrypt_text(value, purpose=self.purpose))
