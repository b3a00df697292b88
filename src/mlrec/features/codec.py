"""Compact binary encoding of feature values, one codec per :class:`ValueType`.

Numbers are fixed-width little-endian (8 bytes), lists are packed arrays, strings
UTF-8; string lists are length-prefixed. Encoding checks the type, so a write of the
wrong type fails before anything is stored.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from mlrec.core.errors import ValidationError
from mlrec.features.definitions import Feature, ValueType

__all__ = ["decode", "decoder", "encode"]

_F64 = struct.Struct("<d")
_I64 = struct.Struct("<q")
_U32 = struct.Struct("<I")


def _enc_float(value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError
    number = float(value)
    if not math.isfinite(number):  # JSON cannot carry it back: it would read as null
        raise ValueError
    return _F64.pack(number)


def _enc_int(value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError
    return _I64.pack(int(value))


def _enc_bool(value: Any) -> bytes:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError
    return b"\x01" if value else b"\x00"


def _enc_string(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError
    return value.encode()


_INTEGER = (int, np.integer)
_NUMBER = (int, float, np.integer, np.floating)


def _sequence(value: Any) -> list[Any]:
    """The items of a list value: a list, tuple or 1-d array (not a string or a dict)."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise TypeError
        return list(value.tolist())
    if not isinstance(value, (list, tuple)):
        raise TypeError
    return list(value)


def _enc_float_list(value: Any) -> bytes:
    items = _sequence(value)
    if any(isinstance(v, bool) or not isinstance(v, _NUMBER) for v in items):
        raise TypeError
    array = np.asarray(items, dtype="<f8")
    if not np.isfinite(array).all():
        raise ValueError
    return array.tobytes()


def _enc_int_list(value: Any) -> bytes:
    items = _sequence(value)
    if any(isinstance(v, bool) or not isinstance(v, _INTEGER) for v in items):
        raise TypeError
    return np.asarray(items, dtype="<i8").tobytes()  # OverflowError beyond int64


def _enc_string_list(value: Any) -> bytes:
    value = _sequence(value)
    if not all(isinstance(v, str) for v in value):
        raise TypeError
    parts = [v.encode() for v in value]
    return b"".join(_U32.pack(len(p)) + p for p in parts)


def _dec_string_list(raw: bytes) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        (length,) = _U32.unpack_from(raw, pos)
        pos += 4
        out.append(raw[pos : pos + length].decode())
        pos += length
    return out


_ENCODERS: dict[ValueType, Callable[[Any], bytes]] = {
    ValueType.FLOAT: _enc_float,
    ValueType.INT: _enc_int,
    ValueType.BOOL: _enc_bool,
    ValueType.STRING: _enc_string,
    ValueType.FLOAT_LIST: _enc_float_list,
    ValueType.INT_LIST: _enc_int_list,
    ValueType.STRING_LIST: _enc_string_list,
}

_DECODERS: dict[ValueType, Callable[[bytes], Any]] = {
    ValueType.FLOAT: lambda raw: _F64.unpack(raw)[0],
    ValueType.INT: lambda raw: _I64.unpack(raw)[0],
    ValueType.BOOL: lambda raw: raw == b"\x01",
    ValueType.STRING: lambda raw: raw.decode(),
    ValueType.FLOAT_LIST: lambda raw: np.frombuffer(raw, "<f8").tolist(),
    ValueType.INT_LIST: lambda raw: np.frombuffer(raw, "<i8").tolist(),
    ValueType.STRING_LIST: _dec_string_list,
}


def encode(feature: Feature, value: Any) -> bytes:
    """Encode ``value`` for ``feature``; :class:`ValidationError` if the type is wrong."""
    try:
        return _ENCODERS[feature.dtype](value)
    except (TypeError, ValueError, OverflowError, struct.error):
        raise ValidationError(
            f"feature {feature.name!r} is {feature.dtype.value}, got {type(value).__name__} "
            f"{value!r:.40}"
        ) from None


def decoder(dtype: ValueType) -> Callable[[bytes], Any]:
    """The decoding function of ``dtype`` (bind it once for hot loops)."""
    return _DECODERS[dtype]


def decode(dtype: ValueType, raw: bytes) -> Any:
    """Decode bytes written by :func:`encode` for a feature of ``dtype``."""
    return _DECODERS[dtype](raw)
