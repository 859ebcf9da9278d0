"""The binary envelope every piece of learned state travels in, written once.

Models (``SFST``, :mod:`streamfit.models.state`), evaluators (``SFEV``,
:mod:`streamfit.evaluation._state`) and the featurizer (``SFFEATS\\0``,
:mod:`streamfit.features.featurizer`) each put their state in the same frame and differ only
in their magic bytes, their header's keys and their payload::

    offset  size  field
    0       M     magic            the format's own bytes (4 or 8)
    M       2     format version   u16 little-endian
    M+2     4     header length H  u32 little-endian
    M+6     H     header           a UTF-8 JSON object
    M+6+H   P     payload          arrays one after another, or one pickle
    end-4   4     checksum         u32 little-endian CRC-32 of every byte before it

An array of the payload is its bytes, C order, little-endian, in the order of its entry in a
list of ``{"name", "dtype", "shape"}`` (the header's ``"arrays"`` for models and evaluators;
the featurizer's are implied by its schema).

A blob that is not bytes, is too short, has other magic bytes or a version this release does
not read, fails its checksum, or whose header or arrays do not describe its payload raises
``StateFormatError``, and nothing else, whoever reads it.

>>> blob = seal(b"DEMO", 1, b'{"n":2}', b"\\x01\\x02")
>>> opened = unseal(blob, b"DEMO", 1, "demo state")
>>> opened.header, opened.payload
({'n': 2}, b'\\x01\\x02')
>>> unseal(blob[:-1], b"DEMO", 1, "demo state")
Traceback (most recent call last):
...
streamfit.errors.StateFormatError: demo state: checksum mismatch (corrupt or truncated blob)
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfit.errors import StateFormatError

__all__ = ["ARRAY_DTYPES", "Opened", "pack_arrays", "seal", "unpack_arrays", "unseal"]

#: The array types a payload may hold (little-endian numpy type strings).
ARRAY_DTYPES = frozenset({"<f8", "<i8", "<i4", "|u1", "|b1"})
_LENGTHS = struct.Struct("<HI")  # version, header length
_CRC = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class Opened:
    """A blob whose frame checked out: its version, its header, and the payload's bytes."""

    version: int
    header: dict[str, Any]
    payload: bytes


def seal(magic: bytes, version: int, header: bytes, *payload: bytes) -> bytes:
    """The blob of ``header`` (JSON bytes) and ``payload`` in the envelope."""
    body = b"".join([magic, _LENGTHS.pack(version, len(header)), header, *payload])
    return body + _CRC.pack(zlib.crc32(body))


def unseal(blob: object, magic: bytes, version: int | tuple[int, ...], what: str) -> Opened:
    """Check ``blob``'s frame and read its header; ``what`` names it in errors. ``version``:
    the format version this release reads (or the versions: ``Opened.version`` says which)."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise StateFormatError(f"{what}: expected bytes, got {type(blob).__name__}")
    data = bytes(blob)
    start = len(magic) + _LENGTHS.size
    if len(data) < start + _CRC.size:
        raise StateFormatError(f"{what}: truncated ({len(data)} bytes is too short for a blob)")
    if data[: len(magic)] != magic:
        raise StateFormatError(f"{what}: unknown magic {data[: len(magic)]!r} (expected {magic!r})")
    found, header_length = _LENGTHS.unpack_from(data, len(magic))
    versions = version if isinstance(version, tuple) else (version,)
    if found not in versions:
        readable = " and ".join(map(str, versions))
        raise StateFormatError(
            f"{what}: format version {found} is not supported "
            f"(this release reads version {readable})"
        )
    end = len(data) - _CRC.size
    (crc,) = _CRC.unpack_from(data, end)
    if zlib.crc32(data[:end]) != crc:
        raise StateFormatError(f"{what}: checksum mismatch (corrupt or truncated blob)")
    if start + header_length > end:
        raise StateFormatError(f"{what}: header runs past the end of the blob")
    try:
        header = json.loads(data[start : start + header_length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise StateFormatError(f"{what}: header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise StateFormatError(f"{what}: header is not a JSON object")
    return Opened(found, header, data[start + header_length : end])


def pack_arrays(
    arrays: Mapping[str, npt.NDArray[Any]], what: str
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The ``{"name", "dtype", "shape"}`` entries of ``arrays`` and their bytes, little-endian.

    >>> entries, chunks = pack_arrays({"w": np.arange(2.0)}, "demo state")
    >>> entries, len(chunks[0])
    ([{'name': 'w', 'dtype': '<f8', 'shape': [2]}], 16)
    """
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, array in arrays.items():
        little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        dtype = little.dtype.str
        if dtype not in ARRAY_DTYPES:
            raise StateFormatError(f"{what}: array {name!r} of dtype {dtype} cannot be saved")
        entries.append({"name": name, "dtype": dtype, "shape": list(little.shape)})
        chunks.append(little.tobytes())
    return entries, chunks


def unpack_arrays(
    payload: bytes, entries: object, what: str, dtypes: frozenset[str] = ARRAY_DTYPES
) -> dict[str, npt.NDArray[Any]]:
    """The arrays ``entries`` describe, read from ``payload``, which they must fill exactly;
    ``dtypes`` are the array types this kind of state may hold.

    >>> entries, chunks = pack_arrays({"w": np.arange(2.0)}, "demo state")
    >>> unpack_arrays(b"".join(chunks), entries, "demo state")["w"].tolist()
    [0.0, 1.0]
    """
    if not isinstance(entries, list):
        raise StateFormatError(f"{what}: the array list is not a list")
    arrays: dict[str, npt.NDArray[Any]] = {}
    offset = 0
    for entry in entries:
        try:
            name, dtype_str, shape = entry["name"], entry["dtype"], tuple(entry["shape"])
        except (KeyError, TypeError) as exc:
            raise StateFormatError(f"{what}: bad array entry {entry!r}") from exc
        if (
            not isinstance(name, str)
            or dtype_str not in dtypes
            or not all(type(d) is int and d >= 0 for d in shape)
        ):
            raise StateFormatError(f"{what}: bad array entry {entry!r}")
        dtype = np.dtype(dtype_str)
        count = math.prod(shape)
        size = dtype.itemsize * count
        if offset + size > len(payload):
            raise StateFormatError(f"{what}: array {name!r} runs past the end of the blob")
        arrays[name] = (
            np.frombuffer(payload, dtype=dtype, count=count, offset=offset)
            .reshape(shape)
            .astype(dtype.newbyteorder("="))
        )
        offset += size
    if offset != len(payload):
        raise StateFormatError(
            f"{what}: {len(payload) - offset} unexplained bytes after the arrays"
        )
    return arrays
