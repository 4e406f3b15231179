"""The pieces of an attempt that need no server: the pinned request, the body, the schedule."""

from __future__ import annotations

import ipaddress
import json

import httpx
import pytest

from clinscribe.config import WebhookSettings
from clinscribe.webhooks import signing
from clinscribe.webhooks.addresses import Target
from clinscribe.webhooks.delivery import body_of, retry_delay_s
from clinscribe.webhooks.sending import Message, build_request

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

MESSAGE = Message(
    url="https://hooks.example.org:8443/in?x=1",
    secret="whsec_test",
    body=b'{"id":"e1"}',
    event_type="note.signed",
    delivery_id="d" * 32,
    attempt=3,
)


async def test_the_request_goes_to_the_checked_address_with_the_host_name_for_tls() -> None:
    target = Target(
        url=httpx.URL(MESSAGE.url),
        host="hooks.example.org",
        port=8443,
        address=ipaddress.ip_address("93.184.215.14"),
    )
    async with httpx.AsyncClient() as client:
        request = build_request(client, target, MESSAGE, 1_800_000_000)
    assert str(request.url) == "https://93.184.215.14:8443/in?x=1"
    assert request.headers["host"] == "hooks.example.org:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.org"
    assert request.content == MESSAGE.body
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-clinscribe-event"] == "note.signed"
    assert request.headers["x-clinscribe-delivery"] == "d" * 32
    assert request.headers["x-clinscribe-attempt"] == "3"
    assert request.headers["x-clinscribe-timestamp"] == "1800000000"
    assert request.headers["x-clinscribe-signature"] == signing.sign(
        "whsec_test", 1_800_000_000, MESSAGE.body
    )


async def test_without_a_checked_address_the_url_is_used_as_it_is() -> None:
    target = Target(url=httpx.URL(MESSAGE.url), host="hooks.example.org", port=8443, address=None)
    async with httpx.AsyncClient() as client:
        request = build_request(client, target, MESSAGE, 1_800_000_000)
    assert str(request.url) == MESSAGE.url
    assert request.headers["host"] == "hooks.example.org:8443"
    assert "sni_hostname" not in request.extensions


def test_links_become_absolute_with_a_public_base_url() -> None:
    payload = {
        "id": "e1",
        "data": {"consultation_id": "c1", "links": {"consultation": "/api/consultations/c1"}},
    }
    assert json.loads(body_of(payload, None)) == payload
    absolute = json.loads(body_of(payload, "https://scribe.example.org/"))
    assert absolute["data"]["links"] == {
        "consultation": "https://scribe.example.org/api/consultations/c1"
    }
    assert payload["data"]["links"] == {"consultation": "/api/consultations/c1"}  # unchanged


def test_retries_double_from_the_first_wait_up_to_the_cap_with_jitter() -> None:
    settings = WebhookSettings()
    expected = [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    for attempt, base in enumerate(expected, start=1):
        waits = [retry_delay_s(attempt, settings) for _ in range(50)]
        assert all(base * 0.9 <= w <= min(base * 1.1, 3600) for w in waits), (attempt, waits)
    assert retry_delay_s(10_000, settings) <= 3600
    # Over 24 hours that is about 30 attempts.
    elapsed, attempts = 0.0, 1
    while elapsed + (wait := min(30 * 2 ** (attempts - 1), 3600)) <= 24 * 3600:
        elapsed += wait
        attempts += 1
    assert 28 <= attempts <= 32
