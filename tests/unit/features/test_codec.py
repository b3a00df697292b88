"""Feature values are encoded only when they read back as what was written."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from mlrec.core.errors import ValidationError
from mlrec.features.codec import decode, encode
from mlrec.features.definitions import Feature, ValueType


@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        (ValueType.FLOAT, math.nan),
        (ValueType.FLOAT, math.inf),
        (ValueType.FLOAT_LIST, [1.0, math.inf]),
        (ValueType.FLOAT_LIST, [1, 2.5, True]),
        (ValueType.INT_LIST, [2**63]),
        (ValueType.INT_LIST, [2**64 - 1]),
        (ValueType.INT_LIST, [1, True]),
        (ValueType.INT_LIST, [1, 2.5]),
        (ValueType.STRING_LIST, {"a": 1}),
        (ValueType.STRING_LIST, "ab"),
    ],
)
def test_values_that_would_not_read_back_as_written_are_refused(
    dtype: ValueType, value: Any
) -> None:
    with pytest.raises(ValidationError, match=f"is {dtype.value}"):
        encode(Feature("f", dtype), value)


@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        (ValueType.FLOAT, 2.5),
        (ValueType.FLOAT_LIST, [1, 2.5, np.float32(3.0)]),
        (ValueType.INT_LIST, [-(2**63), 2**63 - 1, np.int64(7)]),
        (ValueType.INT_LIST, np.arange(3)),
        (ValueType.STRING_LIST, ("a", "b")),
    ],
)
def test_values_of_the_features_type_round_trip(dtype: ValueType, value: Any) -> None:
    decoded = decode(dtype, encode(Feature("f", dtype), value))
    assert list(np.atleast_1d(decoded)) == list(np.atleast_1d(value))
