"""Upgrading a database from before accounts: old consultations join a "Default clinic"."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from clinscribe.db.migrate import pending_revisions, upgrade
from tests.support import backend


# Postgres: tests/test_postgres.py::test_accounts_migration_and_append_only_audit_on_postgres
@pytest.mark.sqlite_only
def test_existing_consultations_are_given_to_a_default_clinic(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite3"
    url = f"sqlite:///{path}"
    upgrade(url, "0002")
    with sqlite3.connect(path) as db:
        db.execute(
            "insert into consultations (id, status, language, template, patient_ref, "
            "audio_bytes, stt_provider, created_at, updated_at) values ('old1', 'completed', "
            "'en', 'soap', 'P-1', 10, 'local', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
        db.execute(
            "insert into notes (consultation_id, version, template, writer, status, omissions, "
            "codes, created_at) values ('old1', 1, 'soap', 'extractive', 'draft', '[]', "
            "'[{\"code\": \"J20.9\"}]', '2026-01-01 00:00:00')"
        )
    upgrade(url)
    assert pending_revisions(url) == []
    with sqlite3.connect(path) as db:
        ((clinic_id, name),) = db.execute("select id, name from clinics").fetchall()
        assert name == "Default clinic"
        row = db.execute("select clinic_id, patient_ref from consultations").fetchone()
        assert row == (clinic_id, "P-1")  # legacy plain text stays readable
        assert db.execute("select codes from notes").fetchone() == ('[{"code": "J20.9"}]',)
        # The audit log is append-only, enforced by the database.
        db.execute(
            "insert into audit_events (at, actor_type, actor_label, action, detail) "
            "values ('2026-01-01 00:00:00', 'system', 'test', 'x', '{}')"
        )
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("update audit_events set action = 'y'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("delete from audit_events")


def test_an_empty_database_gets_no_default_clinic(app_database_url: str) -> None:
    upgrade(app_database_url)
    with backend.read_only(app_database_url) as db:
        assert db.execute("select count(*) from clinics").fetchone() == (0,)
