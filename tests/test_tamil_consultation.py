"""The synthetic Tamil consultation through the real service, language ``ta``.

Through the Reverie and Sarvam fakes (which answer with the Tamil reference transcript, so the
test is about our plumbing: language codes, request limits, Unicode kept intact, no PHI in the
log), and through the real local whisper ``base`` model, whose output is only checked to be
Tamil-ish: eval/tamil_local_whisper.py measures how good it is. The recording is
``indic-doctor-patient-tts`` (AI-generated speech, CC BY 4.0), read from ``../shared/data/``;
those tests skip when it is absent.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.reverie import FakeReverieServer
from tests.fakes.sarvam import FakeSarvamServer
from tests.support.audio import SHORT_WAV
from tests.support.server import ServerProcess

DATASET = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "indic-doctor-patient-tts"
)
TAMIL_MP3 = DATASET / "audio" / "tamil" / "convo_001.mp3"
TAMIL_TEXT = DATASET / "transcripts" / "tamil" / "convo_001.txt"
SOAP_KEYS = ["subjective", "objective", "assessment", "plan"]
FAST_RETRY = {"CLINSCRIBE_RETRY__BASE_DELAY_S": "0.05", "CLINSCRIBE_RETRY__MAX_DELAY_S": "0.5"}
TAMIL_SCRIPT = re.compile(r"[\u0b80-\u0bff]")

needs_dataset = pytest.mark.skipif(
    not (TAMIL_MP3.is_file() and TAMIL_TEXT.is_file()),
    reason="indic-doctor-patient-tts not found in ../shared/data/",
)


def nfc(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def plain(text: str) -> str:
    """For error rates: NFC, punctuation and symbols as spaces, whitespace collapsed."""
    kept = (" " if unicodedata.category(c)[0] in "PS" else c for c in nfc(text))
    return " ".join("".join(kept).split())


def reference_lines() -> list[str]:
    """The Tamil transcript's turns as the file holds them (one per non-blank line)."""
    return [line.strip() for line in TAMIL_TEXT.read_text(encoding="utf-8").splitlines() if line]


def spread(lines: list[str], duration: float) -> list[tuple[float, float, str]]:
    """Each line in 90 % of an equal slot of the audio, in order."""
    step = duration / len(lines)
    return [(round(i * step, 2), round((i + 0.9) * step, 2), t) for i, t in enumerate(lines)]


def run_consultation(server: ServerProcess) -> tuple[dict[str, Any], dict[str, Any]]:
    """Upload the Tamil MP3 with language ta; the completed transcript and note."""
    response = server.upload(TAMIL_MP3, filename="convo_001.mp3", language="ta")
    assert response.status_code == 202, response.text
    consultation_id = response.json()["id"]
    body = server.wait_terminal(consultation_id, timeout_s=600)
    assert body["status"] == "completed", body
    assert body["language"] == "ta"
    with server.client() as client:
        transcript = client.get(f"/api/consultations/{consultation_id}/transcript")
        note = client.get(f"/api/consultations/{consultation_id}/note")
    assert transcript.status_code == 200, transcript.text
    assert note.status_code == 200, note.text
    return transcript.json(), note.json()


def assert_note_cites_only_utterances(note: dict[str, Any], transcript: dict[str, Any]) -> None:
    # The extractive writer's rules are English: sections may be empty, never unfounded.
    assert [section["key"] for section in note["sections"]] == SOAP_KEYS
    ids = {utterance["id"] for utterance in transcript["utterances"]}
    for section in note["sections"]:
        for sentence in section["sentences"]:
            assert sentence["evidence"], sentence
            assert set(sentence["evidence"]) <= ids, sentence


def assert_log_holds_no_tamil(server: ServerProcess, texts: list[str]) -> None:
    """PHI rule: no transcript text in the log, neither as UTF-8 nor \\u-escaped (JSON logs)."""
    raw = server.log_path.read_bytes()
    log = raw.decode("utf-8", errors="replace")
    assert log, "the server wrote no log at all"
    assert not TAMIL_SCRIPT.search(log), "Tamil text in the server log"
    for text in texts:
        for form in {text, unicodedata.normalize("NFC", text)}:
            assert form.encode() not in raw
            assert json.dumps(form)[1:-1] not in log  # ensure_ascii: \u0bb5\u0ba3...


