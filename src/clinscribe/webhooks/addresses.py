"""Which URLs may receive webhooks: http(s) only, and public addresses only.

A webhook URL is chosen by a clinic admin but requested by the server, from inside the
operator's network: without a check, it could reach the cloud metadata service
(169.254.169.254), a database on localhost or an intranet admin page. So every address the
host resolves to must be public, unless ``CLINSCRIBE_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES`` is
set (then nothing is resolved or checked). The check runs when a subscription is saved and
again before every attempt, and the attempt connects to the very address that was checked
(``Target.address``), so a DNS answer that changes in between (DNS rebinding) cannot redirect
it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

from clinscribe.errors import BadRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_SETTING = "CLINSCRIBE_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES"
_EXAMPLE = "https://example.org/hooks/clinscribe"


class WebhookUrlRefused(BadRequest):
    code = "webhook_url_refused"


@dataclass(frozen=True)
class Target:
    """Where one delivery goes. ``address`` is the checked address to connect to; None when
    private addresses are allowed (the host is then resolved by the HTTP client as usual)."""

    url: httpx.URL
    host: str  # ASCII (IDNA) host name or IP literal, without brackets
    port: int
    address: IPAddress | None


def parse(url: str) -> httpx.URL:
    """An absolute http(s) URL with a host, or a refusal that says what to give instead."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, ValueError):
        raise WebhookUrlRefused(
            f"The webhook URL is not a valid URL. Give an absolute URL such as {_EXAMPLE}.",
            code="invalid_webhook_url",
        ) from None
    if parsed.scheme not in ("http", "https"):
        used = f"not {parsed.scheme}:" if parsed.scheme else "this one has no scheme"
        raise WebhookUrlRefused(
            f"Webhook URLs must use https:// (or http://), {used}. Give an absolute URL such "
            f"as {_EXAMPLE}.",
            code="invalid_webhook_url",
        )
    if not parsed.raw_host:
        raise WebhookUrlRefused(
            f"The webhook URL has no host name. Give an absolute URL such as {_EXAMPLE}.",
            code="invalid_webhook_url",
        )
    return parsed


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4 or Teredo IPv6 address."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    return address.teredo[1] if address.teredo is not None else None


def _kind(address: IPAddress) -> str | None:
    """What makes an address unfit ("loopback", "private", ...), or None if it is public."""
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "non-public"
    return None


def refusal(address: IPAddress) -> str | None:
    """What ``address`` is when it may not receive webhooks ("a loopback address"), or None."""
    embedded = _embedded_ipv4(address)
    kind = (_kind(embedded) if embedded is not None else None) or _kind(address)
    if kind is None:
        return None
    inside = f" (it embeds {embedded})" if embedded is not None else ""
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} address{inside}"


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def resolve(host: str, port: int, timeout_s: float = 5.0) -> list[IPAddress]:
    """The addresses ``host`` stands for: an IP literal itself, else the system resolver's."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout_s
        )
    except (OSError, TimeoutError, UnicodeError):
        infos = []
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise WebhookUrlRefused(
            f"The webhook URL's host {host} could not be resolved to an address. Check the "
            "spelling (and that this server's DNS works).",
            code="webhook_host_unresolved",
        )
    return found


async def check(url: str, *, allow_private: bool) -> Target:
    """Parse ``url`` and, unless private addresses are allowed, make sure every address its
    host resolves to is public. Raises :class:`WebhookUrlRefused` with what to do."""
    parsed = parse(url)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if allow_private:
        return Target(url=parsed, host=host, port=port, address=None)
    addresses = await resolve(host, port)
    for address in addresses:
        if (what := refusal(address)) is not None:
            why = f"{host} is {what}"
            if not _is_literal(host):
                why = f"{host} resolves to {address}, {what}"
            raise WebhookUrlRefused(
                f"Webhook URLs must point to a public address; {why}. To deliver inside your "
                f"own network, set {ALLOW_SETTING}=true.",
            )
    return Target(url=parsed, host=host, port=port, address=addresses[0])
