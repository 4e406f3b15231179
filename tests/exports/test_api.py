"""Exports end to end: the real service (subprocess, SQLite, DBOS) with a fake STT provider."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle

from clinscribe.models import Role
from tests.exports.poppler import pdf_text, squeezed
from tests.exports.sample import CODE_MIXED, HINDI, TAMIL
from tests.fakes.openai_compat import FakeOpenAIServer
from tests.support.accounts import TEST_PASSWORD, Account, bearer
from tests.support.audio import SHORT_WAV
from tests.support.server import ServerProcess, fake_stt_env

pytestmark = pytest.mark.slow

PATIENT = "MRN-EXPORT-7731"
EMAIL = "dr.export@example.org"
FORMATS = ("fhir", "pdf", "text")
EDIT = {
    "sections": [
        {"key": "subjective", "title": "Subjective", "sentences": [
            {"text": TAMIL, "evidence": ["u2"]},
            {"text": HINDI, "evidence": ["u2"]},
        ]},
        {"key": "objective", "title": "Objective", "sentences": [
            {"text": "Temperature 38.2 degrees.", "evidence": ["u4"]},
        ]},
        {"key": "assessment", "title": "Assessment", "sentences": []},
        {"key": "plan", "title": "Plan", "sentences": [{"text": CODE_MIXED, "evidence": ["u9"]}]},
    ]
}  # fmt: skip


@dataclass
class Service:
    server: ServerProcess
    fake: FakeOpenAIServer
    admin: Account
    other: Account
    to_sign: str  # signed by the web session test
    draft: str  # stays a draft

    def client(self, account: Account | None = None) -> httpx.Client:
        return self.server.client(account)


def _upload(server: ServerProcess, **fields: str) -> str:
    response = server.upload(SHORT_WAV, **fields)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with FakeOpenAIServer() as fake:
        server = ServerProcess(
            tmp_path_factory.mktemp("exports") / "svc", fake_stt_env(fake.base_url)
        )
        server.provision(email=EMAIL)
        admin = server.provision(role=Role.ADMIN)
        other = server.provision("Other Clinic")
        server.start()
        try:
            to_sign = _upload(server, patient_ref=PATIENT, title="Fever follow-up")
            draft = _upload(server, patient_ref=PATIENT)
            for consultation_id in (to_sign, draft):
                assert server.wait_terminal(consultation_id)["status"] == "completed"
            yield Service(server, fake, admin, other, to_sign, draft)
        finally:
            server.kill()


@contextmanager
def _signed_in(base_url: str) -> Iterator[httpx.Client]:
    """A browser-like client signed in as the clinician (cookie only, no API key)."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        page = client.get("/sign-in")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None, page.text
        form = {"email": EMAIL, "password": TEST_PASSWORD, "csrf_token": token.group(1)}
        assert client.post("/sign-in", data=form).status_code == 303
        yield client


