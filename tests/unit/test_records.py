"""Prediction records: the batch-at-a-time builder writes the JSON a per-event dict would."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from streamfit.batch import Batch, Messages
from streamfit.runtime.records import prediction_records
from streamfit.store import ModelPredictions


def _objects(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _expected(batch: Batch, preds: list[ModelPredictions], key_field: str | None) -> list[Any]:
    """The record of each row, built event by event the obvious way."""

    def plain(value: Any) -> Any:
        if isinstance(value, np.generic):
            value = value.item()
        return None if isinstance(value, float) and value != value else value

    out = []
    meta = batch.meta
    for i in range(len(batch)):
        key = meta.keys[i]
        if key_field and plain(batch.columns[key_field][i]) is not None:
            key = str(plain(batch.columns[key_field][i])).encode()
        champion = preds[0]
        event: dict[str, Any] = {
            "key": key.decode("utf-8", "replace") if key is not None else None,
            "prediction": plain(champion.prediction[i]),
            "probability": plain(champion.probability[i])
            if champion.probability is not None
            else None,
            "model": champion.name,
            "model_version": champion.version,
            "topic": meta.topics[i],
            "partition": int(meta.partitions[i]),
            "offset": int(meta.offsets[i]),
        }
        if preds[1:]:
            event["challengers"] = {
                p.name: {
                    "prediction": plain(p.prediction[i]),
                    "probability": plain(p.probability[i]) if p.probability is not None else None,
                    "model_version": p.version,
                }
                for p in preds[1:]
            }
        out.append((key, event))
    return out


def test_classification_records_with_challengers_and_a_key_field() -> None:
    n = 6
    meta = Messages.from_values(
        [b"{}"] * n,
        topic='odd "topic"',
        first_offset=40,
        keys=[b"k0", None, b"\xff", b"", None, b"k5"],
    )
    batch = Batch({"user": _objects([7, None, "u\u00e9", float("nan"), 2.5, None])}, meta)
    champion = ModelPredictions(
        "champ",
        12,
        _objects([True, 1, "yes", None, 0, False]),
        np.array([0.5, 1e-9, 1.0, np.nan, 0.25, 2 / 3]),
    )
    challenger = ModelPredictions("river", 3, _objects(["a", "b", "a", "b", "a", "b"]), None)
    third = ModelPredictions("sk", 0, _objects([1, 2, 3, 1, 2, 3]), np.linspace(0, 1, n))
    preds = [champion, challenger, third]
    records = prediction_records(batch, preds, "user")
    expected = _expected(batch, preds, "user")
    assert [key for key, _ in records] == [key for key, _ in expected]
    for (_, value), (_, event) in zip(records, expected, strict=True):
        parsed = orjson.loads(value)
        assert parsed == event
        # True stays a boolean and 1 an integer, though they are equal as dict keys
        assert [type(v) for v in parsed.values()] == [type(v) for v in event.values()]
        assert value == orjson.dumps(event)


@pytest.mark.parametrize("n", [0, 1, 300])
def test_regression_records(n: int) -> None:
    rng = np.random.default_rng(n)
    meta = Messages.from_values([b"{}"] * n, topic="t", partition=3)
    values = rng.normal(size=n) * 10.0 ** rng.integers(-12, 12, size=n)
    if n:
        values[0] = np.nan
    preds = [ModelPredictions("lin", 1, values, None)]
    batch = Batch({}, meta)
    records = prediction_records(batch, preds)
    expected = [e for _, e in _expected(batch, preds, None)]
    assert [orjson.loads(value) for _, value in records] == expected


def test_records_of_several_topics_and_partitions_with_percent_signs() -> None:
    """What is the same in every row goes into the record's format once; a ``%`` in a name
    or a topic, and rows from several topics and partitions, come out as the plain build."""
    meta = Messages.concat(
        [
            Messages.from_values([b"{}"] * 3, topic="100%s", partition=0, first_offset=7),
            Messages.from_values([b"{}"] * 2, topic="%d%%", partition=5, keys=[b"%b", None]),
            Messages.from_values([b"{}"] * 2, topic="100%s", partition=2, first_offset=9),
        ]
    )
    batch = Batch({}, meta)
    preds = [
        ModelPredictions(
            "50% off", 1, _objects(["%s", "a", "b", "%", "c", "d", "e"]), np.linspace(0, 1, 7)
        ),
        ModelPredictions("%(x)s", 2, _objects([1, 2, 3, 4, 5, 6, 7]), None),
    ]
    records = prediction_records(batch, preds)
    expected = _expected(batch, preds, None)
    assert [key for key, _ in records] == [key for key, _ in expected]
    assert [value for _, value in records] == [orjson.dumps(event) for _, event in expected]
    one_partition = Batch({}, Messages.from_values([b"{}"] * 2, topic="%", partition=4))
    single = [ModelPredictions("m%", 0, _objects(["%%", "x"]), np.array([0.5, 0.25]))]
    assert [value for _, value in prediction_records(one_partition, single)] == [
        orjson.dumps(event) for _, event in _expected(one_partition, single, None)
    ]


@pytest.mark.parametrize(
    "labels",
    [[True, 1, 1.0, False, 0], [1, 1.0, 2], ["a", None, "b", "a"], [float("nan"), 1.0, None]],
)
def test_equal_values_of_other_types_keep_their_own_text(labels: list[Any]) -> None:
    from streamfit.runtime.records import _texts_of_values

    assert _texts_of_values(_objects(labels)) == [
        b"null" if v is None or v != v else orjson.dumps(v) for v in labels
    ]


@pytest.mark.parametrize(
    "odd",
    [
        b"plain",
        None,
        b'say "hi"',
        b"back\\slash",
        b"tab\there",
        b"\x00",
        b"caf\xc3\xa9",
        b"\xff",
        b"\x1f",
    ],
)
def test_keys_are_written_as_json_strings_with_or_without_escapes(odd: bytes | None) -> None:
    """A batch whose keys need no escaping puts them into the record's format as they are; in
    a batch with a missing key or one that needs escaping, only that one goes through the JSON
    encoder. Either way the record is the plain build's."""
    printable = bytes(range(0x20, 0x80)).replace(b'"', b"").replace(b"\\", b"")
    keys = [b"1763797200123456", b"", printable, b"a%sb%%", b"\x7f/<>&", odd]
    meta = Messages.from_values([b"{}"] * len(keys), topic="t", keys=keys)
    batch = Batch({}, meta)
    preds = [ModelPredictions("m", 1, _objects(["y"] * len(keys)), np.full(len(keys), 0.5))]
    records = prediction_records(batch, preds)
    expected = _expected(batch, preds, None)
    assert [key for key, _ in records] == keys
    assert [value for _, value in records] == [orjson.dumps(event) for _, event in expected]
