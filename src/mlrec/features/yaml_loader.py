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

__all__ = ["MAX_EXPANDED_SIZE", "TOP_LEVEL_KEYS", "load_definitions", "parse_definitions"]

TOP_LEVEL_KEYS = ("entities", "feature_views")
"""The keys a definitions file may have at its top level."""

MAX_EXPANDED_SIZE = 10_000_000
"""Largest size a definitions file may expand to: one per value plus the characters
of each scalar, an alias (``*name``) counted in full wherever it is used. Far above
any real file; a few nested aliases ("billion laughs") expand past it and are
refused before anything is built from them."""


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
    """Read a YAML definitions file.

    Raises:
        ValidationError: not UTF-8, not valid YAML, larger than
            :data:`MAX_EXPANDED_SIZE` with its aliases expanded, or not valid definitions.
    """
    try:
        data = _safe_load_bounded(path.read_text(encoding="utf-8"), path)
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{path}: cannot read feature definitions (not UTF-8 text: byte {exc.start})"
        ) from None
    except yaml.MarkedYAMLError as exc:
        raise ValidationError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationError(f"{path}: cannot read feature definitions ({exc})") from None
    return parse_definitions(data, str(path))


def _safe_load_bounded(text: str, path: Path) -> Any:
    """``yaml.safe_load(text)``, refusing a document whose aliases expand it past
    :data:`MAX_EXPANDED_SIZE` or into itself: PyYAML shares an aliased value rather
    than copying it, but ``str()`` and ``dict()`` of the parsed data (as
    :func:`parse_definitions` does) walk every use, so a small file could take hours
    and all memory."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _check_expanded_size(root, path)
        return loader.construct_document(root)
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expanded_size(root: yaml.Node, path: Path) -> None:
    """Each distinct node's expanded size is computed once (depth first, without
    recursion), so the cost is that of the file, whatever it expands to."""
    sizes: dict[int, int] = {}
    ancestors: set[int] = set()  # the nodes whose size is being computed
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            ancestors.discard(key)
            own = 1 + (len(node.value) if isinstance(node, yaml.ScalarNode) else 0)
            sizes[key] = own + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_EXPANDED_SIZE:
                raise ValidationError(
                    f"{path}: the YAML expands to more than {MAX_EXPANDED_SIZE} values and "
                    "characters (aliases are counted wherever they are used)"
                )
        elif key not in sizes:
            if key in ancestors:
                raise ValidationError(f"{path}: an alias refers to a value that contains it")
            ancestors.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's error on one line: where (1-based) and what, without its source excerpt."""
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = exc.problem or exc.context or "unreadable"
    context = f" ({exc.context})" if exc.problem and exc.context else ""
    return f"{where}{what}{context}"
