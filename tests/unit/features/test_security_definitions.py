"""Feature definitions come from files an operator is handed: a few nested YAML
aliases ("billion laughs") must not take the process's memory, and names must follow
their rule to the last character."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mlrec.core.errors import ValidationError
from mlrec.features.definitions import Entity, Feature, FeatureView
from mlrec.features.yaml_loader import load_definitions

# Nine levels of nine aliases: 9**9 (387 million) strings once expanded. Before the
# fix, str() of the description ran out of memory after about a minute.
_LAUGHS = "\n".join(
    [
        "feature_views:",
        "  - name: user_stats",
        "    entity: user",
        "    ttl: 60",
        "    features:",
        "      - name: x",
        "        unused:",
        '          l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
        *(f"          l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 9)),
        "    description: *l8",
    ]
)


def test_nested_aliases_are_refused_before_they_are_expanded(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(_LAUGHS)
    started = time.perf_counter()
    with pytest.raises(ValidationError, match="aliases are counted"):
        load_definitions(path)
    assert time.perf_counter() - started < 5


def test_a_self_referencing_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text(
        "feature_views:\n"
        "  - {name: v, entity: user, ttl: 60, features: [{name: x}], tags: &t {a: *t}}\n"
    )
    with pytest.raises(ValidationError, match="refers to a value that contains it"):
        load_definitions(path)


def test_aliases_used_a_few_times_still_load(tmp_path: Path) -> None:
    path = tmp_path / "shared.yaml"
    path.write_text(
        "feature_views:\n"
        "  - {name: a, entity: user, ttl: 60, features: &f [{name: x, dtype: int}]}\n"
        "  - {name: b, entity: user, ttl: 60, features: *f}\n"
    )
    _, views = load_definitions(path)
    assert [v.feature_names for v in views] == [("x",), ("x",)]


@pytest.mark.parametrize("kind", ["view", "entity", "feature"])
def test_a_name_ending_in_a_newline_is_refused(kind: str) -> None:
    # "^...$" with re.match lets "$" match before a final newline: "user_stats\n"
    # passed as a view name distinct from, but printed like, "user_stats"
    names = {"view": "user_stats", "entity": "user", "feature": "x"}
    names[kind] += "\n"
    with pytest.raises(ValidationError, match="is invalid"):
        FeatureView(
            name=names["view"],
            entity=names["entity"],
            features=(Feature(names["feature"]),),
            ttl_seconds=60,
        )
    if kind == "entity":
        with pytest.raises(ValidationError, match="is invalid"):
            Entity("user\n")
