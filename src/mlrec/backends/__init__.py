"""Backends: each implements a protocol of a domain package, chosen by URL scheme."""

from mlrec.backends.factory import open_model_registry

__all__ = ["open_model_registry"]
