"""All configuration in one place: environment variables with the prefix ``CLINSCRIBE_``.

Nested provider settings use ``__`` (``CLINSCRIBE_OPENAI_STT__API_KEY``). Every variable is
documented in ``.env.example``; keep the two in step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SttProviderName = Literal["local", "reverie", "sarvam", "openai"]
NoteProviderName = Literal["extractive", "llm"]

GROQ_BASE_URL = "https://api.groq.com/openai/v1"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LocalSttSettings(_Section):
    model: str = Field(
        "base", description="`base` (multilingual), `tiny.en`, or a CTranslate2 model directory"
    )
    device: str = "cpu"
    compute_type: str = "int8"
    beam_size: int = Field(5, ge=1, le=10)
    cpu_threads: int = Field(0, ge=0, description="0 lets CTranslate2 choose")


class OpenAISttSettings(_Section):
    base_url: str = GROQ_BASE_URL
    api_key: SecretStr | None = None
    model: str = "whisper-large-v3"
    max_file_mb: float = Field(25.0, gt=0)
    timeout_s: float = Field(120.0, gt=0)


class LlmSettings(_Section):
    """The LLM note writer's chat endpoint (any OpenAI-compatible one; Groq by default)."""

    base_url: str = GROQ_BASE_URL
    api_key: SecretStr | None = None
    model: str = "llama-3.3-70b-versatile"
    timeout_s: float = Field(120.0, gt=0)
    context_tokens: int = Field(
        8000,
        ge=2048,
        description="tokens one request may use (prompt and answer); longer transcripts are "
        "split into several requests. Keep it under the model's context window and the "
        "account's tokens-per-minute limit",
    )
    max_output_tokens: int = Field(
        2048, ge=256, description="longest answer (max_completion_tokens) one request may get"
    )
    max_windows: int = Field(
        12, ge=1, le=100, description="most requests (transcript parts) one note may take"
    )
    response_format: Literal["auto", "json_schema", "json_object"] = Field(
        "auto",
        description="json_schema (strict) where the model supports it, else json_object with "
        "the schema in the prompt; auto picks by model name",
    )


class ReverieSettings(_Section):
    api_key: SecretStr | None = None
    app_id: str | None = None
    base_url: str = "https://revapi.reverieinc.com"
    domain: str = "generic"
    poll_interval_s: float = Field(2.0, gt=0)
    max_poll_s: float = Field(3600.0, gt=0)
    timeout_s: float = Field(120.0, gt=0)


class SarvamSettings(_Section):
    api_key: SecretStr | None = None
    base_url: str = "https://api.sarvam.ai"
    model: str = "saaras:v3"
    mode: str = "transcribe"
    diarization: bool = True
    num_speakers: int = Field(2, ge=1, le=10)
    poll_interval_s: float = Field(2.0, gt=0)
    max_poll_s: float = Field(3600.0, gt=0)
    timeout_s: float = Field(120.0, gt=0)


class RetrySettings(_Section):
    """How provider calls are retried inside one pipeline step."""

    max_attempts: int = Field(6, ge=1, le=20)
    base_delay_s: float = Field(1.0, ge=0)
    max_delay_s: float = Field(60.0, gt=0)
    max_retry_after_s: float = Field(
        300.0, gt=0, description="longest provider retry-after we wait for inside a step"
    )


class RetentionSettings(_Section):
    """Automatic deletion, run by a scheduled workflow; every deletion is audited."""

    audio_days_after_signed: float | None = Field(
        None, gt=0, description="delete the audio this many days after the note is signed"
    )
    unsigned_days: float | None = Field(
        None, gt=0, description="delete consultations whose note is unsigned after this long"
    )
    schedule: str = Field("*/15 * * * *", description="cron schedule of the retention sweep")

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from croniter import croniter  # installed with dbos

        if not croniter.is_valid(value, second_at_beginning=True):
            raise ValueError(
                "not a cron schedule such as '*/15 * * * *' (minute hour day month weekday)"
            )
        return value


class WebhookSettings(_Section):
    """Signed webhook deliveries to clinic-registered URLs (docs/webhooks.md)."""

    allow_private_addresses: bool = Field(
        False,
        description="accept URLs on loopback, private and link-local addresses (deliveries "
        "inside your own network); the address of a URL is then not checked at all",
    )
    first_retry_s: float = Field(30.0, gt=0, description="wait before the first retry")
    max_retry_s: float = Field(3600.0, gt=0, description="longest wait between two attempts")
    give_up_after_h: float = Field(
        24.0, gt=0, le=24 * 30, description="stop retrying this long after the first attempt"
    )
    timeout_s: float = Field(10.0, gt=0, le=120, description="for one delivery attempt")


