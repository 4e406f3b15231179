"""The clinician's pages over plain HTTP: tenancy, search, sign-in redirects (no browser)."""

from __future__ import annotations

import re
import time

import httpx

from clinscribe.models import Role
from tests.support.accounts import TEST_PASSWORD
from tests.support.audio import SHORT_WAV
from tests.support.server import TERMINAL, ServerProcess


def signed_in(server: ServerProcess, email: str, next_url: str | None = None) -> httpx.Client:
    client = httpx.Client(base_url=server.base_url, timeout=30)
    page = client.get("/sign-in", params={"next": next_url} if next_url else None)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    form = {"email": email, "password": TEST_PASSWORD, "csrf_token": token.group(1)}
    if next_url is not None:
        form["next"] = next_url
    answer = client.post("/sign-in", data=form)
    assert answer.status_code == 303, answer.text
    client.headers["x-test-location"] = answer.headers["location"]
    return client


def upload(server: ServerProcess, account_client: httpx.Client, **fields: str) -> str:
    answer = account_client.post(
        "/api/consultations",
        files={"audio": ("visit.wav", SHORT_WAV.read_bytes(), "audio/wav")},
        data=fields,
    )
    assert answer.status_code == 202, answer.text
    consultation_id = str(answer.json()["id"])
    deadline = time.monotonic() + 60
    while account_client.get(f"/api/consultations/{consultation_id}").json()["status"] not in (
        TERMINAL
    ):
        assert time.monotonic() < deadline, server.log_text()[-2000:]
        time.sleep(0.1)
    return consultation_id


def test_pages_show_only_the_callers_clinic_and_search_finds_by_patient(
    fake_server: ServerProcess,
) -> None:
    fake_server.provision(role=Role.CLINICIAN, email="own@clinic.test")
    other = fake_server.provision("Other Clinic", role=Role.CLINICIAN, email="other@clinic.test")
    with fake_server.client() as own_api, fake_server.client(other) as other_api:
        mine = upload(fake_server, own_api, patient_ref="MRN-1001", title="Knee pain")
        upload(fake_server, own_api, patient_ref="MRN-2002", title="Asthma review")
        theirs = upload(fake_server, other_api, patient_ref="MRN-9999", title="Secret visit")
    browser = signed_in(fake_server, "own@clinic.test")
    try:
        listing = browser.get("/").text
        assert "MRN-1001" in listing and "MRN-2002" in listing
        assert "MRN-9999" not in listing and "Secret visit" not in listing
        found = browser.get("/consultations/rows", params={"q": "knee"}).text
        assert "MRN-1001" in found and "MRN-2002" not in found
        assert "MRN-1001" in browser.get("/consultations/rows", params={"q": "mrn-1001"}).text
        today = browser.get(
            "/consultations/rows", params={"from": "2000-01-01", "to": "2000-01-02"}
        )
        assert "MRN-1001" not in today.text and "No consultations match" in today.text
        # Another clinic's consultation: the page says not found and shows nothing of it.
        for path in (f"/consultations/{theirs}", f"/consultations/{theirs}/note"):
            page = browser.get(path)
            assert page.status_code == 404
            assert "MRN-9999" not in page.text and "Secret visit" not in page.text
        # Searches are GETs: the access log keeps the path, never the query.
        log = fake_server.log_text()
        assert "/consultations/rows?" in log and "q=" not in log
        assert "knee" not in log.lower() and "mrn-1001" not in log.lower()
        assert browser.get(f"/consultations/{mine}").status_code == 200
        note = browser.get(f"/consultations/{mine}/note")
        assert note.status_code == 200 and 'class="sentence' in note.text
    finally:
        browser.close()


def test_sign_in_returns_to_the_page_asked_for_and_never_to_another_site(
    fake_server: ServerProcess,
) -> None:
    fake_server.provision(role=Role.CLINICIAN, email="own@clinic.test")
    with httpx.Client(base_url=fake_server.base_url) as anonymous:
        answer = anonymous.get("/consultations/new")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/sign-in?next=%2Fconsultations%2Fnew"
    client = signed_in(fake_server, "own@clinic.test", "/consultations/new")
    assert client.headers["x-test-location"] == "/consultations/new"
    for hostile in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        client = signed_in(fake_server, "own@clinic.test", hostile)
        assert client.headers["x-test-location"] == "/", hostile
