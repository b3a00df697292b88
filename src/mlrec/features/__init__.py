"""Feature store: definitions with TTL, online reads/writes, real-time features, materialization."""

from mlrec.features.apply import apply_definitions
from mlrec.features.builtin import BUILTIN_ENTITIES, BUILTIN_VIEWS
from mlrec.features.definitions import Entity, Feature, FeatureView, ValueType, check_entity_id
from mlrec.features.materialize import (
    FileSource,
    InteractionAggregates,
    MaterializeReport,
    OfflineSource,
    materialize,
)
from mlrec.features.online_store import OnlineStore, ViewStats
from mlrec.features.realtime import Interaction, RealtimeConfig, RealtimeFeatures
from mlrec.features.registry import AppliedView, FeatureRegistry, RegisteredView
from mlrec.features.store import FeatureStore, OnlineFeatures
from mlrec.features.yaml_loader import load_definitions, parse_definitions

__all__ = [
    "BUILTIN_ENTITIES",
    "BUILTIN_VIEWS",
    "AppliedView",
    "Entity",
    "Feature",
    "FeatureRegistry",
    "FeatureStore",
    "FeatureView",
    "FileSource",
    "Interaction",
    "InteractionAggregates",
    "MaterializeReport",
    "OfflineSource",
    "OnlineFeatures",
    "OnlineStore",
    "RealtimeConfig",
    "RealtimeFeatures",
    "RegisteredView",
    "ValueType",
    "ViewStats",
    "apply_definitions",
    "check_entity_id",
    "load_definitions",
    "materialize",
    "parse_definitions",
]
