"""The URL and address policy: http(s) only, public addresses only unless the setting allows
private ones; the messages say which address and what to set. IP literals and localhost only:
no DNS lookup of a public name."""

from __future__ import annotations

import ipaddress

import pytest

from clinscribe.webhooks.addresses import WebhookUrlRefused, check, refusal

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

ALLOW = "CLINSCRIBE_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES=true"

REFUSED_ADDRESSES = {
    "http://127.0.0.1/hook": "127.0.0.1 is a loopback address",
    "http://127.0.0.2:8080/hook": "127.0.0.2 is a loopback address",
    "http://[::1]:9000/": "::1 is a loopback address",
    "http://localhost/hook": "localhost resolves to 127.0.0.1, a loopback address",
    "https://10.0.0.5/hook": "10.0.0.5 is a private address",
    "https://172.16.3.4/hook": "172.16.3.4 is a private address",
    "https://192.168.1.20/hook": "192.168.1.20 is a private address",
    "http://169.254.169.254/latest/meta-data/": "169.254.169.254 is a link-local address",
    "http://0.0.0.0:8000/": "0.0.0.0 is an unspecified address",
    "http://[::ffff:10.0.0.1]/": "::ffff:10.0.0.1 is a private address (it embeds 10.0.0.1)",
    "http://[::ffff:127.0.0.1]/": "is a loopback address (it embeds 127.0.0.1)",
    "http://[2002:a00:1::]/": "a private address (it embeds 10.0.0.1)",  # 6to4
    "http://[fc00::1]/": "fc00::1 is a private address",
    "http://[fe80::1]/": "fe80::1 is a link-local address",
    "http://100.64.0.1/": "100.64.0.1 is a non-public address",  # carrier-grade NAT
    "http://224.0.0.1/": "224.0.0.1 is a multicast address",
    "http://2130706433/": "2130706433 resolves to 127.0.0.1, a loopback address",
    "http://0x7f.1/": "0x7f.1 resolves to 127.0.0.1, a loopback address",
}

INVALID_URLS = {
    "ftp://example.org/hook": "must use https:// (or http://), not ftp:",
    "file:///etc/passwd": "not file:",
    "javascript:alert(1)": "not javascript:",
    "example.org/hook": "this one has no scheme",
    "http:///hook": "has no host name",
    "https://": "has no host name",
    "http://[::1": "not a valid URL",
}


@pytest.mark.parametrize(("url", "reason"), REFUSED_ADDRESSES.items())
async def test_private_addresses_are_refused_by_default(url: str, reason: str) -> None:
    with pytest.raises(WebhookUrlRefused) as refused:
        await check(url, allow_private=False)
    assert refused.value.code == "webhook_url_refused" and refused.value.status_code == 400
    message = refused.value.message
    assert message.startswith("Webhook URLs must point to a public address; ")
    assert reason in message and message.endswith(f"set {ALLOW}.")


@pytest.mark.parametrize("url", REFUSED_ADDRESSES)
async def test_the_setting_allows_private_addresses(url: str) -> None:
    target = await check(url, allow_private=True)
    assert target.address is None  # not resolved: the HTTP client connects as usual
    assert target.url.scheme == "http" or target.url.scheme == "https"


@pytest.mark.parametrize(("url", "reason"), INVALID_URLS.items())
@pytest.mark.parametrize("allow_private", [False, True])
async def test_only_http_urls_with_a_host(url: str, reason: str, allow_private: bool) -> None:
    with pytest.raises(WebhookUrlRefused) as refused:
        await check(url, allow_private=allow_private)
    assert refused.value.code == "invalid_webhook_url"
    assert reason in refused.value.message
    assert "https://example.org/hooks/clinscribe" in refused.value.message


async def test_public_addresses_are_accepted_and_pinned() -> None:
    target = await check("https://93.184.215.14:8443/hooks?x=1", allow_private=False)
    assert target.address == ipaddress.ip_address("93.184.215.14")
    assert (target.host, target.port) == ("93.184.215.14", 8443)
    target = await check("http://[2606:4700::1111]/", allow_private=False)
    assert target.address == ipaddress.ip_address("2606:4700::1111") and target.port == 80


def test_refusal_names_the_kind_of_address() -> None:
    assert refusal(ipaddress.ip_address("8.8.8.8")) is None
    assert refusal(ipaddress.ip_address("2001:4860:4860::8888")) is None
    assert refusal(ipaddress.ip_address("192.0.2.1")) == "a private address"  # TEST-NET-1
    assert refusal(ipaddress.ip_address("240.0.0.1")) == "a private address"
