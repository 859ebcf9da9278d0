"""Prediction records for the predictions topic, built a batch at a time.

One record per scored event: its key, the champion's prediction and probability (for an
anomaly detector: ``anomaly_score``, ``score_quantile`` and ``is_anomaly``), the model's
name and version, where the event came from, and the challengers' predictions. Every value
becomes JSON text once per batch (numbers through one ``orjson`` call per column, labels and
topics once per distinct value, keys that need no escaping as they are); what is the same in
every row (the model, usually the topic and the partition) is written into the record's
format once, and each record is then one ``%``-format of the texts that differ, not a dict
serialized event by event.

>>> import numpy as np
>>> from streamfit.batch import Batch, Messages
>>> from streamfit.store import ModelPredictions
>>> batch = Batch({}, Messages.from_values([b"{}", b"{}"], topic="t", keys=[b"a", None]))
>>> champion = ModelPredictions("m", 3, np.array(["yes", "no"], dtype=object),
...                             np.array([0.9, np.nan]))
>>> [value for _, value in prediction_records(batch, [champion])]  # doctest: +NORMALIZE_WHITESPACE
[b'{"key":"a","prediction":"yes","probability":0.9,"model":"m","model_version":3,"topic":"t","partition":0,"offset":0}',
 b'{"key":null,"prediction":"no","probability":null,"model":"m","model_version":3,"topic":"t","partition":0,"offset":1}']
"""

from __future__ import annotations

import re
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import orjson

from streamfit.batch import Batch
from streamfit.limits import MAX_KEY_BYTES
from streamfit.runtime.keys import key_text
from streamfit.store import ModelPredictions
from streamfit.streams.base import Record

__all__ = ["prediction_records"]

_NULL = b"null"
#: Bytes a key's JSON string cannot hold as they are: control characters, the quote and the
#: backslash (escaped), and non-ASCII (decoded as UTF-8 first, invalid bytes replaced).
_ESCAPED = re.compile(rb'[\x00-\x1f"\\\x80-\xff]')
_CHALLENGER = b'%b:{"prediction":%b,"probability":%b,"model_version":%d}'
_DETECTOR = b'%b:{"anomaly_score":%b,"score_quantile":%b,"is_anomaly":%b,"model_version":%d}'
_SCORE, _QUANTILE, _ALARM = b',"anomaly_score":', b',"score_quantile":', b',"is_anomaly":'

#: What goes before each field's value in a record, in record order.
_KEY, _PREDICTION, _PROBABILITY = b'{"key":', b',"prediction":', b',"probability":'
_MODEL, _VERSION = b',"model":', b',"model_version":'
_TOPIC, _PARTITION, _OFFSET = b',"topic":', b',"partition":', b',"offset":'


