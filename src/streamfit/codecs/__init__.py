"""streamfit.codecs: raw event bytes to columnar batches.

``decode_json`` reads JSON-object payloads; rows that cannot be used become dead letters.
"""

from __future__ import annotations

from streamfit.codecs.json import DecodeResult, decode_json

__all__ = ["DecodeResult", "decode_json"]
