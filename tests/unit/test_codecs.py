"""streamfit.codecs.decode_json: columns by kind, dead letters by reason, order kept.

The decoder has a fast path (one typed pyarrow conversion of all rows) and a per-field path
(fields that mix types); ``test_matches_reference_on_random_events`` checks both against a
plain per-value reading of the rules on random events.
"""

from __future__ import annotations

import gc
import json
import math
import random
from typing import Any

import numpy as np
import orjson
import pytest

from streamfit.batch import Messages
from streamfit.codecs import DecodeResult, decode_json
from streamfit.limits import MAX_BATCH_FIELDS, MAX_DEPTH, MAX_EVENT_BYTES, MAX_NAME_CHARS


def decode(
    *payloads: bytes | None, target: str | None = None, task: str = "classification"
) -> DecodeResult:
    return decode_json(Messages.from_values(list(payloads)), target, task)  # type: ignore[arg-type]


def column(result: DecodeResult, name: str) -> list[Any]:
    return list(result.batch.columns[name].tolist())


def same(a: list[Any], b: list[Any]) -> bool:
    """Equal lists where NaN equals NaN."""
    return len(a) == len(b) and all(
        (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
        or (x == y and type(x) is type(y))
        for x, y in zip(a, b, strict=True)
    )


# --- good rows --------------------------------------------------------------------------------


def test_columns_by_kind() -> None:
    r = decode(
        b'{"n": 1, "f": 2.5, "s": "a", "b": true, "l": [1, "x"], "o": {"k": null}}',
        b'{"n": null, "f": -1e3, "s": null, "b": false, "l": null, "o": {}}',
        b'{"n": 3, "f": 0.5, "s": "c", "b": null, "l": [], "o": {"a": [1]}}',
    )
    cols = r.batch.columns
    assert not r.dead_letters
    assert cols["n"].dtype == np.float64 and same(column(r, "n"), [1.0, math.nan, 3.0])
    assert same(column(r, "f"), [2.5, -1000.0, 0.5])
    assert cols["s"].dtype == object and column(r, "s") == ["a", None, "c"]
    assert cols["b"].dtype == np.float64 and same(column(r, "b"), [1.0, 0.0, math.nan])
    assert r.batch.booleans == frozenset({"b"})
    assert column(r, "l") == ['[1,"x"]', None, "[]"]
    assert column(r, "o") == ['{"k":null}', "{}", '{"a":[1]}']
    assert r.batch.field_names == ["n", "f", "s", "b", "l", "o"]


def test_absent_fields_are_missing_and_fields_keep_first_seen_order() -> None:
    r = decode(b'{"a": 1}', b'{"b": "x", "a": 2}', b'{"c": true}', b"{}")
    assert r.batch.field_names == ["a", "b", "c"]
    assert same(column(r, "a"), [1.0, 2.0, math.nan, math.nan])
    assert column(r, "b") == [None, "x", None, None]
    assert same(column(r, "c"), [math.nan, math.nan, 1.0, math.nan])
    assert r.batch.booleans == frozenset({"c"})


def test_null_everywhere_is_an_object_column_of_none() -> None:
    r = decode(b'{"a": null, "x": 1}', b'{"x": 2}')
    assert r.batch.columns["a"].dtype == object and column(r, "a") == [None, None]


def test_numbers_mixed_with_strings_are_kept_as_they_are() -> None:
    r = decode(b'{"z": 10001}', b'{"z": "SW1A"}', b'{"z": 2.5}', b'{"z": true}', b'{"z": null}')
    assert [(type(v), v) for v in column(r, "z")] == [
        (int, 10001),
        (str, "SW1A"),
        (float, 2.5),
        (bool, True),
        (type(None), None),
    ]
    assert "z" not in r.batch.booleans


def test_numbers_mixed_with_booleans_are_numbers_not_booleans() -> None:
    r = decode(b'{"v": 2}', b'{"v": true}', b'{"v": false}', b'{"v": 0.5}')
    assert same(column(r, "v"), [2.0, 1.0, 0.0, 0.5])
    assert r.batch.booleans == frozenset()
    r = decode(b'{"v": true}', b'{"v": 3}')  # the first value is a boolean
    assert same(column(r, "v"), [1.0, 3.0]) and r.batch.booleans == frozenset()


def test_nested_values_mixed_with_strings() -> None:
    r = decode(b'{"t": "a"}', b'{"t": ["a", "b"]}', b'{"t": 7}')
    assert column(r, "t") == ["a", '["a","b"]', 7]


def test_integers_too_large_for_a_double_still_decode() -> None:
    r = decode(b'{"big": 18446744073709551615}', b'{"big": 1}')
    assert column(r, "big") == [float(18446744073709551615), 1.0]


def test_metadata_follows_the_good_rows() -> None:
    msgs = Messages.from_values(
        [b'{"a": 1}', b"bad", b'{"a": 2}'],
        topic="t",
        partition=3,
        first_offset=10,
        keys=[b"k0", b"k1", b"k2"],
        timestamp_ms=99,
    )
    r = decode_json(msgs, None, "classification")
    meta = r.batch.meta
    assert meta.offsets.tolist() == [10, 12] and meta.keys == [b"k0", b"k2"]
    assert meta.values == [b'{"a": 1}', b'{"a": 2}']
    assert meta.partitions.tolist() == [3, 3] and meta.topics.tolist() == ["t", "t"]
    assert meta.timestamps.tolist() == [99, 99]
    (dead,) = r.dead_letters
    assert (dead.topic, dead.partition, dead.offset, dead.key, dead.value, dead.timestamp_ms) == (
        "t",
        3,
        11,
        b"k1",
        b"bad",
        99,
    )


def test_all_good_rows_keep_the_messages_as_they_are() -> None:
    msgs = Messages.from_values([b'{"a": 1}', b'{"a": 2}'])
    assert decode_json(msgs, None, "regression").batch.meta is msgs


def test_empty_input() -> None:
    r = decode(target="y")
    assert len(r.batch) == 0 and r.dead_letters == []
    assert r.batch.field_names == ["y"] and r.batch.columns["y"].dtype == object


# --- dead letters -----------------------------------------------------------------------------

BAD_ROWS: list[tuple[bytes | None, str]] = [
    (None, "no payload (null value)"),
    (b"", "empty payload"),
    (b"   ", "not JSON: input data is empty at character 0"),
    (b"{oops}", "not JSON: unexpected character, expected a string key at character 1"),
    (b'{"a": 1} x', "not JSON: unexpected content after document at character 9"),
    (b'{"a": NaN}', "not JSON: unexpected character, expected a JSON value at character 6"),
    (b'{"a": "\xff"}', "not JSON: str is not valid UTF-8: surrogates not allowed at character 0"),
    (b"[1, 2]", "not a JSON object: got an array"),
    (b'"text"', "not a JSON object: got a string"),
    (b"42", "not a JSON object: got a number"),
    (b"true", "not a JSON object: got a boolean"),
    (b"null", "not a JSON object: got null"),
]


@pytest.mark.parametrize(("payload", "reason"), BAD_ROWS)
def test_each_kind_of_bad_row_is_a_dead_letter_with_its_reason(
    payload: bytes | None, reason: str
) -> None:
    r = decode(b'{"a": 1}', payload, b'{"a": 2}')
    assert same(column(r, "a"), [1.0, 2.0])
    assert [(d.offset, d.value, d.reason) for d in r.dead_letters] == [(1, payload, reason)]


def test_dead_letters_and_good_rows_keep_their_order() -> None:
    payloads: list[bytes | None] = []
    expected_good, expected_dead = [], []
    for i in range(60):
        if i % 3 == 0:
            payloads.append(BAD_ROWS[i // 3 % len(BAD_ROWS)][0])
            expected_dead.append(i)
        else:
            payloads.append(orjson.dumps({"i": i}))
            expected_good.append(i)
    r = decode(*payloads)
    assert [d.offset for d in r.dead_letters] == expected_dead
    assert r.batch.meta.offsets.tolist() == expected_good
    assert column(r, "i") == [float(i) for i in expected_good]


def test_every_row_bad() -> None:
    r = decode(b"x", None, b"[]", target="y", task="regression")
    assert len(r.batch) == 0 and len(r.dead_letters) == 3
    assert r.batch.columns["y"].dtype == np.float64


# --- target -----------------------------------------------------------------------------------


def test_classification_labels() -> None:
    r = decode(
        b'{"y": "yes"}',
        b'{"y": 1}',
        b'{"y": true}',
        b'{"y": 2.0}',
        b'{"y": null}',
        b'{"x": 1}',
        target="y",
    )
    labels = column(r, "y")
    assert labels == ["yes", 1, True, 2, None, None]
    assert [type(v) for v in labels] == [str, int, bool, int, type(None), type(None)]
    assert r.batch.columns["y"].dtype == object
    assert not r.dead_letters


@pytest.mark.parametrize(
    ("payload", "what"),
    [
        (b'{"match": [1]}', "an array"),
        (b'{"match": {"a": 1}}', "an object"),
        (b'{"match": 1.5}', "1.5, not a whole number"),
    ],
)
def test_bad_classification_targets(payload: bytes, what: str) -> None:
    r = decode(b'{"match": 0, "x": 1}', payload, target="match")
    assert column(r, "match") == [0]
    assert [d.reason for d in r.dead_letters] == [
        f"target 'match' is {what}; a classification target is a string, integer or boolean"
    ]
    assert r.dead_letters[0].value == payload


def test_regression_targets() -> None:
    r = decode(
        b'{"p": 1}',
        b'{"p": 2.5}',
        b'{"p": true}',
        b'{"p": "3"}',
        b'{"p": null}',
        b"{}",
        b'{"p": [1]}',
        target="p",
        task="regression",
    )
    assert r.batch.columns["p"].dtype == np.float64
    assert same(column(r, "p"), [1.0, 2.5, math.nan, math.nan])
    assert [(d.offset, d.reason) for d in r.dead_letters] == [
        (2, "target 'p' is a boolean; a regression target must be a number"),
        (3, "target 'p' is a string; a regression target must be a number"),
        (6, "target 'p' is an array; a regression target must be a number"),
    ]


def test_target_column_is_there_even_when_no_row_has_it() -> None:
    r = decode(b'{"x": 1}', target="y")
    assert column(r, "y") == [None]
    r = decode(b'{"x": 1}', target="y", task="regression")
    assert same(column(r, "y"), [math.nan])


def test_unknown_task_is_an_error() -> None:
    with pytest.raises(ValueError, match="task"):
        decode(b"{}", task="ranking")


def test_garbage_collector_is_left_as_it_was() -> None:
    assert gc.isenabled()
    decode(b'{"a": 1}', b"x")
    assert gc.isenabled()
    gc.disable()
    try:
        decode(b'{"a": 1}')
        assert not gc.isenabled()
    finally:
        gc.enable()


# --- against a plain reading of the rules -----------------------------------------------------


def reference_column(values: list[Any]) -> tuple[list[Any], bool]:
    """The documented column rules, applied one value at a time."""
    kinds = {type(v) for v in values} - {type(None)}
    if kinds and kinds <= {int, float}:
        return [math.nan if v is None else float(v) for v in values], False
    if kinds == {bool}:
        return [math.nan if v is None else float(v) for v in values], True
    if kinds and kinds <= {bool, int, float}:
        return [math.nan if v is None else float(v) for v in values], False
    if kinds <= {str}:
        return values, False

    def cell(v: Any) -> Any:
        return orjson.dumps(v).decode() if isinstance(v, dict | list) else v

    return [cell(v) for v in values], False


def random_value(rng: random.Random, kind: str) -> Any:
    if rng.random() < 0.1:
        return None
    if kind == "mixed":
        kind = rng.choice(["int", "float", "str", "bool", "list"])
    if kind == "int":
        return rng.randint(-5, 5)
    if kind == "float":
        return rng.uniform(-1e6, 1e6)
    if kind == "str":
        return rng.choice(["a", "b", "héllo", "", "1"])
    if kind == "bool":
        return rng.random() < 0.5
    return [rng.randint(0, 3), {"k": "v"}]


@pytest.mark.parametrize("seed", range(6))
def test_matches_reference_on_random_events(seed: int) -> None:
    rng = random.Random(seed)
    kinds = ["int", "float", "str", "bool", "list", "mixed"]
    fields = {f"f{i}": rng.choice(kinds) for i in range(8)}
    rows = []
    for _ in range(rng.choice([1, 5, 300])):
        row = {n: random_value(rng, k) for n, k in fields.items() if rng.random() < 0.9}
        if seed % 2:
            row = dict(rng.sample(list(row.items()), len(row)))  # field order varies by row
        rows.append(row)
    result = decode(*[orjson.dumps(r) for r in rows])
    names = list(dict.fromkeys(n for r in rows for n in r))
    assert result.batch.field_names == names
    for name in names:
        expected, is_boolean = reference_column([r.get(name) for r in rows])
        assert same(column(result, name), expected), name
        assert (name in result.batch.booleans) == is_boolean, name


# -- the typed fast path gives exactly what the exact path gives --------------------------------


def _same_result(a: Any, b: Any) -> None:
    assert list(a.batch.columns) == list(b.batch.columns)
    assert a.batch.booleans == b.batch.booleans
    assert a.batch.meta.offsets.tolist() == b.batch.meta.offsets.tolist()
    assert [(d.offset, d.reason) for d in a.dead_letters] == [
        (d.offset, d.reason) for d in b.dead_letters
    ]
    for name, col in a.batch.columns.items():
        other = b.batch.columns[name]
        assert col.dtype == other.dtype, name
        if col.dtype == object:
            assert [(type(v), v) for v in col.tolist()] == [(type(v), v) for v in other.tolist()], (
                name
            )
        else:
            assert np.array_equal(col, other, equal_nan=True), name
            assert np.array_equal(np.signbit(col), np.signbit(other)), name


def _flat_rows(rng: np.random.Generator, n: int, spaced: bool) -> list[bytes]:
    rows = []
    for i in range(n):
        row: dict[str, Any] = {
            "a": float(rng.normal()) if rng.random() > 0.1 else None,
            "b": int(rng.integers(-5, 5)),
            "big": int(rng.integers(0, 2**62)) * 3,
            "flag": bool(rng.random() > 0.5) if rng.random() > 0.1 else None,
            "city": str(rng.choice(["Paris", "Oslo", "Zürich", "a b c"])) if i % 7 else None,
            "e": float(rng.choice([1e300, -2.5e-300, 0.0, -0.0, 1e16])),
            "nothing": None,
            "y": int(rng.integers(0, 2)) if i % 5 else None,
        }
        text = orjson.dumps(row)
        if spaced:
            text = text.replace(b'":', b'": ').replace(b',"', b', "')
        rows.append(text)
    return rows


@pytest.mark.parametrize("spaced", [False, True])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_typed_fast_path_equals_the_exact_path(
    spaced: bool, task: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("streamfit.codecs.json._TYPED_MIN_ROWS", 64)
    from streamfit.codecs.json import _decode, _decode_typed

    rng = np.random.default_rng(7)
    values = _flat_rows(rng, 300, spaced)
    msgs = Messages.from_values(values)
    fast = _decode_typed(msgs, "y", task)
    assert fast is not None  # this layout takes the fast path
    _same_result(fast, _decode(msgs, "y", task))
    _same_result(decode_json(msgs, None, task), _decode(msgs, None, task))


@pytest.mark.parametrize("late", ["flag", "number", "text", "mixed", "nested", "huge"])
def test_typed_fast_path_on_fields_null_in_the_first_rows(
    late: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A field's kind comes from its first value among the first rows; after those, from
    what the exact path makes of the whole column."""
    monkeypatch.setattr("streamfit.codecs.json._TYPED_MIN_ROWS", 16)
    from streamfit.codecs.json import _decode, _decode_typed

    value = {
        "flag": b"true",
        "number": b"2.5",
        "text": b'"x"',
        "mixed": b'"x"',
        "nested": b"[1]",
        "huge": b"123456789012345678901234567890",
    }[late]
    row = b'{"x":%d,"early":null,"late":null,"never":null,"y":%d}'
    rows = [row % (i, i % 2) for i in range(200)]
    rows[5] = b'{"x":5,"early":7,"late":null,"never":null,"y":1}'
    rows[150] = b'{"x":150,"early":null,"late":%s,"never":null,"y":0}' % value
    if late == "mixed":
        rows[160] = b'{"x":160,"late":3}'
    msgs = Messages.from_values(rows)
    typed = _decode_typed(msgs, "y", "classification")
    exact = _decode(msgs, "y", "classification")
    if typed is not None:
        _same_result(typed, exact)
    assert (typed is not None) == (late in ("number", "text", "mixed"))
    _same_result(decode_json(msgs, "y", "classification"), exact)


def _rows_with_optional_fields(rng: np.random.Generator, n: int) -> list[bytes]:
    """Events that leave out missing fields (as file replay writes them), keys shuffled."""
    absent = object()
    rows = []
    for i in range(n):
        row: dict[str, Any] = {
            "id": i,
            "x": float(rng.normal()),
            "rare": float(rng.normal()) if rng.random() < 0.02 else absent,
            "flag": bool(rng.random() > 0.5) if rng.random() < 0.3 else absent,
            "city": rng.choice(["Oslo", "Zürich", None]) if rng.random() < 0.4 else absent,
            "null_or_number": rng.choice([None, 1.5]) if rng.random() < 0.1 else absent,
            "y": int(rng.integers(0, 2)) if rng.random() < 0.8 else absent,
        }
        event = {k: v for k, v in row.items() if v is not absent}
        if i == 0:
            event = {"id": 0, "x": 0.5, "y": 1}  # the first event has none of them
        keys = list(event)
        if i % 3 == 0:
            rng.shuffle(keys)  # the exact path orders late fields as they first appear
        rows.append(orjson.dumps({k: event[k] for k in keys}))
    return rows


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_typed_fast_path_on_fields_the_first_event_lacks(
    task: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Missing fields left out of the events: the layout grows as they turn up, and a batch
    without one of them has no column for it, as on the exact path."""
    monkeypatch.setattr("streamfit.codecs.json._TYPED_MIN_ROWS", 16)
    monkeypatch.setattr("streamfit.codecs.json._layouts", {})
    from streamfit.codecs.json import _decode, _decode_typed

    rng = np.random.default_rng(11)
    for size in (400, 40, 25, 400):  # the later batches reuse the grown layout
        values = _rows_with_optional_fields(rng, size)
        msgs = Messages.from_values(values)
        typed = _decode_typed(msgs, "y", task)
        assert typed is not None
        _same_result(typed, _decode(msgs, "y", task))
        _same_result(decode_json(msgs, None, task), _decode(msgs, None, task))
        if size == 400:
            assert {"rare", "flag", "city", "null_or_number"} <= set(typed.batch.columns)


@pytest.mark.parametrize("late", [b"true", b"2.5", b'"x"'])
def test_a_late_field_null_throughout_a_later_batch(
    late: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its kind came from an earlier batch; in this one it is a field of nulls."""
    monkeypatch.setattr("streamfit.codecs.json._TYPED_MIN_ROWS", 4)
    monkeypatch.setattr("streamfit.codecs.json._layouts", {})
    from streamfit.codecs.json import _decode, _decode_typed

    for value in (late, b"null"):
        rows = [b'{"x":1}', b'{"x":2}', b'{"x":3,"late":%s}' % value, b'{"x":4}']
        msgs = Messages.from_values(rows)
        typed = _decode_typed(msgs, None, "classification")
        assert typed is not None
        _same_result(typed, _decode(msgs, None, "classification"))


def test_typed_fast_path_gives_up_on_a_field_of_two_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streamfit.codecs.json._TYPED_MIN_ROWS", 16)
    from streamfit.codecs.json import _decode, _decode_typed

    values = [b'{"x":%d}' % i for i in range(40)]
    values[10] = b'{"x":10,"late":1}'
    values[20] = b'{"x":20,"late":"one"}'
    msgs = Messages.from_values(values)
    assert _decode_typed(msgs, None, "classification") is None
    _same_result(decode_json(msgs, None, "classification"), _decode(msgs, None, "classification"))


_ODD_ROWS = [
    b"oops",
    b"null",
    b"",
    b"[1, 2]",
    b'{"a": 1}',
    b'{"b":1,"a":2.5,"flag":true,"city":"x","y":1}',
    b'{"a":01,"b":1,"flag":true,"city":"x","y":1}',
    b'{"a":+1,"b":1,"flag":true,"city":"x","y":1}',
    b'{"a":.5,"b":1,"flag":true,"city":"x","y":1}',
    b'{"a":5.,"b":1,"flag":true,"city":"x","y":1}',
    b'{"a":1.e5,"b":1,"flag":true,"city":"x","y":1}',
    b'{"a":NaN,"b":1,"flag":true,"city":"x","y":1}',
    b'{"a":Infinity,"b":1,"flag":true,"city":"x","y":1}',
    b'{"a":1e400,"b":1,"flag":true,"city":"x","y":1}',
    b'{"a":-0,"b":-0.0,"flag":true,"city":"x","y":1}',
    b'{"a":1,"b":1,"flag":true,"city":"x, y","y":1}',
    b'{"a":1,"b":1,"flag":true,"city":"x\\"y","y":1}',
    b'{"a":1,"b":1,"flag":true,"city":"x\\u00e9","y":1}',
    b'{"a":1,"b":1,"flag":true,"city":"\xff","y":1}',
    b'{"a":1,"b":1,"flag":true,"city":"x\ty","y":1}',
    b'{"a":1,"b":1,"flag":1,"city":"x","y":1}',
    b'{"a":"1","b":1,"flag":true,"city":"x","y":1}',
    b'{"a":[1],"b":1,"flag":true,"city":"x","y":1}',
    b'{"a":{},"b":1,"flag":true,"city":"x","y":1}',
    b'{"a":1,"b":1,"flag":true,"city":2,"y":1}',
    b'{"a":1,"b":1,"flag":true,"city":"x","y":1.0}',
    b'{"a":1,"b":1,"flag":true,"city":"x","y":1.5}',
    b'{"a":1,"b":1,"flag":true,"city":"x","y":true}',
    b'{"a":1,"b":1,"flag":true,"city":"x","y":"yes"}',
    b'{"a":1,"b":1,"flag":true,"city":"x","y":[1]}',
    b'{"a":1,"b":1,"flag":true,"city":"x","y":18446744073709551615}',
    b'{"a":1,"b":1,"flag":true,"city":"x","y":1,"a":2}',
    b'{"a":1,"b":1,"flag":true,"city":"x","y":1} {"a":1}',
    b'{"a":1,"b":1,"flag":true,"city":"x","y":1}\r',
    b'{"a":1,"b":1,"flag":true,"city":"x","y":1}\n',
    b'{"a":1,"b":1,"flag":true,"city":"x","y":1 }',
    b'{"a":1 ,"b":1,"flag":true,"city":"x","y":1}',
    b'\xef\xbb\xbf{"a":1,"b":1,"flag":true,"city":"x","y":1}',
    b'{"a":1,"b":1,"flag":tru,"city":"x","y":1}',
    b'{"a":1e5,"b":-1E-5,"flag":false,"city":"","y":0}',
    b'{"a":1,"b":1,"flag":null,"city":null,"y":null}',
    b'{"a":1,"b":1,"flag":true,"city":"x"}',
    b'{"y":1}',
    b'  {"city":"x", "a":1}  ',
    b'{"a":1,"b":1,"flag":true,"city":"x","y":9223372036854775808}',
    b'{"a":1,"b":1,"flag":true,"city":"x","y":-9223372036854775808}',
    b'{"a":1,"b":1,"flag":true,"city":"\\ud83d\\ude00","y":1}',
    b'{"a":1,"b":1,"flag":true,"city":"\\ud83d","y":1}',
    b'{"a":1,"b":1,"flag":true,"city":"x","y":1,"new":2}',
    b'{"a":123456789012345678901234567890,"b":1,"flag":true,"city":"x","y":1}',
]


@pytest.mark.parametrize("odd", range(len(_ODD_ROWS)))
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_typed_fast_path_on_odd_rows(odd: int, task: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamfit.codecs.json import _decode

    base = b'{"a":%d,"b":%d.5,"flag":%s,"city":"c%d","y":%d}'
    values = [base % (i, i, b"true" if i % 2 else b"false", i % 3, i % 2) for i in range(100)]
    monkeypatch.setattr("streamfit.codecs.json._TYPED_MIN_ROWS", 64)
    for at in (0, 50, 99):
        rows = list(values)
        rows[at] = _ODD_ROWS[odd]
        msgs = Messages.from_values(rows)
        _same_result(decode_json(msgs, "y", task), _decode(msgs, "y", task))
        _same_result(decode_json(msgs, None, task), _decode(msgs, None, task))


def _random_value(rnd: random.Random, kind: str) -> Any:
    if rnd.random() < 0.1:
        return None
    if kind == "number":
        return rnd.choice([rnd.randint(-5, 5), rnd.random() * 100, -0.0, 2**63, 2**64 + 7, 1e300])
    if kind == "flag":
        return rnd.random() < 0.5
    if kind == "text":
        return rnd.choice(["x", "a,b", 'q"uote', "tab\t", "é", "", "\u2028", "null"])
    return rnd.choice([[1, 2], {"k": 1}, []])


def _random_stream(rnd: random.Random) -> tuple[list[str], list[list[bytes]]]:
    """A few batches of events of one layout: fields left out, keys shuffled, spacing and
    escapes varied, now and then a value of another kind or a broken event."""
    names = rnd.sample(["a", "b", "c", "y", "x y", "é", ""], rnd.randint(1, 7))
    kinds = {name: rnd.choice(["number", "flag", "text", "nested"]) for name in names}
    absent = rnd.choice([0.0, 0.05, 0.3, 0.8])
    odd = rnd.choice([0.0, 0.0, 0.002, 0.02])
    batches = []
    for _ in range(rnd.randint(1, 3)):
        batch = []
        for _ in range(rnd.randint(4, 80)):
            keys = [k for k in names if rnd.random() >= absent]
            if rnd.random() < 0.3:
                rnd.shuffle(keys)
            event = {
                k: _random_value(rnd, rnd.choice(list(_KINDS)) if rnd.random() < odd else kinds[k])
                for k in keys
            }
            compact = rnd.random() < 0.7
            text = json.dumps(
                event,
                separators=(",", ":") if compact else (", ", ": "),
                ensure_ascii=rnd.random() < 0.3,
            ).encode()
            if rnd.random() < odd / 4:
                text = rnd.choice([b"oops", b"", b"[1]", text[:-1], b'{"a":1e400}'])
            batch.append(text)
        batches.append(batch)
    return names, batches


_KINDS = ("number", "flag", "text", "nested")


def test_typed_fast_path_equals_the_exact_path_on_random_streams(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("streamfit.codecs.json._TYPED_MIN_ROWS", 4)
    monkeypatch.setattr("streamfit.codecs.json._layouts", {})
    from streamfit.codecs.json import _decode, _decode_typed

    rnd = random.Random(20261122)
    typed_batches = 0
    for _ in range(150):
        _, batches = _random_stream(rnd)
        for values in batches:
            msgs = Messages.from_values(values)
            for target, task in (
                (None, "classification"),
                ("y", "classification"),
                ("y", "regression"),
            ):
                exact = _decode(msgs, target, task)  # type: ignore[arg-type]
                typed = _decode_typed(msgs, target, task)  # type: ignore[arg-type]
                if typed is not None:
                    typed_batches += 1
                    _same_result(typed, exact)
                _same_result(decode_json(msgs, target, task), exact)  # type: ignore[arg-type]
    assert typed_batches > 100  # the fast path was put to the test, not skipped


# -- hostile input: limits, never an exception (streamfit.limits) -------------------------------


def nested(depth: int) -> bytes:
    """An event nested ``depth`` levels deep, itself the first: ``{"x0": 1, "deep": {...}}``."""
    return b'{"x0":1,"deep":' + b'{"a":' * (depth - 1) + b"1" + b"}" * (depth - 1) + b"}"


@pytest.mark.parametrize("rows", [1, 100])
@pytest.mark.parametrize("depth", [63, 64, 65, 254, 255, 256, 300, 1023, 1024, 5000])
def test_nesting_past_the_limit_is_a_dead_letter(depth: int, rows: int) -> None:
    good = [orjson.dumps({"x0": i, "deep": {"a": i}}) for i in range(rows - 1)]
    r = decode(*good, nested(depth))
    if depth <= MAX_DEPTH:
        assert len(r.batch) == rows and r.dead_letters == []
        assert column(r, "deep")[-1].count("{") == depth - 1
    else:
        assert len(r.batch) == rows - 1
        assert [(d.offset, d.reason) for d in r.dead_letters] == [
            (rows - 1, f"nested deeper than {MAX_DEPTH} levels")
        ]


def test_nesting_counts_arrays_and_objects_alike() -> None:
    deep_array = b'{"a":' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"
    too_deep = b'{"a":' + b"[{}," * (MAX_DEPTH - 1) + b"1" + b"]" * (MAX_DEPTH - 1) + b"}"
    wide = orjson.dumps({"a": [{"b": [i]} for i in range(500)]})  # many brackets, 4 levels
    r = decode(deep_array, too_deep, wide)
    assert r.batch.meta.offsets.tolist() == [0, 2]
    assert [d.offset for d in r.dead_letters] == [1]


def test_typed_path_hands_a_nesting_too_deep_for_it_to_the_exact_path() -> None:
    rows = [orjson.dumps({"x": i, "d": {"a": i}}) for i in range(50)]
    rows[20] = b'{"x": 1, "d": ' + b"[" * 1000 + b"]" * 1000 + b"}"  # msgspec: RecursionError
    r = decode(*rows)
    assert [d.offset for d in r.dead_letters] == [20] and len(r.batch) == 49


@pytest.mark.parametrize("name", ['a"b', "a\\b", '"', "\\", "", " ", "é", "a.b", "a b"])
@pytest.mark.parametrize("rows", [2, 10, 100])
def test_any_field_name_without_control_characters_gets_its_column(name: str, rows: int) -> None:
    r = decode_json(
        Messages.from_values([orjson.dumps({name: i, "y": 1}) for i in range(rows)]),
        "y",
        "classification",
    )
    assert column(r, name) == [float(i) for i in range(rows)] and r.batch.partial is None


@pytest.mark.parametrize("name", ["a\x00b", "\x01", "line\nbreak", "x" * (MAX_NAME_CHARS + 1)])
@pytest.mark.parametrize("rows", [2, 100])
def test_field_names_past_the_rules_get_no_column_and_mark_the_row(name: str, rows: int) -> None:
    events = [orjson.dumps({"x": i, name: i, "y": 1}) for i in range(rows - 1)]
    events.append(orjson.dumps({"x": 0, "y": 0}))
    r = decode_json(Messages.from_values(events), "y", "classification")
    assert r.batch.field_names == ["x", "y"] and r.dead_letters == []
    assert r.batch.partial is not None
    assert r.batch.partial.tolist() == [True] * (rows - 1) + [False]


def test_a_name_of_the_longest_length_gets_its_column() -> None:
    name = "n" * MAX_NAME_CHARS
    r = decode(*[orjson.dumps({name: i}) for i in range(20)])
    assert r.batch.field_names == [name]


def test_a_target_with_quotes_in_its_name_decodes() -> None:
    events = [orjson.dumps({"x": i, 'the "y"': i % 2}) for i in range(50)]
    r = decode_json(Messages.from_values(events), 'the "y"', "classification")
    assert column(r, 'the "y"') == [i % 2 for i in range(50)]


def test_thousands_of_distinct_names_get_at_most_the_batch_limit_of_columns() -> None:
    # 1,000 events of 10 names never seen elsewhere (10,000 in all) and two common fields
    events = [
        orjson.dumps({"x": i, **{f"n{i}_{j}": j for j in range(10)}, "y": i % 2})
        for i in range(1000)
    ]
    r = decode_json(Messages.from_values(events), "y", "classification")
    names = r.batch.field_names
    assert len(names) == MAX_BATCH_FIELDS + 1  # the target's column besides
    assert names[0] == "x" and "y" in names  # the field every event has comes first
    kept_events = MAX_BATCH_FIELDS // 10 - 1  # x takes one place: n199_9 does not fit
    assert r.batch.partial is not None
    assert np.flatnonzero(~r.batch.partial).tolist() == list(range(kept_events))
    assert len(r.batch) == 1000 and r.dead_letters == []


def test_a_frequent_field_keeps_its_column_however_many_rare_ones_come_first() -> None:
    junk = [orjson.dumps({f"j{i}_{k}": 1 for k in range(100)}) for i in range(30)]
    good = [orjson.dumps({"a": i, "b": "c"}) for i in range(10)]
    r = decode(*junk, *good)
    assert column(r, "a")[30:] == [float(i) for i in range(10)]
    assert r.batch.partial is not None and not r.batch.partial[30:].any()


@pytest.mark.parametrize("rows", [1, 50])
def test_events_past_the_size_limit_are_dead_letters(rows: int) -> None:
    largest = b'{"s":"' + b"x" * (MAX_EVENT_BYTES - 8) + b'"}'
    events = [orjson.dumps({"s": "a"})] * (rows - 1) + [largest, largest[:-2] + b'x"}']
    r = decode(*events)
    assert len(r.batch) == rows and len(column(r, "s")[-1]) == MAX_EVENT_BYTES - 8
    assert [d.reason for d in r.dead_letters] == [
        f"payload of {MAX_EVENT_BYTES + 1} bytes; at most {MAX_EVENT_BYTES} are accepted"
    ]


@pytest.mark.parametrize("rows", [1, 50])
def test_a_field_given_twice_takes_its_last_value(rows: int) -> None:
    r = decode(*[b'{"a": 1, "b": 2, "a": 3}'] * rows)
    assert column(r, "a") == [3.0] * rows and r.batch.field_names == ["a", "b"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"a": NaN}', "not JSON: unexpected character"),
        (b'{"a": Infinity}', "not JSON: unexpected character"),
        (b'{"a": -Infinity}', "not JSON: no digit after sign"),
        (b'{"a": 1e400}', "not JSON: number is infinity"),
        (b'{"a": ' + b"9" * 400 + b"}", "not JSON: number is infinity"),
        (b'{"a": "\xff"}', "not JSON: str is not valid UTF-8"),
        (b'{"a": "\\ud800"}', "not JSON: no low surrogate"),
        (b'{"\\udfff": 1}', "not JSON"),
        (b'{"a": "x\x00y"}', "not JSON: unexpected control character"),
        (b"\x00\x01\x02", "not JSON"),
        (b'{"a": 1', "not JSON"),
        (b"[]", "not a JSON object: got an array"),
        (b"null", "not a JSON object: got null"),
        (b"12", "not a JSON object: got a number"),
    ],
)
@pytest.mark.parametrize("rows", [1, 50])
def test_hostile_payloads_are_dead_letters_with_their_reason(
    payload: bytes, reason: str, rows: int
) -> None:
    r = decode(*[orjson.dumps({"a": i}) for i in range(rows - 1)], payload)
    assert len(r.batch) == rows - 1
    assert len(r.dead_letters) == 1 and r.dead_letters[0].reason.startswith(reason)


def test_random_bytes_never_raise() -> None:
    rng = random.Random(7)
    for _ in range(300):
        payloads = [rng.randbytes(rng.randint(0, 40)) for _ in range(rng.choice([1, 20]))]
        r = decode(*payloads)
        assert len(r.batch) + len(r.dead_letters) == len(payloads)


def test_huge_integers_decode_as_numbers() -> None:
    r = decode(b'{"a": 18446744073709551616}', b'{"a": -9223372036854775809}', b'{"a": "s"}')
    assert column(r, "a") == [2.0**64, -(2.0**63), "s"]


@pytest.mark.parametrize("rows", [1, 50])
def test_regression_targets_past_the_magnitude_limit_are_dead_letters(rows: int) -> None:
    events = [orjson.dumps({"x": i, "y": i * 1e98}) for i in range(rows - 1)]
    events += [b'{"x": 1, "y": 1e300}', b'{"x": 1, "y": -2e100}']
    r = decode(*events, target="y", task="regression")
    assert column(r, "y") == [i * 1e98 for i in range(rows - 1)]
    assert [d.reason for d in r.dead_letters] == [
        "target 'y' is 1e+300; a regression target is at most 1e+100 in magnitude",
        "target 'y' is -2e+100; a regression target is at most 1e+100 in magnitude",
    ]


@pytest.mark.parametrize("seed", range(3))
def test_many_sparse_fields_follow_the_same_rules(seed: int) -> None:
    rng = random.Random(seed)
    kinds = ["int", "float", "str", "bool", "list", "mixed"]
    rows = []
    for i in range(400):
        row = {"common": i, "mixed": rng.choice([1, "a", None, True])}
        for _ in range(rng.randint(0, 4)):  # names most rows lack
            name = f"f{rng.randint(0, 600)}"
            row[name] = random_value(rng, rng.choice(kinds))
        if i == 7:
            row["deep"] = json.loads("[" * 70 + "]" * 70)
        rows.append(row)
    result = decode(*[orjson.dumps(r) for r in rows])
    assert [d.offset for d in result.dead_letters] == [7]
    kept = rows[:7] + rows[8:]
    names = list(dict.fromkeys(n for r in kept for n in r))
    assert len(names) > 256 and result.batch.field_names == names
    for name in names:
        expected, is_boolean = reference_column([r.get(name) for r in kept])
        assert same(column(result, name), expected), name
        assert (name in result.batch.booleans) == is_boolean, name
