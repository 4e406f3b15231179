"""One delivery attempt: check the address, sign, POST, and say what happened.

Nothing here raises for a receiver's fault: every way an attempt can go wrong becomes an
:class:`Outcome` with an HTTP status or a short error kind, which the delivery log shows.
Redirects are not followed (a redirect could lead to an address the check refused).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from clinscribe import __version__
from clinscribe.webhooks import addresses, signing
from clinscribe.webhooks.addresses import Target, WebhookUrlRefused

USER_AGENT = f"clinscribe-webhooks/{__version__}"


@dataclass(frozen=True)
class Message:
    """What one attempt sends; the same body and delivery id on every attempt."""

    url: str
    secret: str
    body: bytes
    event_type: str
    delivery_id: str
    attempt: int


@dataclass(frozen=True)
class Outcome:
    status_code: int | None = None
    # address_refused, host_unresolved, invalid_url, timeout, connection_error, tls_error,
    # protocol_error (or interrupted, set by the delivery log for an attempt a crash cut off)
    error: str | None = None
    duration_ms: int = 0

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def headers_for(message: Message, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Clinscribe-Event": message.event_type,
        "X-Clinscribe-Delivery": message.delivery_id,
        "X-Clinscribe-Attempt": str(message.attempt),
        "X-Clinscribe-Timestamp": str(timestamp),
        "X-Clinscribe-Signature": signing.sign(message.secret, timestamp, message.body),
    }


def build_request(
    client: httpx.AsyncClient, target: Target, message: Message, timestamp: int
) -> httpx.Request:
    """The POST, sent to the checked address when there is one: the URL's host goes into
    the Host header and, for https, into TLS (SNI and certificate check) instead."""
    url = target.url
    headers = headers_for(message, timestamp)
    extensions: dict[str, str] = {}
    if target.address is not None:
        headers["Host"] = target.url.netloc.decode("ascii")
        url = target.url.copy_with(host=str(target.address))
        if target.url.scheme == "https" and target.host != str(target.address):
            extensions["sni_hostname"] = target.host
    return client.build_request(
        "POST", url, content=message.body, headers=headers, extensions=extensions
    )


def _error_kind(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    if isinstance(error, httpx.ConnectError):
        cause = f"{error!r} {error.__cause__!r}".lower()
        return "tls_error" if "ssl" in cause or "certificate" in cause else "connection_error"
    return "protocol_error"


async def send(message: Message, *, allow_private: bool, timeout_s: float) -> Outcome:
    """Check the URL's address again (DNS may have changed), then POST the signed message."""
    started = time.perf_counter()

    def outcome(status_code: int | None = None, error: str | None = None) -> Outcome:
        elapsed = int((time.perf_counter() - started) * 1000)
        return Outcome(status_code=status_code, error=error, duration_ms=elapsed)

    try:
        target = await addresses.check(message.url, allow_private=allow_private)
    except WebhookUrlRefused as refused:
        return outcome(error=_refusal_kind(refused.code))
    async with httpx.AsyncClient(
        timeout=timeout_s, follow_redirects=False, trust_env=False
    ) as client:
        request = build_request(client, target, message, int(time.time()))
        try:
            async with asyncio.timeout(timeout_s):  # in total, not per read
                response = await client.send(request, stream=True)
                await response.aclose()  # the status is all we keep
        except TimeoutError:
            return outcome(error="timeout")
        except httpx.HTTPError as error:
            return outcome(error=_error_kind(error))
    return outcome(status_code=response.status_code)


def _refusal_kind(code: str) -> str:
    return {
        "webhook_host_unresolved": "host_unresolved",
        "invalid_webhook_url": "invalid_url",
    }.get(code, "address_refused")