def _error(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def test_a_draft_exports_as_text_and_fhir_but_not_as_pdf(service: Service) -> None:
    base = f"/api/consultations/{service.draft}/note"
    with service.client() as client:
        text = client.get(f"{base}/text")
        assert text.status_code == 200, text.text
        assert text.headers["content-type"] == "text/plain; charset=utf-8"
        assert text.text.splitlines()[-1] == "DRAFT \u2013 not signed (version 1)."
        assert f"Patient: {PATIENT}" in text.text
        markdown = client.get(f"{base}/text", params={"format": "markdown"})
        assert markdown.headers["content-type"] == "text/markdown; charset=utf-8"
        assert markdown.text.startswith("# SOAP note\n") and "\n## Subjective\n" in markdown.text

        fhir = client.get(f"{base}/fhir")
        assert fhir.status_code == 200 and fhir.headers["content-type"] == "application/fhir+json"
        bundle = Bundle.model_validate_json(fhir.content)
        composition = json.loads(fhir.content)["entry"][0]["resource"]
        assert composition["status"] == "preliminary" and "attester" not in composition
        assert bundle.entry is not None and len(bundle.entry) == 4  # no clinician: a key uploaded

        pdf = client.get(f"{base}/pdf")
        assert pdf.status_code == 409 and _error(pdf) == "not_signed"
        assert "sign it first" in pdf.json()["error"]["message"].lower()

        for export in FORMATS:
            missing = client.get(f"{base}/{export}", params={"version": 99})
            assert missing.status_code == 404 and _error(missing) == "note_not_found", export
        assert client.get(f"{base}/text", params={"format": "html"}).status_code == 422


def test_a_signed_note_in_tamil_and_hindi_exports_through_a_web_session(
    service: Service, tmp_path: Path
) -> None:
    base = f"/api/consultations/{service.to_sign}/note"
    with _signed_in(service.server.base_url) as browser:
        me = browser.get("/api/me").json()
        csrf = {"X-CSRF-Token": me["csrf_token"]}
        assert browser.put(base, json=EDIT, headers=csrf).status_code == 200
        signed = browser.post(f"{base}/sign", json={}, headers=csrf)
        assert signed.status_code == 200 and signed.json()["version"] == 2, signed.text
        # GETs with the cookie alone: no CSRF header needed.
        pdf = browser.get(f"{base}/pdf")
        text = browser.get(f"{base}/text")
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf"
    disposition = f'attachment; filename="note-{service.to_sign}-v2.pdf"'
    assert pdf.headers["content-disposition"] == disposition
    path = tmp_path / "note.pdf"
    path.write_bytes(pdf.content)
    printed = pdf_text(path)
    for expected in ("Subjective", "Objective", "Assessment", "Plan", PATIENT, "Test Clinic"):
        assert expected in printed, expected
    for sentence in (TAMIL, HINDI, CODE_MIXED, "Temperature 38.2 degrees."):
        assert squeezed(sentence) in squeezed(printed), sentence
    assert f"Electronically signed by {me['name']} on" in printed

    assert text.text.splitlines()[-1].startswith(f"Electronically signed by {me['name']} on ")
    assert f"- {TAMIL}" in text.text.splitlines() and f"- {HINDI}" in text.text.splitlines()

    with service.client() as client:
        fhir = client.get(f"{base}/fhir")
        first = client.get(f"{base}/pdf", params={"version": 1})
    document = json.loads(fhir.content)
    Bundle.model_validate(document)
    resources = {e["resource"]["resourceType"]: e["resource"] for e in document["entry"]}
    composition = resources["Composition"]
    assert composition["status"] == "final" and composition["attester"][0]["mode"] == "legal"
    assert resources["DocumentReference"]["docStatus"] == "final"
    assert resources["Practitioner"]["identifier"][0]["value"] == me["id"]
    assert resources["Practitioner"]["name"] == [{"text": me["name"]}]
    clinic_id = me["clinic"]["id"]
    assert resources["Patient"]["identifier"][0] == {
        "use": "usual",
        "system": f"urn:clinscribe:clinic:{clinic_id}:patient",
        "value": PATIENT,
    }
    assert TAMIL in composition["section"][0]["text"]["div"]
    assert first.status_code == 409 and _error(first) == "not_signed"  # v1 was never signed


def test_another_clinics_consultation_answers_exactly_like_a_missing_one(service: Service) -> None:
    with service.client(service.other) as client:
        for export in FORMATS:
            foreign = client.get(f"/api/consultations/{service.draft}/note/{export}")
            missing = client.get(f"/api/consultations/{'0' * 32}/note/{export}")
            assert foreign.status_code == 404 and _error(foreign) == "consultation_not_found"
            assert (foreign.status_code, foreign.content) == (missing.status_code, missing.content)
    with httpx.Client(base_url=service.server.base_url, timeout=30) as anonymous:
        response = anonymous.get(f"/api/consultations/{service.draft}/note/text")
        assert response.status_code == 401


def test_every_export_is_audited_with_format_and_version_only(service: Service) -> None:
    with service.client() as client:
        for export in ("fhir", "text"):
            assert (
                client.get(f"/api/consultations/{service.draft}/note/{export}").status_code == 200
            )
        client.get(f"/api/consultations/{service.draft}/note/text", params={"format": "markdown"})
        assert client.get(f"/api/consultations/{service.draft}/note/pdf").status_code == 409
    with httpx.Client(
        base_url=service.server.base_url, timeout=30, headers=bearer(service.admin)
    ) as admin:
        page = admin.get(
            "/api/audit",
            params={"consultation_id": service.draft, "action": "note.exported", "limit": 200},
        ).json()
    details = [item["detail"] for item in page["items"]]
    assert {"version": 1, "format": "fhir"} in details
    assert {"version": 1, "format": "text"} in details
    assert {"version": 1, "format": "markdown"} in details
    assert all(d["format"] != "pdf" for d in details)  # the refused PDF exported nothing
    assert all(set(d) == {"version", "format"} for d in details)


def test_exports_wait_for_processing_to_complete(service: Service) -> None:
    service.fake.latency_s = 3.0
    try:
        consultation_id = _upload(service.server, patient_ref=PATIENT)
        with service.client() as client:
            for export in FORMATS:
                response = client.get(f"/api/consultations/{consultation_id}/note/{export}")
                assert response.status_code == 409 and _error(response) == "not_completed"
    finally:
        service.fake.latency_s = 0.0
    assert service.server.wait_terminal(consultation_id)["status"] == "completed"


def test_no_patient_text_reaches_the_log(service: Service) -> None:
    log = service.server.log_text()
    for phi in (PATIENT, TAMIL, HINDI, CODE_MIXED, "Fever follow-up"):
        assert phi not in log
