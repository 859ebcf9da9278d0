"""The byte format of an evaluator's state (not pickle).

::

    offset  size  content
    0       4     magic b"SFEV"
    4       2     format version, uint16 little-endian (this module writes 1)
    6       4     header length H, uint32 little-endian
    10      H     header: UTF-8 JSON {"kind": str, "meta": {...},
                  "arrays": [{"name": str, "dtype": "<i8" | "<f8", "shape": [int, ...]}, ...]}
    10+H    ...   the arrays' bytes, C order, little-endian, in header order
    end-4   4     CRC-32 of every byte before it, uint32 little-endian

Every float that must survive bit for bit lives in an array, never in the JSON header.

>>> blob = encode("demo", {"n": 3}, {"x": np.arange(3, dtype=np.int64)})
>>> meta, arrays = decode(blob, "demo")
>>> meta["n"], arrays["x"].tolist()
(3, [0, 1, 2])
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfit.errors import StateFormatError

__all__ = ["FORMAT_VERSION", "MAGIC", "decode", "encode"]

MAGIC = b"SFEV"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sHI")
_CRC = struct.Struct("<I")
_DTYPES = {"<i8": np.dtype("<i8"), "<f8": np.dtype("<f8")}


def encode(kind: str, meta: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> bytes:
    """Pack ``meta`` (JSON-able) and int64 / float64 ``arrays`` into one blob."""
    specs: list[dict[str, Any]] = []
    payload: list[bytes] = []
    for name, array in arrays.items():
        code = "<f8" if array.dtype.kind == "f" else "<i8"
        data = np.ascontiguousarray(array, dtype=_DTYPES[code])
        specs.append({"name": name, "dtype": code, "shape": list(data.shape)})
        payload.append(data.tobytes())
    try:
        header = json.dumps(
            {"kind": kind, "meta": meta, "arrays": specs}, allow_nan=True, separators=(",", ":")
        ).encode()
    except (TypeError, ValueError) as exc:
        raise TypeError(f"evaluator state holds a value JSON cannot carry: {exc}") from exc
    body = b"".join([_PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)), header, *payload])
    return body + _CRC.pack(zlib.crc32(body))


def decode(blob: bytes, kind: str) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """Unpack a blob written by :func:`encode` for an evaluator of ``kind``."""
    view = memoryview(blob)
    if len(view) < _PREFIX.size + _CRC.size:
        raise StateFormatError("evaluator state is truncated")
    magic, version, header_len = _PREFIX.unpack_from(view, 0)
    if magic != MAGIC:
        raise StateFormatError("not an evaluator state (bad magic)")
    if version != FORMAT_VERSION:
        raise StateFormatError(f"evaluator state version {version} is not supported")
    (crc,) = _CRC.unpack_from(view, len(view) - _CRC.size)
    if zlib.crc32(view[: len(view) - _CRC.size]) != crc:
        raise StateFormatError("evaluator state is corrupt (checksum mismatch)")
    start = _PREFIX.size
    try:
        header = json.loads(bytes(view[start : start + header_len]))
        if header["kind"] != kind:
            raise StateFormatError(f"state is for a {header['kind']!r}, expected {kind!r}")
        offset = start + header_len
        arrays: dict[str, npt.NDArray[Any]] = {}
        for spec in header["arrays"]:
            dtype = _DTYPES[spec["dtype"]]
            shape = tuple(int(d) for d in spec["shape"])
            size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if offset + size > len(view) - _CRC.size:
                raise StateFormatError("evaluator state is truncated")
            raw = np.frombuffer(view[offset : offset + size], dtype=dtype)
            arrays[str(spec["name"])] = raw.reshape(shape).astype(dtype.newbyteorder("="))
            offset += size
        meta: dict[str, Any] = header["meta"]
    except StateFormatError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise StateFormatError(f"evaluator state header is invalid: {exc}") from exc
    if offset != len(view) - _CRC.size:
        raise StateFormatError("evaluator state has trailing bytes")
    return meta, arrays
