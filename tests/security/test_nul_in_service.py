"""A NUL character in an id, a sign-in form or an upload's text fields answers 422 on every
database, and stores nothing (PostgreSQL cannot hold one in text: it was a 500 there)."""

from __future__ import annotations

from tests.auth.test_sign_in import _browser, _sign_in
from tests.consultations.test_upload_validation import _stored_nothing
from tests.support.audio import SHORT_WAV
from tests.support.server import ServerProcess


def test_nul_characters_are_refused_with_what_to_fix(fake_server: ServerProcess) -> None:
    content = SHORT_WAV.read_bytes()
    with fake_server.client() as client:
        by_id = client.get("/api/consultations/ab%00cd")
        searched = client.get("/api/consultations?q=a%00b")
        uploaded = client.post(
            "/api/consultations",
            files={"audio": ("visit.wav", content, "audio/wav")},
            data={"language": "en", "title": "Follow-up\x00", "patient_ref": "MRN-1"},
        )
        listed = client.get("/api/consultations").json()["items"]
    with _browser(fake_server) as browser:
        signed_in = _sign_in(browser, "dr\x00@example.org", "any password")
    for response in (by_id, searched, uploaded, signed_in):
        assert response.status_code == 422, (response.request.url, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_text" and "Remove it" in error["message"]
    assert listed == []
    _stored_nothing(fake_server)  # the refused upload left nothing behind
