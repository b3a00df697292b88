"""Request and response bodies of the recommendation API."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from mlrec.events.schemas import EntityId, InteractionEvent

__all__ = [
    "FILTER_DESCRIPTION",
    "K_DESCRIPTION",
    "BatchRecommendationRequest",
    "ErrorPublic",
    "EventBatch",
    "EventsAccepted",
    "FeatureBatchRequest",
    "FeatureValuesPublic",
    "FeatureWriteRequest",
    "HealthPublic",
    "ItemsPublic",
    "ModelPublic",
    "RecommendationsPublic",
    "RecommendedItem",
    "error_responses",
]


K_DESCRIPTION = "How many items: at most the server's max_k setting (MLREC_MAX_K, default 100)"
"""What ``k`` means, for every endpoint that takes it."""

FILTER_DESCRIPTION = "category:<name>[|<name>...] or items:<id>[|<id>...]"
"""The syntax of ``filter``, for every endpoint that takes it."""


def _valid_filter(text: str | None) -> str | None:
    # the syntax the service parses (service.parse_filter), checked here so that a bad
    # filter is a field error located at ``filter`` like any other; a filter naming no
    # category or item ("category:|") would match nothing, silently
    if not text:
        return text
    kind, sep, values = text.partition(":")
    if not sep or kind not in ("category", "items") or not any(values.split("|")):
        raise ValueError(f"bad filter: use {FILTER_DESCRIPTION}")
    return text


FilterText = Annotated[str | None, AfterValidator(_valid_filter)]
"""An optional item filter (:data:`FILTER_DESCRIPTION`); empty means none."""


class ErrorPublic(BaseModel):
    """An error that is not a field error: what went wrong, in words."""

    detail: str


_ERROR_DESCRIPTIONS = {
    401: "Missing or wrong admin token",
    403: "Admin endpoints are disabled (MLREC_ADMIN_TOKEN unset)",
    404: "Not found",
    413: "Request body larger than MLREC_MAX_REQUEST_BYTES",
    415: "Body not sent as JSON (content-type: application/json)",
    503: "A dependency is unavailable",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error answers ``{"detail": "..."}`` of ``codes``."""
    return {
        code: {"model": ErrorPublic, "description": _ERROR_DESCRIPTIONS[code]} for code in codes
    }


class RecommendedItem(BaseModel):
    """One recommended item."""

    item_id: str
    score: float
    rank: int
    title: str | None = None


class ModelPublic(BaseModel):
    """Which model produced an answer."""

    name: str
    version: int
    algorithm: str


class RecommendationsPublic(BaseModel):
    """Recommendations for one user."""

    user_id: str | None
    items: list[RecommendedItem]
    model: ModelPublic | None
    source: Literal["personal", "popular"] = Field(
        description="personal: scored from the user's history; popular: cold-start fallback"
    )
    variant: str | None = Field(default=None, description="A/B experiment variant, if any")
    request_id: str
    degraded: bool = False
    degraded_reasons: list[str] = Field(default_factory=list)


class BatchRecommendationRequest(BaseModel):
    """Several known users, or one anonymous user described by recent items."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field must not pass unnoticed

    user_ids: list[EntityId] = Field(default_factory=list, max_length=100)
    recent_item_ids: list[EntityId] = Field(default_factory=list, max_length=1000)
    context: dict[str, Any] = Field(default_factory=dict)
    k: int = Field(default=10, ge=1, description=K_DESCRIPTION)
    exclude_seen: bool = True
    filter: FilterText = Field(default=None, description=FILTER_DESCRIPTION)

    @model_validator(mode="after")
    def _someone(self) -> Self:
        if not self.user_ids and not self.recent_item_ids:
            raise ValueError("give user_ids, or recent_item_ids for an anonymous user")
        return self


class ItemsPublic(BaseModel):
    """A list of items (similar or popular)."""

    item_id: str | None = None
    items: list[RecommendedItem]
    model: ModelPublic | None
    request_id: str
    degraded: bool = False
    degraded_reasons: list[str] = Field(default_factory=list)


class EventBatch(BaseModel):
    """A batch of interaction events."""

    model_config = ConfigDict(extra="forbid")

    events: list[InteractionEvent] = Field(min_length=1, max_length=1000)


class EventsAccepted(BaseModel):
    """Events durably accepted (acknowledged by the broker, or spooled to disk)."""

    accepted: int
    event_ids: list[str]
    spooled: bool = Field(description="true if Kafka was down and the events wait on disk")


class FeatureValuesPublic(BaseModel):
    """Online feature values of one or more entities."""

    view: str
    entities: list[dict[str, Any]]


class FeatureBatchRequest(BaseModel):
    """Entities to read, optionally restricted to some features."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field must not pass unnoticed

    entity_ids: list[EntityId] = Field(min_length=1, max_length=1000)
    features: list[str] | None = Field(default=None, max_length=256)


class FeatureWriteRequest(BaseModel):
    """``{entity_id: {feature: value}}`` to write to a view (admin)."""

    model_config = ConfigDict(extra="forbid")

    rows: dict[EntityId, dict[str, Any]] = Field(min_length=1, max_length=1000)
    timestamp: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="Unix seconds the values were observed at (default: now); at most "
        "5 minutes ahead of the server's clock.",
    )


class HealthPublic(BaseModel):
    """Liveness / readiness detail."""

    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
    model: ModelPublic | None = None
