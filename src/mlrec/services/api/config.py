"""Settings of the recommendation API (``MLREC_*``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator

from mlrec.core.settings import CommonSettings, load_settings
from mlrec.features.realtime import RealtimeConfig

__all__ = ["ApiSettings", "get_settings"]

_KEPT_PER_USER = RealtimeConfig().recent_items


class ApiSettings(CommonSettings):
    """Everything the API process reads from the environment.

    Inherits the common settings (data dir, database, Redis, Kafka URLs).
    """

    host: str = "127.0.0.1"
    """Interface to listen on (``0.0.0.0`` in containers)."""
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    """uvicorn worker processes (the chart sets 4)."""
    batch_size: int = Field(default=32, ge=1, le=1024)
    """Most scoring requests combined into one matrix operation."""
    batch_wait_ms: float = Field(default=2.0, ge=0.0, le=100.0, allow_inf_nan=False)
    """Longest a request waits for others to fill its batch."""
    model_name: str = "default"
    """Registry name of the model to serve (its production version)."""
    model_poll_seconds: float = Field(default=5.0, ge=0.1, le=86400, allow_inf_nan=False)
    """How often the registry is polled for a newly promoted version (at most daily:
    the poller thread waits this long, and a wait of ``inf`` or 1e12 s overflows)."""
    model_cache_dir: Path | None = None
    """Where fetched artifacts are cached (default: ``<data_dir>/model-cache``)."""
    score_cache_mb: int = Field(default=256, ge=0, le=1_000_000)
    """Memory for known users' training-history scores (additive models such as EASE
    then score only a request's live items); 0 disables the cache."""
    history_limit: int = Field(default=50, ge=1, le=_KEPT_PER_USER)
    """How many recent interactions personalise a request: at most the number the
    feature store keeps per user (``RealtimeConfig.recent_items``, 50), so a larger
    value, which would read no more, is refused by name."""
    max_k: int = Field(default=100, ge=1, le=1000)
    admin_token: str | None = None
    """Bearer token required by admin endpoints (feature writes); unset = admin disabled."""
    embedded_stream: bool = True
    """Run the stream processor inside the API when no Kafka is configured."""
    event_retention_hours: float = Field(default=168.0, ge=1, le=1_000_000, allow_inf_nan=False)
    """Embedded log only: events older than this are deleted (Kafka: the topic's
    ``retention.ms``; 7 days is Kafka's default too)."""
    feature_timeout_seconds: float = Field(default=0.25, gt=0, le=10, allow_inf_nan=False)
    """Redis online store only: the timeout of each wait for the server (a pooled
    connection, connecting, the reply) before a feature-store call fails and the
    request degrades; a call that must also connect can wait up to three of them."""
    max_request_bytes: int = Field(default=4 << 20, ge=1024)
    """Largest request body accepted; a larger one gets 413 before it is read."""

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        host = value.strip()
        if not host or any(char.isspace() for char in host):
            raise ValueError(f"{value!r} is not an interface: give a host name or address")
        return host

    @field_validator("model_cache_dir")
    @classmethod
    def _expand_cache_home(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("model_name")
    @classmethod
    def _check_model_name(cls, value: str) -> str:
        # a name the registry refuses can never have a production version: the API
        # would start and serve only popular items
        from mlrec.models.registry import model_name_problem

        problem = model_name_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("admin_token")
    @classmethod
    def _check_admin_token(cls, value: str | None) -> str | None:
        # a token read from a file (a Kubernetes secret) often ends in a newline;
        # clients send it without, and the header is compared stripped
        if value is None:
            return None
        token = value.strip()
        if not token:
            raise ValueError("blank: set a token, or leave it unset to disable admin endpoints")
        return token

    @property
    def resolved_model_cache_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "model-cache"

    @property
    def spool_dir(self) -> Path:
        """Durable local spool for events accepted while Kafka is down."""
        return self.data_dir / "spool"


@lru_cache
def get_settings() -> ApiSettings:
    """The API settings, read once per process."""
    return load_settings(ApiSettings)
