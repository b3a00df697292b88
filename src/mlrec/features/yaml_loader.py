"""Feature definitions from YAML.

Example file::

    entities:
      - name: user
        description: a person using the product
    feature_views:
      - name: user_profile
        entity: user
        ttl: 86400            # seconds
        max_entities: 1000000
        owner: growth-team
        tags: {tier: gold}
        features:
          - {name: age, dtype: float, default: 0.0}
          - {name: country, dtype: string}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mlrec.core.errors import ValidationError
from mlrec.features.definitions import Entity, FeatureView

__all__ = ["TOP_LEVEL_KEYS", "load_definitions", "parse_definitions"]

TOP_LEVEL_KEYS = ("entities", "feature_views")
"""The keys a definitions file may have at its top level."""


def parse_definitions(
    data: Any, source: str = "definitions"
) -> tuple[list[Entity], list[FeatureView]]:
    """Entities and views from parsed YAML/JSON; errors name ``source`` and the view."""
    if not isinstance(data, dict):
        raise ValidationError(f"{source}: expected a mapping with entities and feature_views")
    unknown = sorted(str(key) for key in data if key not in TOP_LEVEL_KEYS)
    if unknown:  # a misspelt key would silently declare nothing
        raise ValidationError(
            f"{source}: unknown top-level key {unknown[0]!r}; the keys are "
            f"{' and '.join(TOP_LEVEL_KEYS)}"
        )
    try:
        entities = [
            Entity(name=str(e["name"]), description=str(e.get("description", "")))
            for e in data.get("entities") or []
        ]
    except (KeyError, TypeError) as exc:
        raise ValidationError(f"{source}: bad entity ({exc})") from None
    views = []
    for index, spec in enumerate(data.get("feature_views") or []):
        if not isinstance(spec, dict):
            raise ValidationError(f"{source}: feature_views[{index}] is not a mapping")
        try:
            views.append(FeatureView.from_dict(spec))
        except ValidationError as exc:
            raise ValidationError(f"{source}: feature_views[{index}]: {exc}") from None
    for kind, names in (
        ("entity", [e.name for e in entities]),
        ("feature view", [v.name for v in views]),
    ):
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            # applied in turn, the last would silently win (as a version of its own)
            raise ValidationError(f"{source}: {kind} {twice[0]!r} is declared twice")
    known = {e.name for e in entities} | {"user", "item"}
    for view in views:
        if view.entity not in known:
            raise ValidationError(
                f"{source}: view {view.name!r} uses undeclared entity {view.entity!r}"
            )
    return entities, views


def load_definitions(path: Path) -> tuple[list[Entity], list[FeatureView]]:
    """Read a YAML definitions file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{path}: cannot read feature definitions (not UTF-8 text: byte {exc.start})"
        ) from None
    except yaml.MarkedYAMLError as exc:
        raise ValidationError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationError(f"{path}: cannot read feature definitions ({exc})") from None
    return parse_definitions(data, str(path))


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's error on one line: where (1-based) and what, without its source excerpt."""
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = exc.problem or exc.context or "unreadable"
    context = f" ({exc.context})" if exc.problem and exc.context else ""
    return f"{where}{what}{context}"