class StorageSettings(_Section):
    """Where consultation audio is stored (encrypted with CLINSCRIBE_ENCRYPTION_KEY)."""

    backend: Literal["local", "s3"] = Field(
        "local", description="`local` (<data dir>/audio) or `s3` (any S3-compatible storage)"
    )
    s3_bucket: str | None = Field(None, description="the bucket; it must exist already")
    s3_prefix: str = Field("", description="key prefix inside the bucket, e.g. `clinscribe/`")
    s3_endpoint_url: str | None = Field(
        None, description="for S3-compatible services (MinIO, Ceph, R2...); empty for AWS"
    )
    s3_region: str | None = None
    s3_access_key_id: str | None = Field(
        None, description="empty: boto3's usual sources (AWS_* variables, instance role)"
    )
    s3_secret_access_key: SecretStr | None = None
    s3_timeout_s: float = Field(60.0, gt=0, description="connect and read timeout of a request")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CLINSCRIBE_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path("./data")
    database_url: str | None = None
    system_database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    auto_migrate: bool = Field(True, description="apply database migrations when a process starts")
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"

    default_language: str = "en"
    default_template: str = "soap"
    templates_dir: Path | None = Field(
        None, description="clinic-defined note templates (*.toml); default <data dir>/templates"
    )
    max_upload_mb: float = Field(500.0, gt=0)
    max_audio_minutes: float = Field(120.0, gt=0)

    stt_provider: SttProviderName = "local"
    note_provider: NoteProviderName = "extractive"
    local_stt: LocalSttSettings = LocalSttSettings()
    openai_stt: OpenAISttSettings = OpenAISttSettings()
    llm: LlmSettings = LlmSettings()
    reverie: ReverieSettings = ReverieSettings()
    sarvam: SarvamSettings = SarvamSettings()
    retry: RetrySettings = RetrySettings()

    # Workflow engine
    application_version: str = Field(
        "clinscribe-1",
        description="DBOS application version; bump only with a workflow change that is "
        "incompatible with in-flight consultations",
    )
    executor_id: str | None = Field(
        None,
        description="DBOS executor id of this worker; default `local` on SQLite, the first "
        "free `<hostname>-<n>` on PostgreSQL",
    )
    worker_lease_s: float = Field(
        60.0,
        ge=3,
        le=3600,
        description="PostgreSQL: a worker silent this long is taken for dead and its "
        "unfinished workflows resume on a live worker",
    )
    worker_concurrency: int = Field(2, ge=1, le=64)
    stt_concurrency: int = Field(
        4, ge=1, le=64, description="pieces of long recordings sent to the provider at once"
    )
    stt_requests_per_minute: int | None = Field(
        None, ge=1, description="start at most this many provider requests a minute (quota)"
    )
    chunk_overlap_s: float = Field(1.0, ge=0, le=10)
    shutdown_grace_s: float = Field(
        20.0,
        ge=0,
        le=600,
        description="on SIGTERM, how long a worker may take to stop: running consultations get "
        "all but the last second to finish; what they leave resumes later",
    )
    events_poll_interval_s: float = Field(0.2, gt=0, le=5)

    # Security
    encryption_key: SecretStr | None = None
    previous_encryption_keys: SecretStr | None = Field(
        None, description="comma-separated keys still accepted for reading during rotation"
    )
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    cookie_secure: bool | None = Field(
        None, description="Secure flag on cookies; default: on in production"
    )
    signin_max_failures: int = Field(5, ge=1, le=100)
    signin_lockout_minutes: float = Field(15.0, gt=0)
    signin_attempts_per_minute_per_ip: int = Field(20, ge=1)
    api_requests_per_minute: int = Field(600, ge=1, description="per API key or signed-in user")
    ip_requests_per_minute: int = Field(1200, ge=1, description="per client IP address")
    max_request_kb: int = Field(
        1024, ge=16, description="largest request body except audio uploads"
    )
    retention: RetentionSettings = RetentionSettings()
    storage: StorageSettings = StorageSettings()
    webhooks: WebhookSettings = WebhookSettings()
    public_base_url: str | None = Field(
        None,
        description="where users reach this service (https://scribe.example.org); makes the "
        "links in webhook payloads absolute",
    )

    @field_validator("default_language")
    @classmethod
    def _lowercase_language(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("database_url", "system_database_url")
    @classmethod
    def _postgresql_scheme(cls, value: str | None) -> str | None:
        # Hosts such as Render and Heroku hand out postgres://... URLs; SQLAlchemy only knows
        # the dialect as postgresql (the engines then choose psycopg themselves).
        if value and value.startswith("postgres://"):
            return "postgresql://" + value.removeprefix("postgres://")
        return value

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def audio_dir(self) -> Path:
        return self.resolved_data_dir / "audio"

    @property
    def resolved_templates_dir(self) -> Path:
        return (self.templates_dir or self.resolved_data_dir / "templates").expanduser()

    @property
    def work_dir(self) -> Path:
        return self.resolved_data_dir / "work"

    @property
    def upload_tmp_dir(self) -> Path:
        return self.resolved_data_dir / "uploads"

    @property
    def model_cache_dir(self) -> Path:
        return self.resolved_data_dir / "models"

    @property
    def app_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'clinscribe.sqlite3'}"

    @property
    def dbos_database_url(self) -> str:
        if self.system_database_url:
            return self.system_database_url
        return f"sqlite:///{self.resolved_data_dir / 'workflows.sqlite3'}"

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.environment == "production"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
