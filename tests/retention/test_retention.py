"""Retention: audio deleted when due and not before, unsigned consultations deleted, audited."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from clinscribe.config import RetentionSettings
from clinscribe.db.base import utcnow
from clinscribe.db.encrypted import use_keyring
from clinscribe.db.engine import Database
from clinscribe.db.migrate import upgrade
from clinscribe.models import AuditEvent, Clinic, Consultation, Note, Role
from clinscribe.retention.service import apply_retention
from clinscribe.security.crypto import Keyring, generate_key, keyring_from_keys
from clinscribe.storage.audio import AudioStore
from tests.fakes.openai_compat import FakeOpenAIServer
from tests.support.server import ServerProcess, fake_stt_env

DATA = Path(__file__).resolve().parents[1] / "data"
T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def _consultation(cid: str, clinic_id: str, created_at: datetime, status: str) -> Consultation:
    return Consultation(
        id=cid,
        clinic_id=clinic_id,
        status=status,
        language="en",
        template="soap",
        stt_provider="local",
        created_at=created_at,
        updated_at=created_at,
    )


def _note(cid: str, signed_at: datetime | None) -> Note:
    return Note(
        consultation_id=cid,
        version=1,
        template="soap",
        writer="extractive",
        status="signed" if signed_at else "draft",
        signed_at=signed_at,
        signed_by="Dr A" if signed_at else None,
        created_at=T0,
    )


async def _seed(db: Database, audio: AudioStore, tmp_path: Path) -> None:
    async with db.session() as session:
        session.add(Clinic(id="c1", name="Clinic One"))
        await session.flush()
        for cid, status, signed in (
            ("signed", "completed", T0),
            ("unsigned", "completed", None),
            ("running", "processing", None),
        ):
            session.add(_consultation(cid, "c1", T0, status))
            await session.flush()
            if status == "completed":
                session.add(_note(cid, signed))
            plain = tmp_path / f"{cid}.wav"
            plain.write_bytes((DATA / "short_en.wav").read_bytes())
            audio.store(cid, "normalized", plain)


async def _state(db: Database) -> tuple[dict[str, datetime | None], list[tuple[str, str, str]]]:
    async with db.session() as session:
        rows = (await session.scalars(select(Consultation))).all()
        events = (await session.scalars(select(AuditEvent).order_by(AuditEvent.id))).all()
        return (
            {row.id: row.audio_deleted_at for row in rows},
            [(e.action, e.consultation_id or "", e.actor_type) for e in events],
        )


def test_retention_deletes_when_due_and_not_before(tmp_path: Path, app_database_url: str) -> None:
    keyring = keyring_from_keys(generate_key())
    use_keyring(keyring)
    url = app_database_url
    upgrade(url)
    audio = AudioStore(tmp_path / "audio", tmp_path / "work", keyring)
    policy = RetentionSettings(audio_days_after_signed=30, unsigned_days=90)

    async def scenario() -> None:
        db = Database(url)
        try:
            await _seed(db, audio, tmp_path)
            second = timedelta(seconds=1)

            # One second before the audio is due: nothing happens.
            result = await apply_retention(db, audio, policy, T0 + timedelta(days=30) - second)
            assert (result.audio_deleted, result.consultations_deleted) == (0, 0)
            assert audio.has("signed", "normalized")
            assert (await _state(db))[1] == []

            # Due: the signed consultation's audio goes; its transcript and note stay.
            now = T0 + timedelta(days=30) + second
            result = await apply_retention(db, audio, policy, now)
            assert (result.audio_deleted, result.consultations_deleted) == (1, 0)
            assert not audio.has("signed", "normalized")
            assert audio.has("unsigned", "normalized") and audio.has("running", "normalized")
            deleted_at, events = await _state(db)
            assert deleted_at["signed"] == now
            assert events == [("audio.deleted", "signed", "system")]

            # Running it again at the same time changes nothing (idempotent).
            result = await apply_retention(db, audio, policy, now)
            assert (result.audio_deleted, result.consultations_deleted) == (0, 0)

            # The unsigned consultation is kept until its own deadline...
            result = await apply_retention(db, audio, policy, T0 + timedelta(days=90) - second)
            assert result.consultations_deleted == 0
            # ...then deleted whole and audited; one still processing is never touched.
            result = await apply_retention(db, audio, policy, T0 + timedelta(days=90) + second)
            assert result.consultations_deleted == 1
            deleted_at, events = await _state(db)
            assert set(deleted_at) == {"signed", "running"}
            assert not audio.has("unsigned", "normalized")
            assert events[-1] == ("consultation.deleted", "unsigned", "system")
            async with db.session() as session:
                notes = (await session.scalars(select(Note.consultation_id))).all()
            assert notes == ["signed"]
        finally:
            await db.dispose()
            use_keyring(Keyring(None))

    asyncio.run(scenario())


def test_disabled_policy_deletes_nothing(tmp_path: Path, app_database_url: str) -> None:
    keyring = Keyring(None)
    url = app_database_url
    upgrade(url)
    audio = AudioStore(tmp_path / "audio", tmp_path / "work", keyring)

    async def scenario() -> None:
        db = Database(url)
        try:
            await _seed(db, audio, tmp_path)
            far_future = T0 + timedelta(days=10_000)
            result = await apply_retention(db, audio, RetentionSettings(), far_future)
            assert (result.audio_deleted, result.consultations_deleted) == (0, 0)
            assert audio.has("signed", "normalized")
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_scheduled_sweep_in_the_running_service(tmp_path: Path) -> None:
    """The DBOS schedule fires in the real service: audio goes ~3 s after signing."""
    with FakeOpenAIServer() as fake:
        env = fake_stt_env(fake.base_url)
        env["CLINSCRIBE_RETENTION__SCHEDULE"] = "* * * * * *"  # every second
        env["CLINSCRIBE_RETENTION__AUDIO_DAYS_AFTER_SIGNED"] = str(3 / 86400)
        server = ServerProcess(tmp_path / "svc", env)
        server.start()
        try:
            admin = server.provision(role=Role.ADMIN)
            consultation_id = server.upload(DATA / "short_en.wav").json()["id"]
            assert server.wait_terminal(consultation_id)["status"] == "completed"
            base = f"/api/consultations/{consultation_id}"
            with server.client() as client:
                assert client.get(f"{base}/audio").status_code == 200
                signed = client.post(f"{base}/note/sign", json={"signed_by": "Dr A"})
                assert signed.status_code == 200, signed.text
                signed_at = utcnow()
                status = 200
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and status == 200:
                    time.sleep(0.5)
                    status = client.get(f"{base}/audio").status_code
                gone_after = (utcnow() - signed_at).total_seconds()
                assert status == 404, "audio was not deleted by the scheduled sweep"
                assert gone_after >= 2.5, f"deleted too early: {gone_after:.1f} s after signing"
                assert client.get(f"{base}/transcript").status_code == 200
                assert client.get(f"{base}/note").status_code == 200
            with server.client(admin) as client:
                audit = client.get(
                    "/api/audit", params={"consultation_id": consultation_id}
                ).json()["items"]
            deletions = [e for e in audit if e["action"] == "audio.deleted"]
            assert len(deletions) == 1
            assert deletions[0]["actor_type"] == "system"
            assert deletions[0]["actor"] == "retention policy"
            assert not (server.data_dir / "audio" / consultation_id).exists()
        finally:
            server.kill()


def test_working_copies_of_a_dead_process_are_removed_at_once(tmp_path: Path) -> None:
    """Plaintext working files of a process that died are swept by the next one, not after
    an hour: a live owner holds a lock on its directory."""
    import subprocess
    import sys

    work = tmp_path / "work"
    script = (
        "import sys, time; from pathlib import Path;"
        "from clinscribe.security.crypto import Keyring;"
        "from clinscribe.storage.audio import AudioStore;"
        f"s = AudioStore(Path({str(tmp_path / 'a')!r}), Path({str(work)!r}), Keyring(None));"
        "(s.upload_dir()).mkdir(); (s.upload_dir() / 'x.upload').write_bytes(b'RIFF');"
        "print(s.process_dir(), flush=True); time.sleep(60)"
    )
    other = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None
        their_dir = Path(other.stdout.readline().strip())
        mine = AudioStore(tmp_path / "a", work, Keyring(None))
        assert mine.remove_abandoned_work() == 0  # alive: kept
        assert (their_dir / "uploads" / "x.upload").exists()
        other.kill()
        other.wait(timeout=10)
        assert mine.remove_abandoned_work() == 1  # dead: removed at once
        assert not their_dir.exists()
        with mine.workspace() as scratch:
            assert scratch.parent == mine.process_dir()
        mine.close()
        assert not any(work.iterdir())
    finally:
        other.kill()
