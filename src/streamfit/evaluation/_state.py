"""The byte format of an evaluator's state (not pickle): the envelope of
:mod:`streamfit._envelope` with magic ``b"SFEV"``, version 1, and this header::

    {"kind": str, "meta": {...},
     "arrays": [{"name": str, "dtype": "<i8" | "<f8", "shape": [int, ...]}, ...]}

followed by the arrays' bytes in header order. Every float that must survive bit for bit
lives in an array, never in the JSON header.

>>> blob = encode("demo", {"n": 3}, {"x": np.arange(3, dtype=np.int64)})
>>> meta, arrays = decode(blob, "demo")
>>> meta["n"], arrays["x"].tolist()
(3, [0, 1, 2])
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfit._envelope import pack_arrays, seal, unpack_arrays, unseal
from streamfit.errors import StateFormatError

__all__ = ["FORMAT_VERSION", "MAGIC", "decode", "encode"]

MAGIC = b"SFEV"
FORMAT_VERSION = 1
_WHAT = "evaluator state"
_DTYPES = frozenset({"<i8", "<f8"})


def encode(kind: str, meta: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> bytes:
    """Pack ``meta`` (JSON-able) and ``arrays`` (stored as int64 or float64) into one blob."""
    wide = {
        name: np.asarray(array, dtype=np.float64 if array.dtype.kind == "f" else np.int64)
        for name, array in arrays.items()
    }
    specs, payload = pack_arrays(wide, _WHAT)
    try:
        header = json.dumps(
            {"kind": kind, "meta": meta, "arrays": specs}, allow_nan=True, separators=(",", ":")
        ).encode()
    except (TypeError, ValueError) as exc:
        raise StateFormatError(f"{_WHAT}: holds a value JSON cannot carry: {exc}") from exc
    return seal(MAGIC, FORMAT_VERSION, header, *payload)


def decode(blob: bytes, kind: str) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """Unpack a blob written by :func:`encode` for an evaluator of ``kind``."""
    opened = unseal(blob, MAGIC, FORMAT_VERSION, _WHAT)
    header = opened.header
    if header.get("kind") != kind:
        raise StateFormatError(f"{_WHAT}: is for a {header.get('kind')!r}, expected {kind!r}")
    meta = header.get("meta")
    if not isinstance(meta, dict):
        raise StateFormatError(f"{_WHAT}: header has no 'meta' object")
    return meta, unpack_arrays(opened.payload, header.get("arrays"), _WHAT, _DTYPES)
