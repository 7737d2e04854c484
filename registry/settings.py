"""Typed process settings, read once from the environment (prefix ``CHIPREG_``) and passed in."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["BootstrapSettings", "Environment", "LogFormat", "Settings", "WitnessSetting"]


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    """How every chipreg process writes its log lines (``CHIPREG_LOG_FORMAT``)."""

    TEXT = "text"
    JSON = "json"


class WitnessSetting(BaseModel):
    """One witness the registry submits checkpoints to (C2SP tlog-witness)."""

    url: str = Field(description="submission prefix; the registry POSTs <url>/add-checkpoint")
    vkey: str = Field(description="the witness's cosigner verifier key (name+id+base64, 0x04)")


class Settings(BaseSettings):
    """Registry configuration. Every field maps to ``CHIPREG_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="CHIPREG_", extra="ignore")

    environment: Environment = Environment.DEVELOPMENT
    database_url: str = "sqlite:///var/chipreg.sqlite3"
    log_origin: str = Field(
        default="chipreg.local/log",
        description="Origin line of the log's checkpoints (C2SP tlog-checkpoint).",
    )
    log_key_file: Path = Field(
        default=Path("var/log-key"),
        description="C2SP signed-note private key (PRIVATE+KEY+...). Created in development.",
    )
    checkpoint_interval_s: float = Field(
        default=0.5,
        ge=0,
        description="How often the integrator folds sequenced log entries into the tree and "
        "the publisher signs a new checkpoint when it grew (0: neither runs in the "
        "background). An acknowledged report is in a signed checkpoint about this long after "
        "its acknowledgement, plus one round.",
    )
    witnesses: list[WitnessSetting] = Field(
        default_factory=list,
        description='Witnesses as JSON: [{"url": "http://...", "vkey": "name+id+base64"}].',
    )
    witness_timeout_s: float = Field(default=5.0, gt=0)
    max_batch_reports: int = Field(default=1000, ge=1, le=10_000)
    max_request_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    ingest_max_pending_reports: int = Field(
        default=16_384,
        ge=1,
        description="Reports one process holds (verifying or queued) before answering 429.",
    )
    ingest_max_group_reports: int = Field(
        default=8_192, ge=1, description="Most reports the ingest writer commits in one group."
    )
    ingest_retry_after_s: int = Field(default=1, ge=1, description="Retry-After on a 429.")
    database_retry_after_s: int = Field(
        default=2, ge=1, description="Retry-After on a 503 database_unavailable."
    )
    challenge_ttl_s: int = Field(
        default=60, ge=1, le=3600, description="How long a landmark challenge nonce stays valid."
    )
    max_clock_skew_s: int = Field(
        default=120,
        ge=0,
        description="Tolerated skew for signed times (report windows, measurements, readings).",
    )
    webhook_max_attempts: int = Field(default=8, ge=1, le=100)
    webhook_backoff_s: float = Field(
        default=2.0, gt=0, description="First retry delay; doubles with each failed attempt."
    )
    webhook_max_backoff_s: float = Field(default=3600.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    verifier_policy: str = Field(default="default", description="Policy of continuous runs.")
    verifier_window_s: int = Field(
        default=900, ge=1, description="Reporting window length; a run follows each close."
    )
    verifier_settle_s: int = Field(
        default=120, ge=0, description="Wait after a window closes for its reports to arrive."
    )
    verifier_interval_s: float = Field(
        default=30.0, gt=0, description="How often the continuous verifier wakes up."
    )
    gpu_root_files: list[Path] = Field(
        default_factory=list,
        description="PEM files of the GPU device roots trusted for hardware-attested "
        'enrollment, as JSON: ["/etc/chipreg/nvidia_device_root.pem"]. Empty: GPU evidence '
        "is refused (code gpu_attestation_disabled).",
    )
    gpu_challenge_ttl_s: int = Field(
        default=300, ge=1, le=3600, description="How long a GPU challenge nonce stays valid."
    )
    console_session_ttl_s: int = Field(
        default=8 * 3600, ge=60, description="Lifetime of a web console login."
    )
    console_secure_cookie: bool = Field(
        default=False,
        description="Mark the console's session cookie Secure (set it behind HTTPS).",
    )
    partner_aggregates_only: bool = Field(
        default=False,
        description="Partners read counts per facility and country, not per-chip detail.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO",
        description="Process log level (not the transparency log); case-insensitive.",
    )
    log_format: LogFormat = Field(
        default=LogFormat.TEXT, description="text (one line per record) or json (one object)."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _refuse_dev_defaults_in_production(self) -> Settings:
        # A production registry must be pointed at its real database and key explicitly;
        # silently creating a fresh signing key would fork the log's identity.
        if self.environment is Environment.PRODUCTION:
            if self.database_url.startswith("sqlite"):
                msg = "CHIPREG_DATABASE_URL must name a PostgreSQL database in production"
                raise ValueError(msg)
            self._require_log_key()
        return self

    def _require_log_key(self) -> None:
        if not self.log_key_file.is_file():
            msg = (
                f"CHIPREG_LOG_KEY_FILE {self.log_key_file} does not exist "
                "(create it once with `chipreg admin init`)"
            )
            raise ValueError(msg)


class BootstrapSettings(Settings):
    """The settings of ``chipreg admin init``: the one command that creates the log key
    production otherwise requires to exist."""

    def _require_log_key(self) -> None:
        return None
