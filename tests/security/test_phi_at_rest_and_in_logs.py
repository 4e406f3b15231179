"""One full consultation through the real pipeline (local whisper tiny.en, DEBUG logging),
then the two privacy promises are checked on what is left on disk and in the log:

* raw stored files and raw database bytes (app and workflow databases, WAL files included)
  hold no plaintext audio header and none of the transcript's words;
* the complete log output holds none of the transcript's content words and no patient
  reference, title or file name.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from pathlib import Path

import pytest

from tests.support.audio import CONSULTATION_WAV
from tests.support.server import ServerProcess

# Reads the raw bytes of the SQLite files (the Postgres pass skips it).
pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]

PATIENT_REF = "MRN-58213-KAVYA"
TITLE = "Kavya Raman follow-up"
FILENAME = "kavya_raman_visit.wav"
AUDIO_MAGIC = (b"RIFF", b"ID3", b"OggS", b"fLaC", b"\x00\x00\x00\x20ftyp", b"\x1aE\xdf\xa3")
# Words our own log lines are made of; a transcript word that is also one of these cannot
# tell a leak from a log message, so it is left out (listed here, not guessed).
LOG_VOCABULARY = {"started", "completed", "audio", "note", "today"}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 4}


def _schema_words(database: Path) -> set[str]:
    """Words of the database's own schema (table names, trigger messages): not patient data."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        return _words(
            " ".join(sql for (sql,) in db.execute("select sql from sqlite_master") if sql)
        )


def test_no_patient_data_at_rest_or_in_logs(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "svc", {"CLINSCRIBE_STT_PROVIDER": "local", "CLINSCRIBE_LOG_LEVEL": "DEBUG"}
    )
    server.start()
    try:
        response = server.upload(
            CONSULTATION_WAV, filename=FILENAME, patient_ref=PATIENT_REF, title=TITLE
        )
        assert response.status_code == 202, response.text
        consultation_id = response.json()["id"]
        assert server.wait_terminal(consultation_id, timeout_s=240)["status"] == "completed"
        with server.client() as client:
            base = f"/api/consultations/{consultation_id}"
            transcript = client.get(f"{base}/transcript").json()
            note = client.get(f"{base}/note").json()
            assert client.get(f"{base}/audio").content[:4] == b"fLaC"  # served decrypted
    finally:
        server.stop()

    spoken = " ".join(u["text"] for u in transcript["utterances"])
    written = " ".join(s["text"] for sec in note["sections"] for s in sec["sentences"])
    content_words = _words(spoken) - LOG_VOCABULARY
    assert len(content_words) >= 40, "too few words to make the check meaningful"
    secrets = [PATIENT_REF, TITLE, "kavya", "raman"]

    # 1. Nothing readable at rest.
    schema = _schema_words(server.data_dir / "clinscribe.sqlite3") | _schema_words(
        server.data_dir / "workflows.sqlite3"
    )
    # Phrases of two words (ciphertext, binary or base64, holds no spaces between letters) and
    # words of 7+ letters: any transcript text stored in the clear contains some, while a
    # short word turns up by chance in megabytes of ciphertext.
    tokens = re.findall(r"[a-z]+", spoken.lower())
    phrases = {f"{a} {b}" for a, b in itertools.pairwise(tokens)}
    at_rest = sorted(phrases | {w for w in content_words - schema if len(w) >= 7})
    assert len(at_rest) >= 100
    stored = [p for p in server.data_dir.rglob("*") if p.is_file() and p.name != "server.log"]
    assert any(p.parent.name == consultation_id for p in stored)
    upload = CONSULTATION_WAV.read_bytes()
    step = len(upload) // 17
    windows = [upload[i : i + 32] for i in range(step, 16 * step + 1, step)]
    leaks: list[str] = []
    for path in stored:
        raw = path.read_bytes()
        if path.parent.name == consultation_id:
            # A container header would sit at the start; a 3-byte magic found somewhere in
            # megabytes of ciphertext is chance, so the middle is checked with long windows.
            leaks += [f"{path.name}: {m!r}" for m in AUDIO_MAGIC if raw.startswith(m)]
            if b"WAVEfmt " in raw:
                leaks.append(f"{path.name}: WAV header")
            leaks += [f"{path.name}: audio bytes" for w in windows if w in raw]
        lowered = raw.lower()
        leaks += [
            f"{path.relative_to(server.data_dir)}: {word!r}"
            for word in at_rest + [s.lower() for s in secrets]
            if re.search(rb"\b" + re.escape(word.encode()) + rb"\b", lowered)
        ]
    assert not leaks, "plaintext at rest:\n" + "\n".join(leaks[:30])
    assert not any((server.data_dir / "work").iterdir()), "working copies left behind"

    # 2. Nothing readable in the complete log.
    log = server.log_text()
    assert "background task completed" in log  # the log is the real one
    log_words = _words(log)
    leaked_words = sorted(content_words & log_words)
    assert not leaked_words, f"transcript words in the log: {leaked_words}"
    assert not (_words(written) - LOG_VOCABULARY) & log_words
    for secret in [*secrets, FILENAME]:
        assert secret.lower() not in log.lower(), secret
