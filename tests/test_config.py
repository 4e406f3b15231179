"""Settings: every variable is documented, names follow API.md, bad values are explained."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from clinscribe.config import Settings

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

ROOT = Path(__file__).resolve().parents[1]


def _env_names(model: type[BaseModel], prefix: str) -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += _env_names(annotation, f"{prefix}{name.upper()}__")
        else:
            names.append(f"{prefix}{name.upper()}")
    return names


def test_every_setting_is_documented_in_env_example() -> None:
    documented = (ROOT / ".env.example").read_text()
    missing = [n for n in _env_names(Settings, "CLINSCRIBE_") if n not in documented]
    assert missing == []


def test_api_md_names_exist() -> None:
    names = set(_env_names(Settings, "CLINSCRIBE_"))
    for name in (
        "CLINSCRIBE_DATA_DIR",
        "CLINSCRIBE_DATABASE_URL",
        "CLINSCRIBE_SYSTEM_DATABASE_URL",
        "CLINSCRIBE_HOST",
        "CLINSCRIBE_PORT",
        "CLINSCRIBE_DEFAULT_LANGUAGE",
        "CLINSCRIBE_MAX_UPLOAD_MB",
        "CLINSCRIBE_STT_PROVIDER",
        "CLINSCRIBE_LOCAL_STT__MODEL",
        "CLINSCRIBE_OPENAI_STT__API_KEY",
        "CLINSCRIBE_REVERIE__DOMAIN",
        "CLINSCRIBE_SARVAM__MODE",
        "CLINSCRIBE_NOTE_PROVIDER",
        "CLINSCRIBE_LLM__MODEL",
        "CLINSCRIBE_ENCRYPTION_KEY",
    ):
        assert name in names


def test_env_overrides_and_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLINSCRIBE_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("CLINSCRIBE_OPENAI_STT__MODEL", "whisper-large-v3-turbo")
    settings = Settings()
    assert settings.openai_stt.model == "whisper-large-v3-turbo"
    assert settings.app_database_url == f"sqlite:///{tmp_path / 'd' / 'clinscribe.sqlite3'}"
    assert settings.stt_provider == "local" and settings.note_provider == "extractive"
    assert settings.openai_stt.base_url == "https://api.groq.com/openai/v1"


def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLINSCRIBE_STT_PROVIDER", "whisperx")
    with pytest.raises(ValidationError) as error:
        Settings()
    assert "stt_provider" in str(error.value)


def test_postgres_urls_as_hosts_hand_them_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Render's `fromDatabase: connectionString` (and Heroku's) may say postgres://."""
    from clinscribe.db.engine import async_url, create_app_engine, sync_url

    monkeypatch.chdir(tmp_path)
    given = "postgres://clinscribe:p%40ss%2Fw0rd@dpg-abc123-a:5432/clinscribe"
    monkeypatch.setenv("CLINSCRIBE_DATABASE_URL", given)
    monkeypatch.setenv("CLINSCRIBE_SYSTEM_DATABASE_URL", given)
    settings = Settings()
    expected = "postgresql://clinscribe:p%40ss%2Fw0rd@dpg-abc123-a:5432/clinscribe"
    assert settings.app_database_url == settings.dbos_database_url == expected
    assert sync_url(settings.app_database_url) == expected.replace(
        "postgresql://", "postgresql+psycopg://"
    )
    assert async_url(settings.app_database_url).startswith("postgresql+psycopg://")
    create_app_engine(settings.app_database_url).sync_engine.dispose()  # the dialect loads

    explicit = "postgresql+psycopg://u:p@db.internal/app"
    monkeypatch.setenv("CLINSCRIBE_DATABASE_URL", explicit)
    monkeypatch.delenv("CLINSCRIBE_SYSTEM_DATABASE_URL")
    settings = Settings()
    assert settings.app_database_url == explicit
    assert settings.dbos_database_url.startswith("sqlite:///")
