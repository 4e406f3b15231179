"""`clinscribe doctor`: check the configuration and the providers, and say what to fix.

Each check returns one line for the operator. Checks never print secrets or PHI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from clinscribe.config import Settings
from clinscribe.errors import ClinscribeError

_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False  # ok enough to run, but the operator should act

    @property
    def label(self) -> str:
        return "FAIL" if not self.ok else "WARN" if self.warning else "ok  "


def _data_dir(settings: Settings) -> Check:
    directory = settings.resolved_data_dir
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return Check("data directory", False, f"cannot create {directory}: set CLINSCRIBE_DATA_DIR")
    if not os.access(directory, os.W_OK):
        return Check("data directory", False, f"{directory} is not writable")
    return Check("data directory", True, str(directory))


def _database(settings: Settings) -> Check:
    from clinscribe.db.migrate import pending_revisions

    try:
        pending = pending_revisions(settings.app_database_url)
    except Exception as error:  # any driver error means "cannot reach it"
        return Check(
            "app database",
            False,
            f"unreachable ({type(error).__name__}); check CLINSCRIBE_DATABASE_URL",
        )
    if pending:
        return Check("app database", False, f"{len(pending)} migration(s) pending: run "
                     "`clinscribe db upgrade`")  # fmt: skip
    return Check("app database", True, "reachable, schema up to date")


def _get(url: str, key: SecretStr) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key.get_secret_value()}"}
    return httpx.get(url, headers=headers, timeout=_TIMEOUT_S)


def _openai_compatible(label: str, base_url: str, key: SecretStr | None, model: str,
                       key_var: str) -> Check:  # fmt: skip
    if key is None:
        return Check(label, False, f"no API key: set {key_var}")
    try:
        response = _get(base_url.rstrip("/") + "/models", key)
    except httpx.HTTPError as error:
        return Check(label, False, f"{base_url} unreachable ({type(error).__name__})")
    if response.status_code in (401, 403):
        return Check(label, False, f"the key was rejected (HTTP {response.status_code}): "
                     f"check {key_var}")  # fmt: skip
    if response.status_code >= 400:
        return Check(label, False, f"{base_url}/models answered HTTP {response.status_code}")
    try:
        models = {str(m.get("id")) for m in response.json().get("data", [])}
    except (ValueError, AttributeError):
        models = set()
    if models and model not in models:
        return Check(label, False, f"model '{model}' is not offered; available: "
                     f"{', '.join(sorted(models)[:8])}")  # fmt: skip
    return Check(label, True, f"model {model} at {base_url}")


def _reachable(label: str, base_url: str, missing: list[str]) -> Check:
    if missing:
        return Check(label, False, "missing settings: set " + ", ".join(missing))
    try:
        httpx.get(base_url, timeout=_TIMEOUT_S)
    except httpx.HTTPError as error:
        return Check(label, False, f"{base_url} unreachable ({type(error).__name__})")
    return Check(label, True, f"{base_url} reachable (keys are checked on first use)")


def _speech_to_text(settings: Settings) -> Check:
    provider = settings.stt_provider
    label = f"speech-to-text ({provider})"
    if provider == "local":
        from clinscribe.providers.stt.whisper_models import resolve_model_dir

        try:
            import faster_whisper  # noqa: F401
        except ImportError:
            return Check(label, False, "install the local extra: pip install 'clinscribe[local]'")
        try:
            path = resolve_model_dir(settings.local_stt.model, settings.model_cache_dir)
        except ClinscribeError as error:
            return Check(label, False, error.message)
        return Check(label, True, f"whisper {settings.local_stt.model} at {path}")
    if provider == "openai":
        s = settings.openai_stt
        return _openai_compatible(label, s.base_url, s.api_key, s.model,
                                  "CLINSCRIBE_OPENAI_STT__API_KEY")  # fmt: skip
    if provider == "reverie":
        r = settings.reverie
        required = (
            ("CLINSCRIBE_REVERIE__API_KEY", r.api_key),
            ("CLINSCRIBE_REVERIE__APP_ID", r.app_id),
        )
        missing = [name for name, value in required if not value]
        return _reachable(label, r.base_url, missing)
    missing = [] if settings.sarvam.api_key else ["CLINSCRIBE_SARVAM__API_KEY"]
    return _reachable(label, settings.sarvam.base_url, missing)


def _note_writer(settings: Settings) -> Check:
    from clinscribe.providers.registry import build_note_writer

    label = f"note writer ({settings.note_provider})"
    try:
        build_note_writer(settings)
    except ClinscribeError as error:
        return Check(label, False, error.message)
    if settings.note_provider == "llm":
        s = settings.llm
        if s.api_key is None:  # a keyless server on this machine (Ollama, llama.cpp)
            return _reachable(label, s.base_url.rstrip("/") + "/models", [])
        return _openai_compatible(label, s.base_url, s.api_key, s.model,
                                  "CLINSCRIBE_LLM__API_KEY")  # fmt: skip
    return Check(label, True, "offline, no key needed")


def _encryption(settings: Settings) -> Check:
    from clinscribe.security.keys import keyring_from_settings

    try:
        keyring = keyring_from_settings(settings)
    except ClinscribeError as error:
        return Check("encryption at rest", False, error.message)
    if not keyring.enabled:
        # Allowed in development, but the operator should see it plainly.
        return Check(
            "encryption at rest",
            True,
            "OFF, data stored unencrypted: set CLINSCRIBE_ENCRYPTION_KEY "
            "(clinscribe keys generate); fine for a demo only",
            warning=True,
        )
    older = len(keyring.key_ids) - 1
    extra = f", {older} previous key(s) for reading" if older else ""
    return Check("encryption at rest", True, f"AES-256-GCM, key id {keyring.current_key_id}{extra}")


def _audio_storage(settings: Settings) -> Check:
    from clinscribe.storage.blobs import blob_store_from_settings, probe

    label = f"audio storage ({settings.storage.backend})"
    if settings.storage.backend == "local":
        return Check(label, True, str(settings.audio_dir))
    try:
        blobs = blob_store_from_settings(settings)
    except ClinscribeError as error:
        return Check(label, False, error.message)
    try:
        probe(blobs, settings.work_dir)
    except ClinscribeError as error:
        return Check(label, False, error.message)
    except OSError as error:
        return Check(label, False, f"{blobs.describe()}: {type(error).__name__}; check "
                     "CLINSCRIBE_STORAGE__S3_* settings")  # fmt: skip
    return Check(label, True, f"{blobs.describe()} reachable and writable")


def run_checks(settings: Settings) -> list[Check]:
    return [_data_dir(settings), _database(settings), _encryption(settings),
            _audio_storage(settings), _speech_to_text(settings),
            _note_writer(settings)]  # fmt: skip
