"""Core: ids, errors, clocks, settings fragments and the interaction log type."""

from mlrec.core.clock import Clock, ManualClock, SystemClock
from mlrec.core.errors import (
    ArtifactIntegrityError,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    DataError,
    DataFormatError,
    MlrecError,
    ModelError,
    NotFoundError,
    ValidationError,
)
from mlrec.core.ids import IdMap
from mlrec.core.interactions import Interactions, ItemInfo

__all__ = [
    "ArtifactIntegrityError",
    "BackendError",
    "BackendUnavailableError",
    "Clock",
    "ConfigurationError",
    "DataError",
    "DataFormatError",
    "IdMap",
    "Interactions",
    "ItemInfo",
    "ManualClock",
    "MlrecError",
    "ModelError",
    "NotFoundError",
    "SystemClock",
    "ValidationError",
]