def prediction_records(
    batch: Batch, predictions: list[ModelPredictions], key_field: str | None = None
) -> list[Record]:
    """One ``(key, value)`` record per row of ``batch``; ``predictions[0]`` is the champion,
    the others the challengers. The record's key is the event's ``key_field`` value where it
    has one, else the event's own Kafka key."""
    meta = batch.meta
    n = len(batch)
    if n == 0:
        return []
    keys = _keys(meta.keys, batch.columns.get(key_field) if key_field else None)
    champion, others = predictions[0], predictions[1:]
    record = _Template()
    if keys.count(None) == n:
        record.constant(_KEY, _NULL)
    elif None not in keys and not _ESCAPED.search(b"".join(cast(list[bytes], keys))):
        record.column(_KEY + b'"', keys, b'%b"')  # each key is its own JSON string's text
    else:
        record.column(_KEY, [_NULL if k is None else _key_text(k) for k in keys])
    if champion.alarms is not None:  # an anomaly detector's
        record.column(_SCORE, _texts_of_numbers(champion.prediction, n))
        record.column(_QUANTILE, _texts_of_numbers(champion.probability, n))
        record.column(_ALARM, _flags(champion.alarms))
    else:
        record.column(_PREDICTION, _texts_of_values(champion.prediction))
        record.column(_PROBABILITY, _texts_of_numbers(champion.probability, n))
    if champion.models is None or champion.versions is None:
        record.constant(_MODEL, orjson.dumps(champion.name))
        record.constant(_VERSION, b"%d" % champion.version)
    else:  # A/B serving: each row's own model
        record.column(_MODEL, _texts_of_values(champion.models))
        record.column(_VERSION, champion.versions.tolist(), b"%d")
    topic = meta.single_topic()
    if topic is not None:
        record.constant(_TOPIC, orjson.dumps(topic))
    else:
        record.column(_TOPIC, _texts_of_values(meta.topics))
    partitions = meta.partitions
    if partitions.min() == partitions.max():
        record.constant(_PARTITION, b"%d" % partitions[0])
    else:
        record.column(_PARTITION, partitions.tolist(), b"%d")
    record.column(_OFFSET, meta.offsets.tolist(), b"%d")
    if others:
        record.column(b"", _challengers(others, n))
    record.constant(b"}", b"")
    return list(zip(keys, record.render(), strict=True))


class _Template:
    """A record's ``%``-format: what is the same in every row of the batch is written into
    the format once, the rest is one column of texts (or integers) per field."""

    __slots__ = ("columns", "parts")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.columns: list[list[Any]] = []

    def constant(self, head: bytes, text: bytes) -> None:
        self.parts.append((head + text).replace(b"%", b"%%"))

    def column(self, head: bytes, values: list[Any], conversion: bytes = b"%b") -> None:
        self.parts.append(head.replace(b"%", b"%%") + conversion)
        self.columns.append(values)

    def render(self) -> list[bytes]:
        template = b"".join(self.parts)
        return [template % row for row in zip(*self.columns, strict=True)]


def _keys(own: list[bytes | None], values: npt.NDArray[Any] | None) -> list[bytes | None]:
    """The key field's value as text where it has one, else the event's own key."""
    if values is None:
        return own
    out = list(own)
    for i, value in enumerate(values.tolist()):
        if value is None or (isinstance(value, float) and value != value):
            continue
        key = key_text(value).encode()  # 4500.0 reads 4500, True reads true
        if len(key) <= MAX_KEY_BYTES:  # else the event's own key: the record must fit
            out[i] = key
    return out


def _key_text(key: bytes) -> bytes:
    if _ESCAPED.search(key):
        return orjson.dumps(key.decode("utf-8", "replace"))
    return b'"%b"' % key


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
        if p.alarms is None
        else [
            _DETECTOR % row
            for row in zip(
                [orjson.dumps(p.name)] * n,
                _texts_of_numbers(p.prediction, n),
                _texts_of_numbers(p.probability, n),
                _flags(p.alarms),
                [p.version] * n,
                strict=True,
            )
        ]
        for p in others
    ]
    return [b',"challengers":{' + b",".join(row) + b"}" for row in zip(*parts, strict=True)]


def _flags(values: npt.NDArray[np.bool_]) -> list[bytes]:
    return [b"true" if v else b"false" for v in np.asarray(values, dtype=bool).tolist()]


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
    items = values.tolist()
    kinds = set(map(type, items))
    if len(kinds & {bool, int, float}) > 1:  # True, 1 and 1.0: equal keys, unequal texts
        typed = list(zip(map(type, items), items, strict=True))
        by_kind = {key: _json(key[1]) for key in dict.fromkeys(typed)}
        return list(map(by_kind.__getitem__, typed))
    texts = {value: _json(value) for value in dict.fromkeys(items)}
    return list(map(texts.__getitem__, items))


def _json(value: Any) -> bytes:
    if isinstance(value, float) and value != value:
        return _NULL
    try:
        return orjson.dumps(value)
    except TypeError:
        return orjson.dumps(str(value))
