"""A tampered hnswlib index is refused before hnswlib's loader (which trusts it) reads it."""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt
import pytest

from mlrec.core.errors import ModelError
from mlrec.models.ann import AnnIndex

N, DIM, M = 300, 8, 6
HEADER = 96
# byte offsets of header fields (hnswlib 0.8 saveIndex)
FIELDS = {
    "offsetLevel0": (0, "<Q"),
    "max_elements": (8, "<Q"),
    "cur_element_count": (16, "<Q"),
    "size_data_per_element": (24, "<Q"),
    "label_offset": (32, "<Q"),
    "offsetData": (40, "<Q"),
    "maxlevel": (48, "<i"),
    "enterpoint": (52, "<I"),
    "maxM": (56, "<Q"),
    "maxM0": (64, "<Q"),
    "M": (72, "<Q"),
    "mult": (80, "<d"),
}
LINKS0 = 4 + 4 * 2 * M
RECORD = LINKS0 + 4 * DIM + 8
UPPER_BLOCK = 4 + 4 * M


@pytest.fixture(scope="module")
def arrays() -> dict[str, npt.NDArray[np.generic]]:
    vectors = np.random.default_rng(3).normal(size=(N, DIM)).astype(np.float32)
    index = AnnIndex.build(vectors, "ip", M=M, ef_construction=40, ef_search=50, seed=1)
    return index.to_arrays()


def _with_blob(
    arrays: dict[str, npt.NDArray[np.generic]], blob: bytes | bytearray
) -> dict[str, npt.NDArray[np.generic]]:
    return {**arrays, "ann.index": np.frombuffer(bytes(blob), np.uint8)}


def _blob(arrays: dict[str, npt.NDArray[np.generic]]) -> bytearray:
    return bytearray(arrays["ann.index"].tobytes())


def _header(blob: bytearray, name: str) -> int | float:
    offset, fmt = FIELDS[name]
    value: int | float = struct.unpack_from(fmt, blob, offset)[0]
    return value


def _set_header(blob: bytearray, name: str, value: float) -> None:
    offset, fmt = FIELDS[name]
    struct.pack_into(fmt, blob, offset, value)


def _upper_lists(blob: bytearray) -> list[tuple[int, int]]:
    """(element, byte offset of its first upper-level block) of every element above 0."""
    out = []
    position = HEADER + N * RECORD
    for element in range(N):
        (size,) = struct.unpack_from("<I", blob, position)
        if size:
            out.append((element, position + 4))
        position += 4 + size
    return out


def _level(blob: bytearray, element: int) -> int:
    position = HEADER + N * RECORD
    for current in range(N):
        (size,) = struct.unpack_from("<I", blob, position)
        if current == element:
            return size // UPPER_BLOCK
        position += 4 + size
    raise AssertionError(element)


def test_an_untouched_index_loads_and_answers(arrays) -> None:
    index = AnnIndex.from_arrays(arrays)

    items, _ = index.search(np.ones((1, DIM), np.float32), k=10)

    assert len(index) == N and ((items >= 0) & (items < N)).all()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("offsetLevel0", 8),
        ("max_elements", N + 1),
        ("cur_element_count", N - 1),
        ("size_data_per_element", RECORD + 4),
        ("label_offset", 1 << 40),
        ("offsetData", 0),
        ("maxM", M + 10),
        ("maxM0", 4 * M),
        ("M", M + 1),
        ("maxlevel", 200),
        ("maxlevel", -1),
        ("enterpoint", N),
        ("mult", float("nan")),
    ],
)
def test_a_header_field_out_of_place_is_refused(arrays, field: str, value: float) -> None:
    blob = _blob(arrays)
    _set_header(blob, field, value)

    with pytest.raises(ModelError, match="damaged"):
        AnnIndex.from_arrays(_with_blob(arrays, blob))


