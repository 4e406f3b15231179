"""Webhook signatures: ``v1=`` HMAC-SHA256 of ``"{timestamp}.{raw body}"`` with the
subscription's secret, hex-encoded. ``verify`` is the receiver's side of docs/webhooks.md."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Clinscribe-Signature value for one request."""
    message = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def verify(
    secret: str,
    timestamp_header: str,
    signature_header: str,
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """True if the request is signed with ``secret`` and its timestamp is within the
    tolerance of now (an old request replayed later is refused)."""
    if not timestamp_header.isdigit():
        return False
    timestamp = int(timestamp_header)
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(signature_header.strip(), sign(secret, timestamp, body))
