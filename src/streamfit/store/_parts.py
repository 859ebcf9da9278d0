"""Large state blobs stored in parts, so that every database takes them.

MariaDB refuses a statement larger than its ``max_allowed_packet`` (16 MiB by default) by
dropping the connection, and PyMySQL sends a blob escaped, up to twice its size: a model state
of 19 MB (a softmax model of four classes over 2**18 hashed features) could never be saved,
and the worker would wait for a database that is not down. So a blob larger than
``PART_BYTES`` is stored as a header row under its own name and parts under
``<name>#part-<i>``, all written in the caller's transaction; reading joins them back.

>>> rows = split("m", b"x" * 10, part_bytes=4)
>>> [name for name, _ in rows]
['m', 'm#part-0', 'm#part-1', 'm#part-2']
>>> joined(dict(rows)) == {"m": b"x" * 10}
True
>>> split("small", b"abc", part_bytes=4)
[('small', b'abc')]
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping

from streamfit.errors import StoreError

__all__ = ["PART_BYTES", "is_part", "joined", "part_names", "split"]

#: The largest blob stored in one row: escaped, well below MariaDB's 16 MiB packets.
PART_BYTES = 4 << 20
_HEADER = b"\x00streamfit-parts\x00"
_COUNTS = struct.Struct("<IQ")  # parts, total bytes
_PART = re.compile(r"#part-\d+\Z")


def split(name: str, blob: bytes, part_bytes: int = PART_BYTES) -> list[tuple[str, bytes]]:
    """The rows (name, bytes) that store ``blob`` under ``name``."""
    if len(blob) <= part_bytes:
        return [(name, blob)]
    parts = [blob[at : at + part_bytes] for at in range(0, len(blob), part_bytes)]
    header = _HEADER + _COUNTS.pack(len(parts), len(blob))
    return [(name, header), *((f"{name}#part-{i}", part) for i, part in enumerate(parts))]


def is_part(name: str) -> bool:
    """Whether a stored name is a part of another's blob."""
    return _PART.search(name) is not None


def part_names(name: str, header: bytes) -> list[str]:
    """The names of the parts a header row announces (none for a blob stored whole)."""
    if not header.startswith(_HEADER):
        return []
    count, _ = _COUNTS.unpack_from(header, len(_HEADER))
    return [f"{name}#part-{i}" for i in range(count)]


def joined(rows: Mapping[str, bytes]) -> dict[str, bytes]:
    """Every blob of ``rows`` (name -> stored bytes, parts included), whole again."""
    out: dict[str, bytes] = {}
    for name, stored in rows.items():
        if is_part(name):
            continue
        names = part_names(name, stored)
        if not names:
            out[name] = stored
            continue
        try:
            blob = b"".join(rows[part] for part in names)
        except KeyError as exc:
            raise StoreError(f"state {name!r} is missing its part {exc.args[0]!r}") from None
        _, total = _COUNTS.unpack_from(stored, len(_HEADER))
        if len(blob) != total:
            raise StoreError(f"state {name!r} has {len(blob)} of its {total} bytes")
        out[name] = blob
    return out
