"""The operator commands, run as a user would: create-admin, api-keys, keys generate/rotate."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from sqlalchemy import select

from clinscribe.db.encrypted import use_keyring
from clinscribe.db.engine import Database
from clinscribe.models import UtteranceRow
from clinscribe.security.crypto import Keyring, is_encrypted_file, keyring_from_keys
from tests.fakes.openai_compat import FakeOpenAIServer
from tests.support import backend
from tests.support.audio import SHORT_WAV
from tests.support.server import ServerProcess, fake_stt_env
from tests.test_cli import _run


def test_create_admin_and_api_key_as_operators_script_them(tmp_path: Path) -> None:
    env = {"CLINSCRIBE_DATA_DIR": str(tmp_path / "data")} | backend.database_env(tmp_path / "data")
    created = _run(
        "users", "create-admin", "--clinic", "Asha Clinic", "--email", "Admin@Asha.org",
        "--password-stdin", env=env, stdin="a long enough password\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "a long enough password" not in created.stdout + created.stderr

    again = _run(
        "users", "create-admin", "--clinic", "Asha Clinic", "--email", "admin@asha.org",
        "--password-stdin", env=env, stdin="another long password\n",
    )  # fmt: skip
    assert again.returncode == 2 and "already exists" in again.stderr

    weak = _run(
        "users", "create-admin", "--clinic", "Asha Clinic", "--email", "b@asha.org",
        "--password-stdin", env=env, stdin="short\n",
    )  # fmt: skip
    assert weak.returncode == 2 and "at least 12 characters" in weak.stderr

    key = _run("api-keys", "create", "--clinic", "Asha Clinic", "--name", "EMR", env=env)
    assert key.returncode == 0, key.stderr
    secret = key.stdout.strip().splitlines()[-1]
    assert secret.startswith("csk_") and len(secret) > 40
    database = backend.read_only(backend.data_dir_database_url(tmp_path / "data"))
    (stored,) = database.execute("select key_hash from api_keys").fetchone()
    assert secret not in stored and len(stored) == 64  # only a hash is kept
    (hashed,) = database.execute("select password_hash from users").fetchone()
    assert hashed.startswith("$argon2id$")

    missing = _run("api-keys", "create", "--clinic", "No Such", "--name", "x", env=env)
    assert missing.returncode == 2 and "No clinic named 'No Such'" in missing.stderr
    no_stdin = _run("users", "create-admin", "--clinic", "A", "--email", "x@y.org", env=env)
    assert no_stdin.returncode == 2 and "--password-stdin" in no_stdin.stderr


def test_keys_generate_prints_a_valid_key() -> None:
    result = _run("keys", "generate")
    assert result.returncode == 0
    assert len(base64.b64decode(result.stdout.strip(), validate=True)) == 32
    assert _run("keys", "generate").stdout != result.stdout


def test_production_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    env = {"CLINSCRIBE_ENVIRONMENT": "production", "CLINSCRIBE_DATA_DIR": str(tmp_path)}
    result = _run("serve", "--port", "1", env=env)
    assert result.returncode != 0
    assert "CLINSCRIBE_ENCRYPTION_KEY is required" in result.stdout + result.stderr
    bad = _run("serve", env=env | {"CLINSCRIBE_ENCRYPTION_KEY": "not-a-key"})
    assert bad.returncode != 0 and "base64 of 32 random bytes" in bad.stdout + bad.stderr
    assert "not-a-key" not in bad.stdout + bad.stderr


def _utterance_values(database: str) -> list[str]:
    with backend.read_only(database) as db:
        return [text for (text,) in db.execute("select text from utterances")]


def test_rotation_reencrypts_audio_and_text_with_the_new_key(tmp_path: Path) -> None:
    with FakeOpenAIServer() as fake:
        server = ServerProcess(tmp_path / "svc", fake_stt_env(fake.base_url))
        server.start()
        try:
            consultation_id = server.upload(SHORT_WAV).json()["id"]
            assert server.wait_terminal(consultation_id)["status"] == "completed"
        finally:
            server.stop()
    old_key = server.encryption_key
    old = keyring_from_keys(old_key)
    database = server.database_url
    assert all(v.startswith(f"enc1:{old.current_key_id}:") for v in _utterance_values(database))

    new_key = _run("keys", "generate").stdout.strip()
    env = {
        "CLINSCRIBE_DATA_DIR": str(server.data_dir),
        "CLINSCRIBE_ENCRYPTION_KEY": new_key,
        "CLINSCRIBE_PREVIOUS_ENCRYPTION_KEYS": old_key,
    } | backend.database_env(server.data_dir)
    rotated = _run("keys", "rotate", env=env)
    assert rotated.returncode == 0, rotated.stderr
    assert "2 audio files" in rotated.stdout
    assert "nothing is left under an old key" in rotated.stdout

    new = keyring_from_keys(new_key)  # the new key alone now reads everything
    values = _utterance_values(database)
    assert values and all(v.startswith(f"enc1:{new.current_key_id}:") for v in values)
    audio = server.data_dir / "audio" / consultation_id
    for path in audio.iterdir():
        assert is_encrypted_file(path) and new.is_current_file(path)
    with new.open_reader(audio / "audio.flac") as reader:
        assert reader.read(4) == b"fLaC"

    async def read_back() -> list[str]:
        use_keyring(new)
        db = Database(database)
        try:
            async with db.session() as session:
                return list((await session.scalars(select(UtteranceRow.text))).all())
        finally:
            await db.dispose()
            use_keyring(Keyring(None))

    assert any(text.strip() for text in asyncio.run(read_back()))

    # The service restarted with only the new key serves the consultation.
    server.encryption_key = new_key
    with FakeOpenAIServer() as fake:
        server.extra_env = server.extra_env | fake_stt_env(fake.base_url)
        server.start()
        try:
            with server.client() as client:
                transcript = client.get(f"/api/consultations/{consultation_id}/transcript")
                assert transcript.status_code == 200
                audio_response = client.get(f"/api/consultations/{consultation_id}/audio")
                assert audio_response.content[:4] == b"fLaC"
        finally:
            server.kill()


def test_rotation_encrypts_data_stored_before_a_key_was_set(tmp_path: Path) -> None:
    with FakeOpenAIServer() as fake:
        server = ServerProcess(tmp_path / "svc", fake_stt_env(fake.base_url))
        server.encryption_key = ""  # development without a key: stored in the clear
        server.start()
        try:
            consultation_id = server.upload(SHORT_WAV, patient_ref="P-77").json()["id"]
            assert server.wait_terminal(consultation_id)["status"] == "completed"
        finally:
            server.stop()
    assert "unencrypted" in server.log_text().lower()
    database = server.database_url
    audio = server.data_dir / "audio" / consultation_id / "audio.flac"
    assert not any(v.startswith("enc1:") for v in _utterance_values(database))
    assert audio.read_bytes()[:4] == b"fLaC"

    key = _run("keys", "generate").stdout.strip()
    env = {"CLINSCRIBE_DATA_DIR": str(server.data_dir), "CLINSCRIBE_ENCRYPTION_KEY": key}
    env |= backend.database_env(server.data_dir)
    rotated = _run("keys", "rotate", env=env)
    assert rotated.returncode == 0, rotated.stderr
    keyring = keyring_from_keys(key)
    assert all(keyring.is_current(v) for v in _utterance_values(database))
    with backend.read_only(database) as db:
        (patient_ref,) = db.execute("select patient_ref from consultations").fetchone()
    assert keyring.decrypt_text(patient_ref, purpose="consultations.patient_ref") == "P-77"
    assert is_encrypted_file(audio) and keyring.is_current_file(audio)
