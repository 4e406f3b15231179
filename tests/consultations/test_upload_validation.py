"""Bad uploads answer 4xx with a message saying what to fix, and leave nothing stored."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.openai_compat import FakeOpenAIServer
from tests.support.audio import DATA, SHORT_WAV
from tests.support.server import ServerProcess, fake_stt_env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with FakeOpenAIServer() as fake:
        env = fake_stt_env(fake.base_url) | {"CLINSCRIBE_MAX_UPLOAD_MB": "1"}
        proc = ServerProcess(tmp_path_factory.mktemp("upload") / "svc", env)
        proc.start()
        try:
            yield proc
        finally:
            proc.kill()


def _stored_nothing(server: ServerProcess) -> None:
    with server.db() as db:
        assert db.execute("select count(*) from consultations").fetchone() == (0,)
        assert db.execute("select count(*) from consultation_events").fetchone() == (0,)
    audio_dir = server.data_dir / "audio"
    assert not audio_dir.exists() or not any(audio_dir.iterdir())
    # Partial uploads live in the process's working directory and are removed at once.
    leftovers = [p for p in (server.data_dir / "work").rglob("*") if p.is_file()]
    assert [p.name for p in leftovers] == [".owner"] * len(leftovers), leftovers


def _wav_with_bytes(size: int) -> bytes:
    header = SHORT_WAV.read_bytes()[:44]
    return header + b"\x01\x00" * ((size - 44) // 2)


CASES: list[tuple[str, dict[str, object], int, str, str]] = [
    # name, request kwargs, status, error code, a phrase the message must contain
    (
        "not audio",
        {"files": {"audio": ("visit.wav", (DATA / "not_audio.txt").read_bytes())}},
        422,
        "not_audio",
        "not audio",
    ),
    ("empty", {"files": {"audio": ("visit.wav", b"")}}, 422, "invalid_audio", "empty"),
    (
        "truncated",
        {"files": {"audio": ("visit.wav", (DATA / "truncated.wav").read_bytes())}},
        422,
        "truncated_audio",
        "upload it again",
    ),
    (
        "zero duration",
        {"files": {"audio": ("z.wav", (DATA / "silence_zero.wav").read_bytes())}},
        422,
        "zero_duration",
        "no sound",
    ),
    (
        "oversized",
        {"files": {"audio": ("big.wav", _wav_with_bytes(1_300_000))}},
        413,
        "upload_too_large",
        "1 MB limit",
    ),
    (
        "random bytes",
        {"files": {"audio": ("x.mp3", bytes(range(256)) * 64)}},
        422,
        "not_audio",
        "WAV, MP3",
    ),
    (
        "wrong language",
        {"files": {"audio": ("v.wav", SHORT_WAV.read_bytes())}, "data": {"language": "tamil"}},
        422,
        "unsupported_language",
        "ISO 639-1",
    ),
    (
        "unknown language code",
        {"files": {"audio": ("v.wav", SHORT_WAV.read_bytes())}, "data": {"language": "xx"}},
        422,
        "unsupported_language",
        "ta",
    ),
    (
        "unknown template",
        {"files": {"audio": ("v.wav", SHORT_WAV.read_bytes())}, "data": {"template": "poem"}},
        400,
        "unknown_template",
        "soap",
    ),
    (
        "no audio field",
        {"files": {"recording": ("v.wav", SHORT_WAV.read_bytes())}},
        400,
        "missing_audio",
        "'audio'",
    ),
    ("not multipart", {"json": {"audio": "x"}}, 400, "bad_upload", "multipart/form-data"),
    (
        "title too long",
        {"files": {"audio": ("v.wav", SHORT_WAV.read_bytes())}, "data": {"title": "t" * 300}},
        400,
        "too_long",
        "200 characters",
    ),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "status", "code", "phrase"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_upload_is_refused_and_leaves_nothing(
    server: ServerProcess,
    name: str,
    kwargs: dict[str, object],
    status: int,
    code: str,
    phrase: str,
) -> None:
    with server.client() as client:
        response = client.post("/api/consultations", **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert phrase.lower() in error["message"].lower()
    _stored_nothing(server)


def test_announced_oversized_body_is_refused_before_reading(server: ServerProcess) -> None:
    """A client announcing 2 GB gets 413 at once, without the server reading the body."""
    head = (
        "POST /api/consultations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Authorization: Bearer {server.account.api_key}\r\n"
        f"Content-Length: {2 << 30}\r\nConnection: close\r\n\r\n"
    ).encode()
    part = b'--b\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n'
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + part + b"\x00" * 1024)
        chunks: list[bytes] = []
        for _ in range(100):  # the server closes the connection after its answer
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        reply = b"".join(chunks).decode("latin-1")
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    assert "upload_too_large" in reply
    _stored_nothing(server)


def test_filename_with_path_is_stored_safely(server: ServerProcess, tmp_path: Path) -> None:
    response = server.upload(SHORT_WAV, filename="../../etc/passwd.wav")
    assert response.status_code == 202, response.text
    consultation_id = response.json()["id"]
    with server.db() as db:
        (name,) = db.execute(
            "select original_filename from consultations where id = ?", (consultation_id,)
        ).fetchone()
    assert server.keyring().decrypt_text(name, purpose="consultations.original_filename") == (
        "passwd.wav"
    )
    assert (server.data_dir / "audio" / consultation_id / "original").is_file()
    # Clean up so the "nothing stored" checks of other cases stay meaningful.
    with server.client() as client:
        server.wait_terminal(consultation_id)
        assert client.delete(f"/api/consultations/{consultation_id}").status_code == 204


def test_abandoned_partial_uploads_are_removed_at_start(tmp_path: Path) -> None:
    import os
    import time

    from clinscribe.consultations.upload import remove_abandoned_uploads

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    old, fresh = uploads / "a.upload", uploads / "b.upload"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert remove_abandoned_uploads(uploads) == 1
    assert not old.exists() and fresh.exists()  # a fresh one may belong to a live upload
    assert remove_abandoned_uploads(tmp_path / "missing") == 0


def _multipart(parts: bytes) -> tuple[bytes, dict[str, str]]:
    return parts, {"content-type": "multipart/form-data; boundary=b"}


def test_body_without_closing_boundary_is_refused(server: ServerProcess) -> None:
    audio = SHORT_WAV.read_bytes()
    body, headers = _multipart(
        b'--b\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n' + audio
    )  # cut off: no "\r\n--b--"
    with server.client() as client:
        response = client.post("/api/consultations", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "incomplete_upload"
    _stored_nothing(server)


def test_oversized_part_header_is_refused(server: ServerProcess) -> None:
    body, headers = _multipart(
        b'--b\r\nContent-Disposition: form-data; name="audio"; filename="'
        + b"a" * 20_000 + b'.wav"\r\n\r\nxx\r\n--b--\r\n'
    )  # fmt: skip
    with server.client() as client:
        response = client.post("/api/consultations", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_upload"  # never buffered without bound
    _stored_nothing(server)
