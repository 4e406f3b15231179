"""The process's keyring from settings, and the production rule that a key is required."""

from __future__ import annotations

from clinscribe.config import Settings
from clinscribe.errors import ConfigurationError
from clinscribe.security import crypto

UNENCRYPTED_WARNING = (
    "CLINSCRIBE_ENCRYPTION_KEY is not set: audio, transcripts and notes are stored UNENCRYPTED. "
    "Fine for development only; generate a key with `clinscribe keys generate`."
)


def keyring_from_settings(settings: Settings) -> crypto.Keyring:
    current = settings.encryption_key.get_secret_value() if settings.encryption_key else None
    previous = (
        settings.previous_encryption_keys.get_secret_value()
        if settings.previous_encryption_keys
        else None
    )
    if settings.environment == "production" and not (current and current.strip()):
        raise ConfigurationError(
            "CLINSCRIBE_ENCRYPTION_KEY is required when CLINSCRIBE_ENVIRONMENT=production: "
            "generate one with `clinscribe keys generate`, store it safely (losing it loses "
            "the data), and set it."
        )
    return crypto.keyring_from_keys(current, previous)
