"""Settings shared by every service, read from ``MLREC_*`` environment variables.

Each service defines its own settings class that inherits :class:`CommonSettings`
and adds its fields; build it with :func:`load_settings` so a bad value becomes a
:class:`~mlrec.core.errors.ConfigurationError` naming the variable.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mlrec.core.errors import ConfigurationError
from mlrec.core.urls import (
    DATABASE_URL_FORMS,
    check_redis_url,
    normalise_database_url,
    normalise_kafka_bootstrap,
    sqlite_file,
)

__all__ = ["CommonSettings", "Environment", "load_settings"]

ENV_PREFIX = "MLREC_"


class Environment(StrEnum):
    """Where mlrec runs; ``local`` allows conveniences production forbids."""

    LOCAL = "local"
    TEST = "test"
    STAGING = "staging"
    PRODUCTION = "production"


_ORIGIN = re.compile(r"(?P<origin>[A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s]+)/?")


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

                try:
                    return json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(
                        f"not a JSON list of origins ({exc}); write "
                        '["https://a.example", "https://b.example"] (double quotes) '
                        "or https://a.example,https://b.example"
                    ) from None
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        # a browser's Origin header is exactly scheme://host[:port], lower case, and
        # CORS matches it literally: any other form would silently never match
        checked = []
        for origin in origins:
            text = origin.strip()
            if text in ("*", "null"):
                checked.append(text)
                continue
            if any(char.isspace() for char in text):
                raise ValueError(f"{origin!r}: separate origins with commas, not spaces")
            match = _ORIGIN.fullmatch(text)
            if match is None:
                raise ValueError(
                    f"{origin!r} is not an origin: write scheme://host[:port] such as "
                    "https://app.example.com (no path), or *"
                )
            checked.append(match["origin"].lower())
        return checked

    @field_validator("data_dir", "models_dir")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        # "~/data" in an env file or a container spec is not expanded by a shell
        return value.expanduser() if value is not None else None

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value:
            try:
                check_redis_url(value)
            except ConfigurationError as exc:
                raise ValueError(str(exc)) from None
        return value or None

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value:
            try:  # the rule the SQL engine applies, so a bad scheme fails here, named
                normalised = normalise_database_url(value)
            except ConfigurationError as exc:
                if str(exc).startswith("unsupported"):
                    raise ValueError(f"must be a {DATABASE_URL_FORMS} URL") from None
                raise ValueError(str(exc)) from None
            if normalised.startswith("sqlite") and sqlite_file(normalised) in ("", ":memory:"):
                raise ValueError(
                    "an in-memory SQLite database is empty for every connection: give a "
                    "file, sqlite:///PATH"
                )
        return value or None

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_kafka_bootstrap(cls, value: str | None) -> str | None:
        try:
            return normalise_kafka_bootstrap(value)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None

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
            message = error["msg"]
            if error["type"] == "value_error":  # our own checks: not "Value error, ..."
                message = str(error.get("ctx", {}).get("error", message))
            problems.append(f"{name}: {message}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None
