"""Backends: each implements a protocol of a domain package, chosen by URL scheme."""

from mlrec.backends.factory import open_feature_registry, open_model_registry, open_online_store

__all__ = ["open_feature_registry", "open_model_registry", "open_online_store"]
