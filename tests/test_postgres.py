"""The service on PostgreSQL (app database and DBOS system database), not SQLite."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from clinscribe.db.migrate import upgrade
from tests.fakes.openai_compat import FakeFault, FakeOpenAIServer
from tests.support.audio import SHORT_WAV
from tests.support.postgres import PostgresCluster
from tests.support.server import ServerProcess, fake_stt_env


def test_consultation_completes_fails_and_retries_on_postgres(
    tmp_path: Path, postgres: PostgresCluster, fake_stt: FakeOpenAIServer
) -> None:
    env = fake_stt_env(fake_stt.base_url) | {
        "CLINSCRIBE_DATABASE_URL": postgres.url(postgres.create_database("app")),
        "CLINSCRIBE_SYSTEM_DATABASE_URL": postgres.url(
            postgres.create_database("sys"), driver=False
        ),
    }
    server = ServerProcess(tmp_path / "svc", env)
    server.start()
    try:
        first = server.upload(SHORT_WAV).json()["id"]
        assert server.wait_terminal(first)["status"] == "completed"

        fake_stt.faults.append(FakeFault.invalid_key())
        second = server.upload(SHORT_WAV).json()["id"]
        failed = server.wait_terminal(second)
        assert failed["status"] == "failed"
        assert failed["error"]["code"] == "provider_auth_failed"
        with server.client() as client:
            assert client.post(f"/api/consultations/{second}/retry").status_code == 202
            assert server.wait_terminal(second)["status"] == "completed"
            note = client.get(f"/api/consultations/{second}/note").json()
            assert note["sections"][0]["key"] == "subjective"
            assert client.delete(f"/api/consultations/{first}").status_code == 204
            assert client.get(f"/api/consultations/{first}").status_code == 404
            page = client.get("/api/consultations").json()
            assert [item["id"] for item in page["items"]] == [second]
        # The SQLite files of the default setup were never created.
        assert not (server.data_dir / "clinscribe.sqlite3").exists()
        assert not (server.data_dir / "workflows.sqlite3").exists()
    finally:
        server.kill()


def test_accounts_migration_and_append_only_audit_on_postgres(postgres: PostgresCluster) -> None:
    name = postgres.create_database("mig")
    upgrade(postgres.url(name), "0002")
    with psycopg.connect(postgres.url(name, driver=False), autocommit=True) as db:
        db.execute(
            "insert into consultations (id, status, language, template, audio_bytes, "
            "stt_provider, created_at, updated_at) values ('old1', 'completed', 'en', 'soap', "
            "10, 'local', now(), now())"
        )
        db.execute(
            "insert into notes (consultation_id, version, template, writer, status, omissions, "
            "codes, created_at) values ('old1', 1, 'soap', 'extractive', 'draft', '[]', '[]', "
            "now())"
        )
    upgrade(postgres.url(name))
    with psycopg.connect(postgres.url(name, driver=False), autocommit=True) as db:
        row = db.execute(
            "select c.name from consultations join clinics c on c.id = clinic_id"
        ).fetchone()
        assert row == ("Default clinic",)
        assert db.execute("select codes from notes").fetchone() == ("[]",)
        db.execute(
            "insert into audit_events (at, actor_type, actor_label, action, detail) "
            "values (now(), 'system', 'test', 'x', '{}')"
        )
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            db.execute("update audit_events set action = 'y'")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            db.execute("delete from audit_events")
