"""Webhooks end to end: the real service (subprocess, SQLite, DBOS) delivers to a real receiver
on 127.0.0.1 (loopback explicitly allowed by CLINSCRIBE_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES),
which checks every signature with the recipe printed in docs/webhooks.md and processes each
delivery once by its idempotency key. Every wait is bounded."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clinscribe.models import Role
from tests.fakes.openai_compat import FakeFault, FakeOpenAIServer
from tests.support.accounts import Account, bearer
from tests.support.audio import SHORT_WAV
from tests.support.postgres import PostgresCluster
from tests.support.server import ServerProcess, fake_stt_env
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.slow

PATIENT_REF = "MRN-HOOK-77310"
TITLE = "Follow-up for Meena Iyer"
FAST_RETRIES = {
    "CLINSCRIBE_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES": "true",  # the receiver is on 127.0.0.1
    "CLINSCRIBE_WEBHOOKS__FIRST_RETRY_S": "0.3",
    "CLINSCRIBE_WEBHOOKS__MAX_RETRY_S": "1",
    "CLINSCRIBE_WEBHOOKS__TIMEOUT_S": "5",
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def start_server(
    tmp_path: Path, fake: FakeOpenAIServer, extra: dict[str, str] | None = None
) -> tuple[ServerProcess, Account]:
    server = ServerProcess(
        tmp_path / "svc", fake_stt_env(fake.base_url) | FAST_RETRIES | (extra or {})
    )
    admin = server.provision(role=Role.ADMIN)
    server.start()
    return server, admin


def subscribe(
    server: ServerProcess, admin: Account, receiver: Receiver, path: str, **body: Any
) -> str:
    with httpx.Client(base_url=server.base_url, headers=bearer(admin), timeout=30) as api:
        response = api.post("/api/webhooks", json={"url": receiver.base_url + path, **body})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["secret"].startswith("whsec_")
    receiver.secrets[path] = created["secret"]
    return str(created["id"])


def deliveries(server: ServerProcess, admin: Account, webhook_id: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=server.base_url, headers=bearer(admin), timeout=30) as api:
        response = api.get(f"/api/webhooks/{webhook_id}/deliveries")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def wait_until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s}s")


def finished_delivery(
    server: ServerProcess, admin: Account, webhook_id: str, event_type: str, timeout_s: float
) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        for item in deliveries(server, admin, webhook_id):
            if item["event_type"] == event_type and item["status"] != "pending":
                return item
        return None

    return dict(wait_until(finished, timeout_s, f"a finished {event_type} delivery"))


def test_retried_until_the_receiver_recovers_then_processed_once(
    tmp_path: Path, fake_stt: FakeOpenAIServer, receiver: Receiver
) -> None:
    server, admin = start_server(tmp_path, fake_stt)
    try:
        plain = subscribe(
            server, admin, receiver, "/plain", events=["consultation.completed", "note.signed"]
        )
        with_phi = subscribe(
            server, admin, receiver, "/phi", events=["note.signed"], include_phi=True
        )
        gone = subscribe(server, admin, receiver, "/gone", events=["consultation.completed"])
        receiver.answer("/plain", 503, 503, 503)  # down for three attempts, then up
        receiver.answer("/gone", 410)

        uploaded = server.upload(SHORT_WAV, patient_ref=PATIENT_REF, title=TITLE)
        assert uploaded.status_code == 202, uploaded.text
        cid = uploaded.json()["id"]
        assert server.wait_terminal(cid)["status"] == "completed"

        logged = finished_delivery(server, admin, plain, "consultation.completed", 30)
        assert logged["status"] == "delivered", logged
        assert [a["status_code"] for a in logged["attempts"]] == [503, 503, 503, 200]
        assert all(a["error"] is None and a["duration_ms"] >= 0 for a in logged["attempts"])
        sent = receiver.requests_to("/plain")
        assert len(sent) == 4, sent
        assert {r.delivery_id for r in sent} == {logged["id"]}  # the idempotency key
        assert [r.attempt for r in sent] == [1, 2, 3, 4]
        assert [r.answered for r in sent] == [503, 503, 503, 200]
        assert all(r.signature_ok for r in sent)
        assert receiver.processed[logged["id"]] is sent[-1]
        assert receiver.duplicates[logged["id"]] == 0
        body = sent[-1].body
        assert body["id"] == logged["event_id"] and body["type"] == "consultation.completed"
        assert sent[-1].event_type == "consultation.completed"
        assert body["data"] == {
            "consultation_id": cid,
            "status": "completed",
            "note_version": 1,
            "links": {
                "consultation": f"/api/consultations/{cid}",
                "note": f"/api/consultations/{cid}/note?version=1",
            },
        }
        print(
            f"\nreceiver down for 3 attempts: {len(sent)} requests, one delivery id, "
            f"processed {sum(1 for k in receiver.processed if k == logged['id'])}x, "
            f"duplicates {receiver.duplicates[logged['id']]}"
        )

        # 410 Gone: no retries, and the subscription is disabled.
        gone_log = finished_delivery(server, admin, gone, "consultation.completed", 15)
        assert (gone_log["status"], gone_log["failure_reason"]) == ("failed", "receiver_gone")
        assert len(gone_log["attempts"]) == 1
        with httpx.Client(base_url=server.base_url, headers=bearer(admin), timeout=30) as api:
            state = api.get(f"/api/webhooks/{gone}").json()
        assert (state["enabled"], state["disabled_reason"]) == (False, "receiver_gone")

        # note.signed: ids only by default; the note itself only where patient data was asked.
        with server.client() as clinician:
            signed = clinician.post(
                f"/api/consultations/{cid}/note/sign", json={"signed_by": "Dr Webhook"}
            )
        assert signed.status_code == 200, signed.text
        for webhook_id in (plain, with_phi):
            logged = finished_delivery(server, admin, webhook_id, "note.signed", 15)
            assert logged["status"] == "delivered", logged
        plain_signed = next(
            r
            for r in receiver.requests_to("/plain")
            if r.attempt == 1 and r.event_type == "note.signed"
        )
        phi_signed = receiver.requests_to("/phi")[0]
        assert plain_signed.body["id"] == phi_signed.body["id"]  # one event, two deliveries
        assert plain_signed.delivery_id != phi_signed.delivery_id
        data = plain_signed.body["data"]
        assert data["note_version"] == 1 and data["signed_by"].startswith("Dr Webhook")
        assert not {"patient_ref", "title", "note"} & data.keys()
        assert PATIENT_REF not in str(plain_signed.body)
        phi = phi_signed.body["data"]
        assert (phi["patient_ref"], phi["title"]) == (PATIENT_REF, TITLE)
        assert phi["note"]["sections"] and any(s["sentences"] for s in phi["note"]["sections"])

        # Stored messages are encrypted at rest; patient data is in none of them in clear.
        with server.db() as db:
            stored = [row[0] for row in db.execute("select payload from webhook_deliveries")]
        assert stored and all(value.startswith("enc1:") for value in stored)
        assert not any(PATIENT_REF in value for value in stored)
    finally:
        server.kill()
    assert PATIENT_REF not in server.log_text() and TITLE not in server.log_text()


def test_sigkill_mid_delivery_is_delivered_after_restart_and_processed_once(
    tmp_path: Path, fake_stt: FakeOpenAIServer, receiver: Receiver
) -> None:
    server, admin = start_server(tmp_path, fake_stt)
    try:
        webhook = subscribe(server, admin, receiver, "/hook", events=["consultation.completed"])
        receiver.hold_s = 20.0  # the first request is processed, then held open (bounded)
        cid = server.upload(SHORT_WAV).json()["id"]
        receiver.wait_for(lambda: len(receiver.received) == 1, 30, "the first request")
        server.kill()  # mid-delivery: the receiver has the request, clinscribe has no answer
        receiver.release.set()
        first = receiver.received[0]
        assert first.signature_ok and receiver.processed == {first.delivery_id: first}

        server.start()
        logged = finished_delivery(server, admin, webhook, "consultation.completed", 45)
        assert logged["status"] == "delivered", logged
        assert [(a["error"], a["status_code"]) for a in logged["attempts"]] == [
            ("interrupted", None),
            (None, 200),
        ]
        sent = receiver.requests_to("/hook")
        assert [r.delivery_id for r in sent] == [logged["id"]] * 2  # same idempotency key
        assert all(r.signature_ok for r in sent)
        assert list(receiver.processed) == [logged["id"]]  # processed once
        assert receiver.duplicates[logged["id"]] == 1  # the repeat was recognised by its key
        assert server.wait_terminal(cid)["status"] == "completed"
        print(
            f"\nSIGKILL mid-delivery: {len(sent)} requests with one delivery id, processed "
            f"once, {receiver.duplicates[logged['id']]} duplicate recognised by the receiver"
        )
    finally:
        server.kill()


def test_failed_consultation_gives_up_after_the_window_then_redelivery_succeeds(
    tmp_path: Path, fake_stt: FakeOpenAIServer, receiver: Receiver
) -> None:
    # A 3.6 s retry window instead of 24 h.
    window = {
        "CLINSCRIBE_WEBHOOKS__GIVE_UP_AFTER_H": "0.001",
        "CLINSCRIBE_WEBHOOKS__MAX_RETRY_S": "0.6",
    }
    server, admin = start_server(tmp_path, fake_stt, window)
    try:
        webhook = subscribe(server, admin, receiver, "/down", events=["consultation.failed"])
        receiver.answer("/down", *[500] * 100)
        fake_stt.faults.append(FakeFault.invalid_key())
        cid = server.upload(SHORT_WAV).json()["id"]
        failed = server.wait_terminal(cid)
        assert failed["status"] == "failed"

        logged = finished_delivery(server, admin, webhook, "consultation.failed", 30)
        assert (logged["status"], logged["failure_reason"]) == ("failed", "gave_up")
        assert len(logged["attempts"]) >= 3
        assert {a["status_code"] for a in logged["attempts"]} == {500}
        first, last = logged["attempts"][0]["at"], logged["attempts"][-1]["at"]
        assert first < last
        assert not receiver.processed
        body = receiver.requests_to("/down")[0].body
        assert body["type"] == "consultation.failed"
        assert body["data"]["error"]["code"] == failed["error"]["code"]
        assert body["data"]["links"] == {"consultation": f"/api/consultations/{cid}"}

        receiver.answer("/down")  # back up
        with httpx.Client(base_url=server.base_url, headers=bearer(admin), timeout=30) as api:
            again = api.post(f"/api/webhooks/{webhook}/deliveries/{logged['id']}/redeliver")
            assert again.status_code == 202, again.text
            audit = api.get("/api/audit", params={"action": "webhook.redelivered"}).json()
        new = again.json()
        assert new["redelivery_of"] == logged["id"] and new["id"] != logged["id"]
        assert new["event_id"] == logged["event_id"] and new["status"] == "pending"
        assert audit["items"] and audit["items"][0]["detail"]["new_delivery_id"] == new["id"]

        def redelivered() -> dict[str, Any] | None:
            items = {item["id"]: item for item in deliveries(server, admin, webhook)}
            return items[new["id"]] if items[new["id"]]["status"] != "pending" else None

        done = wait_until(redelivered, 15, "the redelivery")
        assert done["status"] == "delivered" and len(done["attempts"]) == 1
        assert list(receiver.processed) == [new["id"]]
        assert receiver.processed[new["id"]].body["id"] == logged["event_id"]
    finally:
        server.kill()


def test_private_and_non_http_urls_are_refused_by_default(
    fake_server: ServerProcess,
) -> None:
    admin = fake_server.provision(role=Role.ADMIN)
    refused = {
        "http://127.0.0.1:8080/hook": "127.0.0.1 is a loopback address",
        "http://localhost/hook": "localhost resolves to 127.0.0.1, a loopback address",
        "https://10.0.0.5/hook": "10.0.0.5 is a private address",
        "http://169.254.169.254/latest/meta-data": "169.254.169.254 is a link-local address",
        "http://[::ffff:10.0.0.1]/": "(it embeds 10.0.0.1)",
        "ftp://example.org/hook": "must use https:// (or http://), not ftp:",
        "file:///etc/passwd": "not file:",
    }
    with httpx.Client(base_url=fake_server.base_url, headers=bearer(admin), timeout=30) as api:
        for url, reason in refused.items():
            response = api.post("/api/webhooks", json={"url": url, "events": ["note.signed"]})
            assert response.status_code == 400, (url, response.text)
            error = response.json()["error"]
            assert error["code"] in ("webhook_url_refused", "invalid_webhook_url"), error
            assert reason in error["message"], error
            if error["code"] == "webhook_url_refused":
                assert "CLINSCRIBE_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES=true" in error["message"]
        assert api.get("/api/webhooks").json() == []

        # A public address is accepted (and, disabled, never sent anything); changing it to a
        # private one is refused the same way.
        created = api.post(
            "/api/webhooks",
            json={"url": "https://93.184.215.14/hook", "events": ["note.signed"], "enabled": False},
        )
        assert created.status_code == 201, created.text
        webhook = created.json()["id"]
        moved = api.patch(f"/api/webhooks/{webhook}", json={"url": "http://192.168.1.20/"})
        assert moved.status_code == 400 and "192.168.1.20 is a private address" in moved.text
        listed = api.get("/api/webhooks").json()
        assert [w["url"] for w in listed] == ["https://93.184.215.14/hook"]
        assert "secret" not in listed[0]
        assert api.delete(f"/api/webhooks/{webhook}").status_code == 204
        assert api.get(f"/api/webhooks/{webhook}").status_code == 404


def test_delivery_on_postgres(
    tmp_path: Path, postgres: PostgresCluster, fake_stt: FakeOpenAIServer, receiver: Receiver
) -> None:
    databases = {
        "CLINSCRIBE_DATABASE_URL": postgres.url(postgres.create_database("app")),
        "CLINSCRIBE_SYSTEM_DATABASE_URL": postgres.url(
            postgres.create_database("sys"), driver=False
        ),
    }
    server, admin = start_server(tmp_path, fake_stt, databases)
    try:
        webhook = subscribe(server, admin, receiver, "/pg", events=["consultation.completed"])
        receiver.answer("/pg", 502)
        cid = server.upload(SHORT_WAV).json()["id"]
        assert server.wait_terminal(cid)["status"] == "completed"
        logged = finished_delivery(server, admin, webhook, "consultation.completed", 30)
        assert logged["status"] == "delivered"
        assert [a["status_code"] for a in logged["attempts"]] == [502, 200]
        assert list(receiver.processed) == [logged["id"]]
        assert all(r.signature_ok for r in receiver.requests_to("/pg"))
    finally:
        server.kill()