@needs_dataset
def test_tamil_consultation_through_reverie(tmp_path: Path) -> None:
    lines = reference_lines()
    with FakeReverieServer() as fake:
        fake.transcribe = lambda audio, duration: spread(lines, duration)
        env = FAST_RETRY | {
            "CLINSCRIBE_STT_PROVIDER": "reverie",
            "CLINSCRIBE_REVERIE__BASE_URL": fake.base_url,
            "CLINSCRIBE_REVERIE__API_KEY": fake.api_key,
            "CLINSCRIBE_REVERIE__APP_ID": fake.app_id,
        }
        server = ServerProcess(tmp_path / "svc", env)
        server.start()
        try:
            transcript, note = run_consultation(server)
        finally:
            server.kill()

    # The 78 s recording fits stt_file (<= 300 s): one request, as 16 kHz WAV, in Tamil.
    audio_requests = [r for r in fake.requests if r.file_field is not None]
    assert [(r.path, r.status) for r in audio_requests] == [("/", 200)]
    (request,) = audio_requests
    assert request.headers["src_lang"] == "ta"
    assert request.headers["domain"] == "generic"
    assert request.audio_duration_s == pytest.approx(77.56, abs=0.5)
    assert fake.limit_violations == 0

    # stt_file has no timestamps: the whole text arrives as one block, every character intact.
    assert transcript["language"] == "ta"
    assert transcript["provider"] == "reverie"
    texts = [utterance["text"] for utterance in transcript["utterances"]]
    assert nfc(" ".join(texts)) == nfc(" ".join(lines))
    assert_note_cites_only_utterances(note, transcript)
    assert_log_holds_no_tamil(server, lines)


@needs_dataset
def test_tamil_consultation_through_sarvam(tmp_path: Path) -> None:
    lines = reference_lines()
    with FakeSarvamServer(api_key="sarvam-test-key") as fake:
        fake.transcribe = lambda audio, duration: [
            (start, end, text, str(i % 2))  # doctor and patient take turns
            for i, (start, end, text) in enumerate(spread(lines, duration))
        ]
        env = FAST_RETRY | {
            "CLINSCRIBE_STT_PROVIDER": "sarvam",
            "CLINSCRIBE_SARVAM__BASE_URL": fake.base_url,
            "CLINSCRIBE_SARVAM__API_KEY": "sarvam-test-key",
            "CLINSCRIBE_SARVAM__POLL_INTERVAL_S": "0.05",
        }
        server = ServerProcess(tmp_path / "svc", env)
        server.start()
        try:
            transcript, note = run_consultation(server)
        finally:
            server.kill()

    # Longer than REST's 30 s: one diarized batch job, asked for in Sarvam's spelling ta-IN.
    assert fake.requests_to("/speech-to-text", "POST") == []
    (job,) = fake.jobs.values()
    assert job.state == "Completed"
    assert job.parameters["language_code"] == "ta-IN"
    assert job.parameters["with_diarization"] is True
    created = fake.requests_to("/speech-to-text/job/v1", "POST")
    assert [r.json["job_parameters"]["language_code"] for r in created] == ["ta-IN"]
    assert all(r.status is not None and r.status < 400 for r in fake.requests), [
        (r.path, r.status) for r in fake.requests
    ]
    assert fake.limit_violations == 0

    # One utterance per diarized turn, text and order exactly as the provider sent them.
    assert transcript["language"] == "ta"
    assert transcript["provider"] == "sarvam"
    texts = [nfc(utterance["text"]) for utterance in transcript["utterances"]]
    assert texts == [nfc(line) for line in lines]
    assert_note_cites_only_utterances(note, transcript)
    assert_log_holds_no_tamil(server, lines)


def test_tamil_upload_to_an_english_only_local_model_is_refused(tmp_path: Path) -> None:
    env = {"CLINSCRIBE_STT_PROVIDER": "local", "CLINSCRIBE_LOCAL_STT__MODEL": "tiny.en"}
    server = ServerProcess(tmp_path / "svc", env)
    server.start()
    try:
        response = server.upload(SHORT_WAV, language="ta")
        with server.db() as db:
            stored = db.execute("select count(*) from consultations").fetchone()
    finally:
        server.kill()
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_language"
    assert re.search(r"\ben\b", error["message"]), error["message"]  # names what it does take
    assert stored == (0,)


# Local whisper `base` on this recording is measured by eval/tamil_local_whisper.py (about
# 2.5 minutes of CPU): an evaluation with numbers to report, not a pass/fail test.
