"""End to end with the real local whisper model (tiny.en) on a committed consultation clip."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jiwer
import pytest

from tests.support.audio import CONSULTATION_WAV, DATA
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow


def _normalise(text: str) -> str:
    return (
        re.sub(r"\s+", " ", re.sub(r"[^a-z0-9.' ]+", " ", text.lower()))
        .replace(". ", " ")
        .strip(" .")
    )


def test_real_tiny_en_consultation_to_soap_note(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "svc", {"CLINSCRIBE_STT_PROVIDER": "local"})
    server.start()
    try:
        response = server.upload(CONSULTATION_WAV, language="en", patient_ref="PATIENT-7731")
        assert response.status_code == 202, response.text
        consultation_id = response.json()["id"]
        body = server.wait_terminal(consultation_id, timeout_s=240)
        assert body["status"] == "completed", body
        with server.client() as client:
            transcript = client.get(f"/api/consultations/{consultation_id}/transcript").json()
            note = client.get(f"/api/consultations/{consultation_id}/note").json()
    finally:
        server.kill()

    reference = json.loads((DATA / "consultation_en.json").read_text())["text"]
    hypothesis = " ".join(u["text"] for u in transcript["utterances"])
    wer = jiwer.wer(_normalise(reference), _normalise(hypothesis))
    print(f"tiny.en word error rate: {wer:.3f}")
    assert wer < 0.35

    ids = {u["id"] for u in transcript["utterances"]}
    assert [s["key"] for s in note["sections"]] == ["subjective", "objective", "assessment", "plan"]
    for section in note["sections"]:
        assert section["sentences"], f"empty {section['key']} section"
        for sentence in section["sentences"]:
            assert sentence["evidence"] and set(sentence["evidence"]) <= ids, sentence

    # No PHI in the logs: no transcript words, no note text, no patient reference.
    log = server.log_text()
    assert "PATIENT-7731" not in log
    for word in ("amoxicillin", "bronchitis", "cough", "temperature", "multivitamin"):
        assert word not in log.lower(), word
    for utterance in transcript["utterances"]:
        if len(utterance["text"]) > 20:
            assert utterance["text"] not in log
    assert "background task started" in log
    assert re.search(r"transcription completed: \d+ characters", log)
    assert re.search(r"SOAP note generated: \d+ characters", log)
    assert "background task completed" in log
