"""Event keys: the spec's ``key:`` field, written the same way everywhere.

With ``key: id`` in the spec, an event's key is its ``id`` value, as text: it is the key of
its record on the predictions topic, the ``key`` field of that record, and ``event_key`` in
the results table. Whole numbers read without a decimal point (``4500``, not ``4500.0``: JSON
numbers reach the batch as floats). An event without the field keeps its Kafka key, and so
does one whose value is longer than ``limits.MAX_KEY_BYTES`` as text (its record would not
fit in a Kafka message otherwise).

>>> import numpy as np
>>> from streamfit.batch import Batch, Messages
>>> batch = Batch({"id": np.array([4500.0, np.nan, 2.5])},
...               Messages.from_values([b"{}"] * 3, keys=[b"k0", b"k1", None]))
>>> keyed(batch, "id").meta.keys
[b'4500', b'k1', b'2.5']
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from streamfit.batch import Batch
from streamfit.limits import MAX_KEY_BYTES

__all__ = ["key_text", "keyed", "keys_of", "payload_keys"]


def key_text(value: Any) -> str:
    """A key field's value as text: ``4500`` for 4500 and 4500.0, ``true`` for True.

    >>> key_text(4500.0), key_text(2.5), key_text(True), key_text("x"), key_text(np.int64(7))
    ('4500', '2.5', 'true', 'x', '7')
    """
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        number = float(value)
        if np.isfinite(number) and number == int(number) and abs(number) < 2**63:
            return str(int(number))
        return repr(number)
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def keys_of(
    values: npt.NDArray[Any], fallback: list[bytes | None] | None = None
) -> list[bytes | None]:
    """Each value as a key (``fallback``'s key, else None, where the value is missing)."""
    out: list[bytes | None] = list(fallback) if fallback is not None else [None] * len(values)
    if values.dtype.kind == "f":
        present = np.flatnonzero(~np.isnan(values))
        whole = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2**63)
        for i in present.tolist():
            value = values[i]
            out[i] = (str(int(value)) if whole[i] else repr(float(value))).encode()
        return out
    for i, value in enumerate(values.tolist()):
        if value is not None:
            key = key_text(value).encode()
            if len(key) <= MAX_KEY_BYTES:
                out[i] = key
    return out


def keyed(batch: Batch, key_field: str | None) -> Batch:
    """``batch`` whose message keys are its ``key_field`` values where it has one."""
    if not key_field or key_field not in batch.columns or len(batch) == 0:
        return batch
    keys = keys_of(batch.columns[key_field], batch.meta.keys)
    meta = dataclasses.replace(batch.meta, keys=keys)
    return Batch(batch.columns, meta, batch.booleans, batch.partial)


def payload_keys(events: list[bytes], key_field: str) -> list[bytes | None]:
    """Each JSON event's ``key_field`` value as a message key (``streamfit produce --key``).

    >>> payload_keys([b'{"id": 4500}', b'{"id": 7.0}', b'{"id": "a"}', b'{}'], "id")
    [b'4500', b'7', b'a', None]
    """
    out: list[bytes | None] = []
    for event in events:
        value = orjson.loads(event).get(key_field)
        out.append(None if value is None else key_text(value).encode())
    return out