def test_a_level0_neighbour_outside_the_index_is_refused(arrays) -> None:
    blob = _blob(arrays)
    record = HEADER + 17 * RECORD
    assert struct.unpack_from("<H", blob, record)[0] > 0
    struct.pack_into("<I", blob, record + 4, N + 5)

    with pytest.raises(ModelError, match="neighbour id on level 0"):
        AnnIndex.from_arrays(_with_blob(arrays, blob))


def test_a_level0_count_above_capacity_is_refused(arrays) -> None:
    blob = _blob(arrays)
    struct.pack_into("<H", blob, HEADER + 5 * RECORD, 2 * M + 1)

    with pytest.raises(ModelError, match="bad count"):
        AnnIndex.from_arrays(_with_blob(arrays, blob))


def test_an_upper_neighbour_that_does_not_reach_the_level_is_refused(arrays) -> None:
    blob = _blob(arrays)
    _element, block = _upper_lists(blob)[0]
    ground_only = next(e for e in range(N) if _level(blob, e) == 0)
    struct.pack_into("<HH", blob, block, 1, 0)
    struct.pack_into("<I", blob, block + 4, ground_only)

    with pytest.raises(ModelError, match="does not reach"):
        AnnIndex.from_arrays(_with_blob(arrays, blob))


def test_an_upper_list_size_that_is_not_whole_levels_is_refused(arrays) -> None:
    blob = _blob(arrays)
    _element, block = _upper_lists(blob)[0]
    (size,) = struct.unpack_from("<I", blob, block - 4)
    struct.pack_into("<I", blob, block - 4, size + 1)

    with pytest.raises(ModelError, match="upper-level lists"):
        AnnIndex.from_arrays(_with_blob(arrays, blob))


def test_repeated_labels_are_refused(arrays) -> None:
    blob = _blob(arrays)
    label_offset = int(_header(blob, "label_offset"))
    struct.pack_into("<Q", blob, HEADER + 1 * RECORD + label_offset, 0)
    struct.pack_into("<Q", blob, HEADER + 2 * RECORD + label_offset, 0)

    with pytest.raises(ModelError, match="labels"):
        AnnIndex.from_arrays(_with_blob(arrays, blob))


def test_an_entry_point_below_the_top_level_is_refused(arrays) -> None:
    blob = _blob(arrays)
    ground_only = next(e for e in range(N) if _level(blob, e) == 0)
    _set_header(blob, "enterpoint", ground_only)

    with pytest.raises(ModelError, match="entry point"):
        AnnIndex.from_arrays(_with_blob(arrays, blob))


@pytest.mark.parametrize("change", ["truncated", "extended", "header only"])
def test_a_file_of_the_wrong_length_is_refused(arrays, change: str) -> None:
    blob = _blob(arrays)
    edited = {"truncated": blob[:-3], "extended": blob + b"\0" * 4, "header only": blob[:50]}

    with pytest.raises(ModelError, match="damaged"):
        AnnIndex.from_arrays(_with_blob(arrays, edited[change]))


def test_random_changes_to_the_graph_never_reach_hnswlib_unchecked(arrays) -> None:
    # A byte changed in the header or the neighbour lists either is refused or leaves
    # an index whose every search answers with items of the catalogue (a crash here
    # would take the test process down).
    rng = np.random.default_rng(11)
    original = _blob(arrays)
    lists = [*range(HEADER), *(HEADER + r * RECORD + b for r in range(N) for b in range(LINKS0))]
    lists += list(range(HEADER + N * RECORD, len(original)))
    refused = 0
    for _ in range(300):
        blob = bytearray(original)
        position = int(rng.choice(lists))
        blob[position] = int(rng.integers(256))
        try:
            index = AnnIndex.from_arrays(_with_blob(arrays, blob))
        except ModelError:
            refused += 1
            continue
        items, _ = index.search(rng.normal(size=(4, DIM)).astype(np.float32), k=20)
        assert ((items >= -1) & (items < N)).all()
    assert refused > 0
