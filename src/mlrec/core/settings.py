"""Settings shared by every service, read from ``MLREC_*`` environment variables.

Each service defines its own settings class that inherits :class:`CommonSettings`
and adds its fields; build it with :func:`load_settings` so a bad value becomes a
:class:`~mlrec.core.errors.ConfigurationError` naming the variable.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mlrec.core.errors import ConfigurationError
from mlrec.core.urls import DATABASE_URL_FORMS, normalise_database_url

__all__ = ["CommonSettings", "Environment", "load_settings"]

ENV_PREFIX = "MLREC_"


class Environment(StrEnum):
    """Where mlrec runs; ``local`` allows conveniences production forbids."""

    LOCAL = "local"
    TEST = "test"
    STAGING = "staging"
    PRODUCTION = "production"


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "mlrec"


class CommonSettings(BaseSettings):
    """Settings every mlrec process reads.

    Unset URLs mean the embedded defaults: SQLite for metadata and features, an
    embedded log instead of Kafka.
    """

    # an empty variable (`MLREC_DATA_DIR=`) means unset, as in a shell: not the cwd
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", env_ignore_empty=True)

    environment: Environment = Environment.LOCAL
    """``local``, ``test``, ``staging`` or ``production``."""
    debug: bool = False
    """Verbose logging and tracebacks in error responses."""
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    """Allowed CORS origins: a JSON list or a comma-separated string."""
    data_dir: Path = Field(default_factory=_default_data_dir)
    """Where datasets, the embedded databases and spools live."""
    models_dir: Path | None = None
    """Where model artifacts live (default: ``<data_dir>/models``)."""
    database_url: str | None = None
    """SQLAlchemy URL of the metadata DB (default: ``sqlite:///<data_dir>/mlrec.db``)."""
    redis_url: str | None = None
    """``redis://host:port/db`` of the online feature store; unset = embedded SQLite."""
    kafka_bootstrap_servers: str | None = None
    """``host:port[,host:port]`` of Kafka; unset = embedded durable log."""
    kafka_partitions: int = Field(default=6, ge=1, le=1024)
    """Partitions of ``mlrec.interactions`` when a process creates it (the API and
    the stream processor read the same setting, so whichever starts first creates the
    topic the same way)."""

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value:
            try:  # the rule the SQL engine applies, so a bad scheme fails here, named
                normalise_database_url(value)
            except ConfigurationError:
                raise ValueError(f"must be a {DATABASE_URL_FORMS} URL") from None
        return value or None

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> CommonSettings:
        if self.environment is Environment.PRODUCTION and self.debug:
            raise ValueError("MLREC_DEBUG must be false when MLREC_ENVIRONMENT=production")
        return self

    @property
    def resolved_models_dir(self) -> Path:
        """The models directory, defaulting under the data directory."""
        return self.models_dir or self.data_dir / "models"

    @property
    def resolved_online_store_url(self) -> str:
        """Redis when configured, else the embedded SQLite feature store."""
        return self.redis_url or f"sqlite:///{self.data_dir / 'features.db'}"

    @property
    def resolved_database_url(self) -> str:
        """The metadata DB URL, defaulting to SQLite under the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'mlrec.db'}"


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build a settings class, turning validation errors into one readable message.

    Raises:
        ConfigurationError: naming each bad ``MLREC_*`` variable and what is wrong.
    """
    try:
        return cls(**overrides)
    except pydantic.ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ENV_PREFIX))
        problems = []
        for error in exc.errors():
            # loc is (field, then the position inside its value: a list index, a key);
            # only the field is a variable: MLREC_CORS_ORIGINS (item 0), not ..._0
            field, *inside = error["loc"] or ("",)
            name = f"{prefix}{str(field).upper()}" if field else "settings"
            if inside:
                name += f" (item {'.'.join(str(part) for part in inside)})"
            problems.append(f"{name}: {error['msg']}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None
