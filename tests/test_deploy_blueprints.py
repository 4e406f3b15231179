"""The Render Blueprints: render.yaml (free tier: Render Postgres, audio in object storage, no
disk) and deploy/render-disk.yaml (a paid instance with a persistent disk and SQLite).

They must be well-formed Blueprints, name only real settings with valid values, keep secrets
out of the file, install the extras their settings need, and be documented in docs/deploy.md.
The free one's settings, with Render's kind of database URL, run the real service.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tomllib
import typing
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from clinscribe.config import Settings
from clinscribe.security.crypto import generate_key
from tests.fakes.openai_compat import FakeOpenAIServer
from tests.storage.conftest import S3Server, s3_server  # noqa: F401  (the fixture)
from tests.support.audio import SHORT_WAV
from tests.support.postgres import PostgresCluster
from tests.support.server import ServerProcess, fake_stt_env

ROOT = Path(__file__).resolve().parents[1]
FREE = ROOT / "render.yaml"
DISK = ROOT / "deploy" / "render-disk.yaml"
DEPLOY_GUIDE = ROOT / "docs" / "deploy.md"

ROOT_KEYS = {"services", "databases", "envVarGroups", "previews", "projects", "ungrouped"}
ENV_SOURCES = {"value", "sync", "generateValue", "fromDatabase", "fromService", "fromGroup"}
# Credentials that are not SecretStr in Settings but must not be committed either.
EXTRA_SECRETS = {"CLINSCRIBE_STORAGE__S3_ACCESS_KEY_ID"}


def _setting_fields(model: type[BaseModel], prefix: str = "CLINSCRIBE_") -> dict[str, FieldInfo]:
    """Every environment variable of Settings (nested sections with __), as tests/test_config.py
    derives them for .env.example."""
    fields: dict[str, FieldInfo] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields |= _setting_fields(annotation, f"{prefix}{name.upper()}__")
        else:
            fields[f"{prefix}{name.upper()}"] = field
    return fields


SETTINGS = _setting_fields(Settings)
SECRETS = {
    name
    for name, field in SETTINGS.items()
    if field.annotation is SecretStr or SecretStr in typing.get_args(field.annotation)
} | EXTRA_SECRETS


def _load(path: Path) -> dict[str, Any]:
    blueprint = yaml.safe_load(path.read_text())
    assert isinstance(blueprint, dict), path
    return blueprint


def _service(blueprint: dict[str, Any]) -> dict[str, Any]:
    services = blueprint["services"]
    assert len(services) == 1, "one clinscribe service per Blueprint"
    service: dict[str, Any] = services[0]
    return service


def _env(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["key"]: entry for entry in service["envVars"]}


def _literal(service: dict[str, Any], key: str) -> str | None:
    entry = _env(service).get(key)
    return None if entry is None else entry.get("value")


def _settings_from(
    service: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Settings:
    """The Settings the service would start with; values Render supplies are stand-ins."""
    monkeypatch.chdir(tmp_path)  # no .env
    for name in [n for n in os.environ if n.startswith("CLINSCRIBE_")]:
        monkeypatch.delenv(name)
    for key, entry in _env(service).items():
        if not key.startswith("CLINSCRIBE_"):
            continue
        if "value" in entry:
            monkeypatch.setenv(key, entry["value"])
        elif "fromDatabase" in entry:
            monkeypatch.setenv(key, "postgresql://clinscribe:secret@dpg-example-a/clinscribe")
        elif key == "CLINSCRIBE_ENCRYPTION_KEY":
            monkeypatch.setenv(key, generate_key())
        else:
            monkeypatch.setenv(key, "entered-in-the-dashboard")
    return Settings()


@pytest.mark.parametrize("path", [FREE, DISK], ids=["free", "disk"])
def test_blueprint_structure(path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blueprint = _load(path)
    assert set(blueprint) <= ROOT_KEYS
    service = _service(blueprint)
    for field in ("name", "plan", "buildCommand", "startCommand", "healthCheckPath", "envVars"):
        assert service.get(field), field
    assert service["type"] == "web" and service["runtime"] == "python"
    assert service["healthCheckPath"] in {"/readyz", "/healthz"}
    # Render routes to $PORT on all interfaces; `serve` includes the worker.
    command = shlex.split(service["startCommand"])
    assert command[:2] == ["clinscribe", "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "$PORT"
    assert "scaling" not in service  # one process per database: never autoscaled

    keys = [entry["key"] for entry in service["envVars"]]
    assert len(keys) == len(set(keys)), "a variable is set twice"
    for entry in service["envVars"]:
        sources = ENV_SOURCES & set(entry)
        assert len(sources) == 1, f"{entry['key']}: exactly one source, got {sources}"
        assert set(entry) == {"key"} | sources
        if "value" in entry:
            assert isinstance(entry["value"], str), f"{entry['key']}: quote the value"
        if "sync" in entry:
            assert entry["sync"] is False
        if "fromDatabase" in entry:
            database = entry["fromDatabase"]
            names = [d["name"] for d in blueprint.get("databases", [])]
            assert database["name"] in names and database["property"] == "connectionString"

    unknown = [k for k in keys if k.startswith("CLINSCRIBE_") and k not in SETTINGS]
    assert unknown == []
    for key in SECRETS & set(keys):
        assert _env(service)[key] == {"key": key, "sync": False}, f"{key} must be sync: false"
    # Anything that looks like a credential is not committed either.
    for key in keys:
        if re.search(r"(KEY|SECRET|PASSWORD|TOKEN)(_ID)?$", key):
            assert _env(service)[key] == {"key": key, "sync": False}, key

    # The literal values are valid settings, and production has its key.
    settings = _settings_from(service, monkeypatch, tmp_path)
    assert settings.environment == "production"
    assert settings.encryption_key is not None

    # PYTHON_VERSION pins a full version the project supports.
    version = _literal(service, "PYTHON_VERSION")
    assert version is not None and re.fullmatch(r"3\.\d+\.\d+", version)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    minimum = re.fullmatch(r">=\s*3\.(\d+)", project["requires-python"])
    assert minimum is not None and int(version.split(".")[1]) >= int(minimum.group(1))

    # The build installs the extras these settings need, and only extras that exist.
    install = re.fullmatch(r"pip install '\.\[([a-z0-9,]+)\]'", service["buildCommand"])
    assert install is not None, service["buildCommand"]
    extras = set(install.group(1).split(","))
    assert extras <= set(project["optional-dependencies"]) - {"dev"}
    assert settings.stt_provider != "local" or "local" in extras
    assert settings.storage.backend != "s3" or "s3" in extras


def test_free_blueprint_keeps_nothing_on_the_instance(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blueprint = _load(FREE)
    service = _service(blueprint)
    assert service["plan"] == "free"
    assert "disk" not in service
    [database] = blueprint["databases"]
    assert database["plan"] == "free"
    assert database["databaseName"] and database["user"]
    env = _env(service)
    for key in ("CLINSCRIBE_DATABASE_URL", "CLINSCRIBE_SYSTEM_DATABASE_URL"):
        assert env[key]["fromDatabase"] == {
            "name": database["name"],
            "property": "connectionString",
        }
    settings = _settings_from(service, monkeypatch, tmp_path)
    assert settings.storage.backend == "s3"
    assert settings.storage.s3_bucket  # asked for at creation
    assert not settings.app_database_url.startswith("sqlite")
    assert not settings.dbos_database_url.startswith("sqlite")


def test_disk_blueprint_is_one_instance_with_sqlite_on_the_disk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blueprint = _load(DISK)
    assert "databases" not in blueprint
    service = _service(blueprint)
    assert service["plan"] != "free"  # free services have no disks
    assert service.get("numInstances", 1) == 1
    disk = service["disk"]
    assert set(disk) == {"name", "mountPath", "sizeGB"}
    assert isinstance(disk["sizeGB"], int) and disk["sizeGB"] > 0
    mount = Path(disk["mountPath"])
    assert _literal(service, "CLINSCRIBE_DATA_DIR") == disk["mountPath"]
    assert "CLINSCRIBE_DATABASE_URL" not in _env(service)
    assert "CLINSCRIBE_SYSTEM_DATABASE_URL" not in _env(service)
    settings = _settings_from(service, monkeypatch, tmp_path)
    assert settings.app_database_url == f"sqlite:///{mount / 'clinscribe.sqlite3'}"
    assert settings.dbos_database_url == f"sqlite:///{mount / 'workflows.sqlite3'}"
    assert settings.storage.backend == "local" and settings.audio_dir.parent == mount
    assert settings.resolved_templates_dir.parent == mount


def test_every_blueprint_variable_is_explained_in_the_deploy_guide() -> None:
    guide = DEPLOY_GUIDE.read_text()
    for path in (FREE, DISK):
        for key in _env(_service(_load(path))):
            assert f"`{key}`" in guide, f"{key} ({path.name}) is not described in docs/deploy.md"
    assert "deploy/render-disk.yaml" in guide
    assert "(docs/deploy.md)" in (ROOT / "README.md").read_text()


class _RenderLikeServer(ServerProcess):
    """The harness provisions its test clinic through its own URL; the service gets Render's."""

    def __init__(self, data_dir: Path, env: dict[str, str], harness_url: str) -> None:
        super().__init__(data_dir, env)
        self._harness_url = harness_url

    @property
    def database_url(self) -> str:
        return self._harness_url


