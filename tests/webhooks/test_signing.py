"""Signatures: what clinscribe signs is what the documented recipe (docs/webhooks.md) accepts,
and nothing else: another secret, a changed body or timestamp, an old request."""

from __future__ import annotations

import time

import pytest

from clinscribe.webhooks import signing
from tests.webhooks.receiver import documented_verify

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

SECRET = signing.new_secret()
BODY = b'{"id":"e1","type":"note.signed","data":{"consultation_id":"c1"}}'


def test_the_documented_recipe_accepts_a_fresh_signature() -> None:
    verify = documented_verify()
    now = int(time.time())
    signature = signing.sign(SECRET, now, BODY)
    assert signature.startswith("v1=") and len(signature) == 3 + 64
    assert verify(SECRET, str(now), signature, BODY)
    assert signing.verify(SECRET, str(now), signature, BODY)


def test_the_documented_recipe_refuses_forgeries_and_replays() -> None:
    verify = documented_verify()
    now = int(time.time())
    signature = signing.sign(SECRET, now, BODY)
    other_secret = signing.new_secret()
    assert other_secret != SECRET and other_secret.startswith("whsec_")
    forged = [
        (other_secret, str(now), signature, BODY),  # another subscription's secret
        (SECRET, str(now), signature, BODY.replace(b"c1", b"c2")),  # body changed
        (SECRET, str(now + 1), signature, BODY),  # timestamp changed
        (SECRET, str(now), signature.upper(), BODY),
        (SECRET, "", signature, BODY),
        (SECRET, "12.5", signature, BODY),
    ]
    for case in forged:
        assert not verify(*case), case
        assert not signing.verify(*case), case
    old = now - 301  # a captured request replayed after the 5-minute tolerance
    assert not verify(SECRET, str(old), signing.sign(SECRET, old, BODY), BODY)
    assert not signing.verify(SECRET, str(old), signing.sign(SECRET, old, BODY), BODY)
    assert signing.verify(SECRET, str(old), signing.sign(SECRET, old, BODY), BODY, now=old + 10)
