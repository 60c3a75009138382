"""The one settings object. This is the only module that reads ``os.environ``.

Precedence, highest first: explicit keyword arguments, environment variables (``NIGHTBATCH_*``, plus the
SDK's own ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL``), the ``[settings]`` table of the config file
(``nightbatch.toml`` in the working directory, or the file named by ``NIGHTBATCH_CONFIG``), defaults.
The same config file holds the task types (``[task_types.*]``, see :mod:`nightbatch.tasktypes`).

Settings are read once per process and passed down. A flow run gets them as a parameter
(:meth:`Settings.public_values`), not through ``os.environ``; but a flow's parameters are shown in the
Prefect UI and stored in Prefect's database, so the secrets are left out: the API key, and the password
in the database URL. The flow run resolves those where it runs (:meth:`Settings.with_secrets`), from its
own environment / config file or from the Prefect blocks it names.
"""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from nightbatch.errors import ConfigError

__all__ = ["SECRET_FIELDS", "Settings", "config_file_path", "environ", "without_password"]

DEFAULT_HOME = Path(".nightbatch")
SECRET_FIELDS = frozenset({"anthropic_api_key"})
"""Settings never handed to a flow as a parameter (the database URL's password is left out too)."""


def environ() -> dict[str, str]:
    """A copy of the process environment, for the few places that must pass it on (subprocesses)."""
    return dict(os.environ)


def config_file_path() -> Path:
    """The config file nightbatch reads: ``$NIGHTBATCH_CONFIG`` or ``./nightbatch.toml``."""
    return Path(os.environ.get("NIGHTBATCH_CONFIG", "nightbatch.toml"))


def without_password(url: str) -> str:
    """``url`` with the password of its user part removed (``scheme://user@host/db``); unchanged without one."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    user, host = parts.netloc.rsplit("@", 1)
    if ":" not in user:
        return url
    return urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}@{host}"))


def read_config_file(path: Path) -> dict[str, Any]:
    """The parsed config file, ``{}`` when it does not exist, a :class:`ConfigError` when it is broken."""
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Feeds the ``[settings]`` table of the config file to pydantic-settings."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        table = read_config_file(path).get("settings", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [settings] must be a table")
        self._table: dict[str, Any] = table

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._table.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._table.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    """Everything nightbatch can be configured with. Secrets are :class:`SecretStr` and never printed."""

    model_config = SettingsConfigDict(env_prefix="NIGHTBATCH_", extra="ignore", populate_by_name=True)

    home: Path = Field(DEFAULT_HOME, description="Project-local folder for the default database, outputs and logs.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite file under `home`.")
    output: str | None = Field(None, description="`s3://bucket/prefix` or a local folder; default: `home`/output.")
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, moto); default AWS.")
    s3_sse: str = Field("AES256", description="Server-side encryption for S3 puts: AES256, aws:kms, or none.")
    s3_kms_key_id: str | None = Field(None, description="KMS key id when s3_sse is aws:kms.")
    anthropic_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("NIGHTBATCH_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY", "anthropic_api_key"),
        description="API key; without one nightbatch runs against its local emulator (simulated).",
    )
    anthropic_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("NIGHTBATCH_ANTHROPIC_BASE_URL", "ANTHROPIC_BASE_URL", "anthropic_base_url"),
        description="API base URL; point it at the emulator to simulate.",
    )
    api_key_secret_block: str | None = Field(
        None, description="Flows only: name of a Prefect `Secret` block holding the API key (instead of the env)."
    )
    s3_bucket_block: str | None = Field(
        None, description="Flows only: name of a prefect-aws `S3Bucket` block for the output store and its credentials."
    )
    price_table: Path | None = Field(None, description="Your own price table (TOML); default: the packaged one.")
    task_config: Path | None = Field(
        None, description="File or folder of task-type definitions; default: the config file itself."
    )
    max_attempts: int = Field(3, ge=1, description="Attempts per task before a retryable failure becomes final.")
    lease_seconds: int = Field(900, ge=10, description="A claim older than this, by a silent worker, is reclaimable.")
    poison_claims: int = Field(
        3, ge=1, description="Claims that died before sending anything; one more and the task fails as `poison`."
    )
    budget_per_run_usd: Decimal | None = Field(None, ge=0, description="Hard cap on forecast spend per run.")
    budget_per_day_usd: Decimal | None = Field(None, ge=0, description="Hard cap on spend per UTC day.")
    max_failed_share: Decimal = Field(
        Decimal("0.005"),
        ge=0,
        le=1,
        description="A run whose permanently failed tasks exceed this share of its tasks ends Failed (0.005 = 0.5%).",
    )
    deadline_margin_minutes: float = Field(
        30.0, ge=0, description="Batches still open this long before a deadline are canceled and their tasks settled."
    )
    realtime_concurrency: int = Field(4, ge=1, description="Real-time fallback requests in flight at once.")
    submit_concurrency_limit: str | None = Field(
        None,
        description="Name of a Prefect global concurrency limit that submitting flows hold (e.g. nightbatch-submit).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _ConfigFileSource(settings_cls, config_file_path()))

    # -- derived values -------------------------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'nightbatch.db').resolve()}"

    @property
    def resolved_output(self) -> str:
        """Where outputs go: an ``s3://`` URL or an absolute local folder."""
        if self.output:
            return self.output if self.output.startswith("s3://") else str(Path(self.output).resolve())
        return str((self.home / "output").resolve())

    @property
    def simulated(self) -> bool:
        """True when no API key is configured: nightbatch then talks to its local emulator."""
        return self.anthropic_api_key is None

    def public_values(self) -> dict[str, Any]:
        """Every setting that may be shown and stored as a flow parameter: JSON values, no secrets.

        The API key is left out, and the database URL loses its password; :meth:`with_secrets` puts them
        back where the flow runs.
        """
        values = self.model_dump(mode="json", exclude=set(SECRET_FIELDS))
        if self.database_url:
            values["database_url"] = without_password(self.database_url)
        return values

    @classmethod
    def with_secrets(cls, public: dict[str, Any]) -> Settings:
        """Settings from ``public`` values (:meth:`public_values`) plus the secrets of this process.

        The API key and a database password come from this process's environment and config file (read
        here, once); a URL that is the local one without its password gets the password back. Where the
        key lives in a Prefect ``Secret`` block instead, the flow applies it afterwards.
        """
        # Every other field is given, so this one read takes only the secrets from the sources.
        settings = cls(**{k: v for k, v in public.items() if k != "database_url"})
        url = public.get("database_url")
        if settings.database_url and url and without_password(settings.database_url) == url:
            return settings  # the same database: keep the URL with its password
        return settings.model_copy(update={"database_url": url})

    def api_key_value(self) -> str | None:
        """The raw API key, for handing to the SDK only."""
        return self.anthropic_api_key.get_secret_value() if self.anthropic_api_key else None


def export_to_environment(values: dict[str, str]) -> None:
    """Set variables for this process and its children, for libraries configured only through the
    environment: Prefect's own settings (read when it is first imported) and boto3's credential chain.

    Never nightbatch's own settings: those are passed down as a :class:`Settings` (to flows, as
    :meth:`Settings.public_values`).
    """
    os.environ.update(values)
