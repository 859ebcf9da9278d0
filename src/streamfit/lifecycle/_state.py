"""The lifecycle's small states (gate, champion policy) in the one envelope: a JSON header,
no payload (``streamfit._envelope``). Floats round-trip exactly through JSON (``repr``)."""

from __future__ import annotations

import json
from typing import Any

from streamfit._envelope import seal, unseal

__all__ = ["read_state", "write_state"]

_VERSION = 1


def write_state(magic: bytes, what: dict[str, Any]) -> bytes:
    """``what`` (JSON values) sealed under ``magic``."""
    header = json.dumps(what, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return seal(magic, _VERSION, header.encode())


def read_state(blob: object, magic: bytes, name: str) -> dict[str, Any]:
    """The JSON object ``write_state`` sealed; ``StateFormatError`` if ``blob`` is not one."""
    return unseal(blob, magic, _VERSION, name).header
