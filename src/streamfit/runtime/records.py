"""Prediction records for the predictions topic, built a batch at a time.

One record per scored event: its key, the champion's prediction and probability, the model's
name and version, where the event came from, and the challengers' predictions. Every value
becomes JSON text once per batch (numbers through one ``orjson`` call per column, labels and
topics once per distinct value); each record is then one ``%``-format of those texts, not a
dict serialized event by event.

>>> import numpy as np
>>> from streamfit.batch import Batch, Messages
>>> from streamfit.store import ModelPredictions
>>> batch = Batch({}, Messages.from_values([b"{}", b"{}"], topic="t", keys=[b"a", None]))
>>> champion = ModelPredictions("m", 3, np.array(["yes", "no"], dtype=object),
...                             np.array([0.9, np.nan]))
>>> [r.value for r in prediction_records(batch, [champion])]  # doctest: +NORMALIZE_WHITESPACE
[b'{"key":"a","prediction":"yes","probability":0.9,"model":"m","model_version":3,"topic":"t","partition":0,"offset":0}',
 b'{"key":null,"prediction":"no","probability":null,"model":"m","model_version":3,"topic":"t","partition":0,"offset":1}']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from streamfit.batch import Batch
from streamfit.store import ModelPredictions
from streamfit.streams.base import OutRecord

__all__ = ["prediction_records"]

_RECORD = (
    b'{"key":%b,"prediction":%b,"probability":%b,"model":%b,"model_version":%d,'
    b'"topic":%b,"partition":%d,"offset":%d%b}'
)
_CHALLENGER = b'%b:{"prediction":%b,"probability":%b,"model_version":%d}'
_NULL = b"null"


def prediction_records(
    batch: Batch, predictions: list[ModelPredictions], key_field: str | None = None
) -> list[OutRecord]:
    """One record per row of ``batch``; ``predictions[0]`` is the champion, the others the
    challengers. The record's key is the event's ``key_field`` value where it has one, else
    the event's own Kafka key."""
    meta = batch.meta
    n = len(batch)
    keys = _keys(meta.keys, batch.columns.get(key_field) if key_field else None)
    key_texts = [_NULL if k is None else orjson.dumps(k.decode("utf-8", "replace")) for k in keys]
    champion, others = predictions[0], predictions[1:]
    model = orjson.dumps(champion.name)
    topics = _texts_of_values(meta.topics)
    challengers = _challengers(others, n) if others else [b""] * n
    values = [
        _RECORD % row
        for row in zip(
            key_texts,
            _texts_of_values(champion.prediction),
            _texts_of_numbers(champion.probability, n),
            [model] * n,
            [champion.version] * n,
            topics,
            meta.partitions.tolist(),
            meta.offsets.tolist(),
            challengers,
            strict=True,
        )
    ]
    return [OutRecord(k, v) for k, v in zip(keys, values, strict=True)]


def _keys(own: list[bytes | None], values: npt.NDArray[Any] | None) -> list[bytes | None]:
    """The key field's value as text where it has one, else the event's own key."""
    if values is None:
        return own
    out = list(own)
    for i, value in enumerate(values.tolist()):
        if value is None or (isinstance(value, float) and value != value):
            continue
        out[i] = str(value).encode()
    return out


def _challengers(others: list[ModelPredictions], n: int) -> list[bytes]:
    parts = [
        [
            _CHALLENGER % row
            for row in zip(
                [orjson.dumps(p.name)] * n,
                _texts_of_values(p.prediction),
                _texts_of_numbers(p.probability, n),
                [p.version] * n,
                strict=True,
            )
        ]
        for p in others
    ]
    return [b',"challengers":{' + b",".join(row) + b"}" for row in zip(*parts, strict=True)]


def _texts_of_numbers(values: npt.NDArray[Any] | None, n: int) -> list[bytes]:
    """JSON text of each number (NaN as null), from one ``orjson`` call: a number's text has
    no comma, so the array's text splits into its elements."""
    if values is None:
        return [_NULL] * n
    if n == 0:
        return []
    return orjson.dumps(np.asarray(values, dtype=np.float64).tolist())[1:-1].split(b",")


def _texts_of_values(values: npt.NDArray[Any]) -> list[bytes]:
    """JSON text of each value (labels, topics): each distinct value serialized once."""
    if values.dtype.kind == "f":
        return _texts_of_numbers(values, len(values))
    cache: dict[tuple[type, Any], bytes] = {}
    out = []
    for value in values.tolist():
        key = (type(value), value)  # True and 1 are equal keys of a dict, not equal labels
        text = cache.get(key)
        if text is None:
            text = cache[key] = _json(value)
        out.append(text)
    return out


def _json(value: Any) -> bytes:
    if isinstance(value, float) and value != value:
        return _NULL
    try:
        return orjson.dumps(value)
    except TypeError:
        return orjson.dumps(str(value))