@pytest.mark.slow
def test_free_blueprint_settings_run_the_service_and_survive_a_wiped_disk(
    tmp_path: Path,
    postgres: PostgresCluster,
    s3_server: S3Server,  # noqa: F811
    fake_stt: FakeOpenAIServer,
) -> None:
    """One Postgres database for both URLs, given as postgres://... (Render's connection
    string), audio in a bucket, production mode. A spun-down free instance comes back with an
    empty disk: everything must still be there."""
    name = postgres.create_database("render")
    render_url = postgres.url(name, driver=False).replace("postgresql://", "postgres://", 1)
    bucket = s3_server.new_bucket()
    supplied = s3_server.env(bucket) | {"CLINSCRIBE_ENCRYPTION_KEY": generate_key()}
    env: dict[str, str] = {}
    for key, entry in _env(_service(_load(FREE))).items():
        if "value" in entry:
            env[key] = entry["value"]
        elif "fromDatabase" in entry:
            env[key] = render_url
        else:
            env[key] = supplied[key]
    data_dir = tmp_path / "instance"
    env |= fake_stt_env(fake_stt.base_url) | {"CLINSCRIBE_DATA_DIR": str(data_dir)}
    server = _RenderLikeServer(data_dir, env, postgres.url(name))
    server.start()
    try:
        consultation_id = server.upload(SHORT_WAV).json()["id"]
        assert server.wait_terminal(consultation_id)["status"] == "completed"
        assert sorted(s3_server.objects(bucket)) == [
            f"clinscribe/{consultation_id}/audio.flac",
            f"clinscribe/{consultation_id}/original",
        ]
        # Both databases share the one free database: the app's tables and DBOS's schema.
        with psycopg.connect(postgres.url(name, driver=False)) as db:
            tables = {
                f"{schema}.{table}"
                for schema, table in db.execute(
                    "select table_schema, table_name from information_schema.tables"
                )
            }
        assert {"public.consultations", "dbos.workflow_status"} <= tables
        # SIGTERM, as at a spin-down; uvicorn re-raises it after a clean shutdown.
        assert server.stop() in (0, -15)
        assert not list(data_dir.glob("*.sqlite3"))
        shutil.rmtree(data_dir)  # the next instance starts with an empty filesystem

        server.start()
        with server.client() as client:
            assert client.get(f"/api/consultations/{consultation_id}").json()["status"] == (
                "completed"
            )
            assert client.get(f"/api/consultations/{consultation_id}/note").status_code == 200
            audio = client.get(f"/api/consultations/{consultation_id}/audio")
            assert audio.status_code == 200 and audio.content.startswith(b"fLaC")
    finally:
        server.kill()
