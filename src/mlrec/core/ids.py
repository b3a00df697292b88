"""Mapping between external string ids and dense integer indices."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from mlrec.core.errors import NotFoundError, ValidationError

__all__ = [
    "ENTITY_ID_PATTERN",
    "MAX_ENTITY_ID_LENGTH",
    "IdMap",
    "check_entity_id",
    "entity_id_problem",
]

MAX_ENTITY_ID_LENGTH = 256
"""Longest external (user, item, entity) id, in UTF-8 bytes: a Redis key part."""
# Whitespace (Unicode Zs, Zl, Zp), control characters (Cc) and the invisible
# zero-width space, word joiner and byte-order mark: an id that looks like another
# (or like nothing) when printed. Zero-width (non-)joiners stay allowed: scripts and
# emoji sequences need them.
_BAD_ID_CHAR_CLASS = (
    r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u2060\u3000\ufeff"
)
ENTITY_ID_PATTERN = f"^[^{_BAD_ID_CHAR_CLASS}]+$"
"""The characters an id may hold, as a regular expression (for schemas)."""
_BAD_ID_CHARS = re.compile(f"[{_BAD_ID_CHAR_CLASS}]")


def entity_id_problem(entity_id: object) -> str | None:
    """What is wrong with an external id (empty, too long, spaces or control
    characters), or None: the one rule every layer checks ids with."""
    if not isinstance(entity_id, str) or not entity_id:
        return "entity id must be a non-empty string"
    try:
        size = len(entity_id.encode())
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"), as JSON can carry
        return f"entity id {entity_id[:32]!r} is not valid Unicode text"
    if size > MAX_ENTITY_ID_LENGTH:
        return f"entity id {entity_id[:32]!r}… is longer than {MAX_ENTITY_ID_LENGTH} bytes"
    if _BAD_ID_CHARS.search(entity_id):
        return f"entity id {entity_id!r} contains whitespace or control characters"
    return None


def check_entity_id(entity_id: str) -> None:
    """Raise :class:`ValidationError` if :func:`entity_id_problem` finds a problem."""
    problem = entity_id_problem(entity_id)
    if problem is not None:
        raise ValidationError(problem)


class IdMap:
    """A bijection between external string ids and dense indices ``0..n-1``.

    Indices are assigned in first-seen order, so building the same map from the
    same sequence is deterministic.

    Example:
        >>> ids = IdMap.from_ids(["u7", "u3", "u7"])
        >>> ids.index("u3"), ids.id(0), len(ids)
        (1, 'u7', 2)
    """

    __slots__ = ("_ids", "_index")

    def __init__(self, ids: Sequence[str] = ()) -> None:
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        for external in ids:
            self.add(external)

    @classmethod
    def from_ids(cls, ids: Iterable[str]) -> IdMap:
        """Build a map from ids in first-seen order (duplicates are ignored)."""
        idmap = cls()
        for external in ids:
            idmap.add(external)
        return idmap

    def add(self, external: str) -> int:
        """Return the index of ``external``, assigning the next one if it is new."""
        found = self._index.get(external)
        if found is not None:
            return found
        index = len(self._ids)
        self._ids.append(external)
        self._index[external] = index
        return index

    def index(self, external: str) -> int:
        """The dense index of a known id; raises :class:`NotFoundError` otherwise."""
        try:
            return self._index[external]
        except KeyError:
            raise NotFoundError(f"unknown id {external!r}") from None

    def get(self, external: str) -> int | None:
        """The dense index of ``external``, or ``None`` if it is unknown."""
        return self._index.get(external)

    def id(self, index: int) -> str:
        """The external id at a dense index."""
        return self._ids[index]

    def indices(self, externals: Iterable[str]) -> npt.NDArray[np.int64]:
        """Vectorised :meth:`index`: unknown ids raise :class:`NotFoundError`."""
        return np.fromiter((self.index(e) for e in externals), dtype=np.int64)

    def ids(self, indices: Iterable[int] | None = None) -> list[str]:
        """External ids for ``indices`` (all ids in index order if omitted)."""
        if indices is None:
            return list(self._ids)
        return [self._ids[int(i)] for i in indices]

    def __contains__(self, external: object) -> bool:
        return external in self._index

    def __len__(self) -> int:
        return len(self._ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._ids == other._ids

    def __repr__(self) -> str:
        return f"IdMap(n={len(self._ids)})"
