import numpy as np
import pytest

from mlrec.core import DataError, Interactions


def test_to_csr_sums_duplicate_pairs_and_binary_sets_ones() -> None:
    data = Interactions.from_arrays(["u1", "u1", "u2"], ["i1", "i1", "i2"], [2.0, 3.0, 1.0])
    matrix = data.to_csr()
    assert matrix.shape == (2, 2)
    assert matrix[0, 0] == 5.0
    assert data.to_csr(binary=True)[0, 0] == 1.0


def test_subset_keeps_id_maps_so_matrices_line_up() -> None:
    data = Interactions.from_arrays(["u1", "u2", "u3"], ["i1", "i2", "i3"])
    part = data.subset(np.array([True, False, True]))
    assert len(part) == 2
    assert part.users is data.users
    assert part.to_csr().shape == data.to_csr().shape


def test_mismatched_lengths_raise_data_error() -> None:
    with pytest.raises(DataError):
        Interactions.from_arrays(["u1"], ["i1", "i2"])
