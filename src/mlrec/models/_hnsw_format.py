"""hnswlib's native index file, checked before hnswlib's loader reads it.

hnswlib's C++ loader trusts the file: it only checks the total length, so a header
field, a neighbour id or a level out of range would make searches read (or write)
outside the index's memory. An artifact is verified against the registry's sha256,
but that protects against damage, not against whoever can write both; like the
no-pickle rule, this module makes a tampered index a :class:`ModelError` instead.

Layout written by ``HierarchicalNSW::saveIndex`` (hnswlib 0.8, little-endian)::

    header       offsetLevel0 u64, max_elements u64, cur_element_count u64,
                 size_data_per_element u64, label_offset u64, offsetData u64,
                 maxlevel i32, enterpoint_node u32, maxM u64, maxM0 u64, M u64,
                 mult f64, ef_construction u64
    level 0      cur_element_count records of size_data_per_element bytes:
                 count u16, flags u8, unused u8, maxM0 neighbour ids u32,
                 the vector (dim f32), the label u64
    upper levels per element: size u32, then ``size`` bytes = one block per level
                 above 0, each count u32 (low 16 bits) and maxM neighbour ids u32

Every neighbour listed on level ``l`` must itself have a level ``>= l``: a search
reads the neighbour's list on that level.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import numpy.typing as npt

from mlrec.core.errors import ModelError

__all__ = ["check_index_bytes"]

_HEADER = struct.Struct("<QQQQQQiIQQQdQ")
_U32 = struct.Struct("<I")
_LABEL_BYTES = 8
# Levels are drawn as floor(-ln(U) * mult) with mult = 1/ln(M): 2^32 elements at M=2
# reach about 32.
_MAX_LEVEL = 64


def check_index_bytes(blob: npt.NDArray[np.uint8], n: int, dim: int, M: int) -> None:
    """Check that ``blob`` is a well-formed hnswlib index of ``n`` vectors.

    Args:
        blob: the file's bytes.
        n: the number of vectors the artifact says it holds (labels ``0..n-1``).
        dim: their dimension (float32).
        M: the graph degree the artifact was built with.

    Raises:
        ModelError: naming the first field or record that does not fit.
    """
    data = blob.tobytes()
    if n < 1 or dim < 1 or M < 2:
        raise _damaged(f"n={n}, dim={dim}, M={M} in its metadata")
    if len(data) < _HEADER.size:
        raise _damaged(f"{len(data)} bytes, shorter than the {_HEADER.size}-byte header")
    (
        offset_level0,
        max_elements,
        count,
        record_size,
        label_offset,
        data_offset,
        max_level,
        entry_point,
        max_m,
        max_m0,
        m,
        mult,
        _ef_construction,
    ) = _HEADER.unpack_from(data)
    links0_size = 4 + 4 * max_m0
    expected = {
        "offsetLevel0": (offset_level0, 0),
        "max_elements": (max_elements, n),
        "cur_element_count": (count, n),
        "M": (m, M),
        "maxM": (max_m, M),
        "maxM0": (max_m0, 2 * M),
        "offsetData": (data_offset, links0_size),
        "label_offset": (label_offset, links0_size + 4 * dim),
        "size_data_per_element": (record_size, links0_size + 4 * dim + _LABEL_BYTES),
    }
    for name, (found, wanted) in expected.items():
        if found != wanted:
            raise _damaged(f"header field {name} is {found}, expected {wanted}")
    if not 0 <= max_level <= _MAX_LEVEL:
        raise _damaged(f"maxlevel {max_level} is outside 0..{_MAX_LEVEL}")
    if entry_point >= n:
        raise _damaged(f"entry point {entry_point} is not one of the {n} elements")
    if not (math.isfinite(mult) and mult > 0):
        raise _damaged(f"level multiplier {mult} is not a positive number")

    level0_end = _HEADER.size + n * record_size
    if len(data) < level0_end:
        raise _damaged(f"{len(data)} bytes, too short for {n} level-0 records")
    records = np.frombuffer(data, np.uint8, n * record_size, _HEADER.size).reshape(n, record_size)
    labels = records[:, label_offset:].copy().view("<u8").ravel()
    if not np.array_equal(np.sort(labels), np.arange(n, dtype=np.uint64)):
        raise _damaged(f"labels are not the item indices 0..{n - 1}, each once")
    levels, upper, upper_levels = _upper_lists(data, level0_end, n, 4 + 4 * max_m, max_level)
    if levels.max() != max_level or levels[entry_point] != max_level:
        raise _damaged(f"the entry point or the highest element is not on level {max_level}")
    _check_lists(records[:, :links0_size], max_m0, np.zeros(n, np.int64), levels, "level 0")
    _check_lists(upper, max_m, upper_levels, levels, "an upper level")


def _upper_lists(
    data: bytes, start: int, n: int, block: int, max_level: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Each element's level, and its upper-level lists as rows of ``block`` bytes with
    the level of each row; checks that the lists fill the rest of the file exactly."""
    levels = np.zeros(n, np.int64)
    chunks: list[bytes] = []
    row_levels: list[int] = []
    position, end = start, len(data)
    for element in range(n):
        if position + 4 > end:
            raise _damaged(f"the file ends before element {element}'s upper-level lists")
        (size,) = _U32.unpack_from(data, position)
        level, rest = divmod(size, block)
        if rest or level > max_level or position + 4 + size > end:
            raise _damaged(f"element {element} has {size} bytes of upper-level lists")
        if level:
            levels[element] = level
            chunks.append(data[position + 4 : position + 4 + size])
            row_levels.extend(range(1, level + 1))
        position += 4 + size
    if position != end:
        raise _damaged(f"{end - position} bytes after the last element's lists")
    rows = np.frombuffer(b"".join(chunks), np.uint8).reshape(-1, block)
    return levels, rows, np.asarray(row_levels, np.int64)


def _check_lists(
    lists: npt.NDArray[np.uint8],
    capacity: int,
    list_levels: npt.NDArray[np.int64],
    levels: npt.NDArray[np.int64],
    where: str,
) -> None:
    """Each row: count (low 16 bits, no flags set), then ``capacity`` ids; the listed
    ids must be elements that reach the row's level."""
    if not len(lists):
        return
    header = lists[:, :4].copy().view("<u2")
    counts, flags = header[:, 0].astype(np.int64), header[:, 1]
    if (counts > capacity).any() or flags.any():
        raise _damaged(f"a neighbour list on {where} has a bad count or flags")
    ids = lists[:, 4 : 4 + 4 * capacity].copy().view("<u4").astype(np.int64)
    listed = np.arange(capacity)[None, :] < counts[:, None]
    neighbours = ids[listed]
    if (neighbours >= len(levels)).any():
        raise _damaged(f"a neighbour id on {where} is not one of the {len(levels)} elements")
    row_levels = np.broadcast_to(list_levels[:, None], ids.shape)[listed]
    if (levels[neighbours] < row_levels).any():
        raise _damaged(f"a neighbour on {where} does not reach that level")


def _damaged(what: str) -> ModelError:
    return ModelError(f"ANN index is damaged or not hnswlib's format: {what}")
