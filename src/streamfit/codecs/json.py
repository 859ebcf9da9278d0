"""JSON events to a columnar ``Batch``, with dead letters for what cannot be used.

Each message value is one JSON object. ``decode_json`` parses them (orjson), sets aside every
row that cannot be used as a ``DeadLetter`` with its reason and original bytes, and turns the
good rows, in their original order, into one column per field:

==========================================  ===============================================
values of the field in this batch           column
==========================================  ===============================================
numbers (int, float) and null               ``float64``, NaN for null or absent
booleans and null                           ``float64`` 0/1, NaN missing; listed in
                                            ``Batch.booleans``
booleans mixed with numbers                 ``float64`` (true = 1, false = 0), not boolean
strings and null                            ``object``: ``str``, ``None`` missing
nested arrays / objects                     ``object``: the value's JSON text
strings mixed with numbers or booleans      ``object`` of strings: ``str(number)`` and
                                            ``"true"``/``"false"`` (so ``1`` becomes ``"1"``)
null (or absent) in every row               ``object``, all ``None`` (its type is unknown)
==========================================  ===============================================

A field absent from a row is missing in that row, exactly as if it were null.

The target field (``target``) is checked against the task, and a row whose target has the
wrong type is a dead letter. For classification a label is a string, an integer or a boolean
(a whole float such as ``1.0`` is read as the integer ``1``); the column is an ``object`` array
with ``None`` for unlabeled rows. For regression the target is a number (not a boolean); the
column is ``float64`` with NaN for unlabeled rows. When ``target`` is given the batch always
has its column, even if no row carries it.

Dead-letter reasons, one per kind of bad row::

    no payload (null value)
    empty payload
    not JSON: unexpected character, expected a JSON value at character 0
    not a JSON object: got an array
    target 'match' is an array; a classification target is a string, integer or boolean
    target 'price' is a boolean; a regression target must be a number

Speed: the payloads are parsed one by one (orjson). Columns are then built in one C++ pass:
each field's type is guessed from its first non-null value, and pyarrow converts all rows to a
struct array of those types, which both builds the columns and proves the guesses (a value of
another type is rejected). Only when a guess fails (a field mixing types in this batch) or for
nested values are the fields read value by value in Python. The cyclic garbage collector is
paused while a batch is decoded: the rows are hundreds of thousands of short-lived containers
and a collection in the middle only costs time.

>>> from streamfit.batch import Messages
>>> msgs = Messages.from_values([b'{"x": 1, "c": "a", "y": "yes"}', b'oops', b'{"x": 2.5}'])
>>> result = decode_json(msgs, target="y", task="classification")
>>> result.batch.columns["x"].tolist(), result.batch.columns["c"].tolist()
([1.0, 2.5], ['a', None])
>>> result.batch.columns["y"].tolist(), result.batch.meta.offsets.tolist()
(['yes', None], [0, 2])
>>> [(d.offset, d.reason) for d in result.dead_letters]
[(1, 'not JSON: unexpected character, expected a JSON value at character 0')]
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from streamfit.batch import Batch, DeadLetter, Messages

__all__ = ["DecodeResult", "decode_json"]

Task = Literal["classification", "regression"]

_NONE = type(None)
_JSON_NAMES: dict[type, str] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    _NONE: "null",
}


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """What ``decode_json`` made of a list of messages.

    ``batch`` holds the good rows in their original order (``batch.meta`` is the messages at
    those rows); ``dead_letters`` the others, in their original order, each with its reason.

    >>> from streamfit.batch import Messages
    >>> r = decode_json(Messages.from_values([b'{"a": true}', None]), target=None,
    ...                 task="classification")
    >>> len(r.batch), sorted(r.batch.booleans), [d.reason for d in r.dead_letters]
    (1, ['a'], ['no payload (null value)'])
    """

    batch: Batch
    dead_letters: list[DeadLetter]


def decode_json(messages: Messages, target: str | None, task: Task) -> DecodeResult:
    """Decode JSON-object payloads into a ``Batch``; unusable rows become dead letters.

    Parameters
    ----------
    messages
        Raw events; each value is expected to be one UTF-8 JSON object.
    target
        The field holding the label, checked against ``task``; ``None`` if there is none.
    task
        ``"classification"`` (labels: string, integer or boolean) or ``"regression"``
        (numbers).

    Examples
    --------
    >>> from streamfit.batch import Messages
    >>> msgs = Messages.from_values([b'{"price": 3, "ok": false}', b'{"price": true}',
    ...                              b'[1]', b'{"ok": true, "tags": ["a"]}'])
    >>> r = decode_json(msgs, target="price", task="regression")
    >>> r.batch.columns["price"].tolist(), r.batch.columns["ok"].tolist()
    ([3.0, nan], [0.0, 1.0])
    >>> r.batch.columns["tags"].tolist()
    [None, '["a"]']
    >>> for d in r.dead_letters:
    ...     print(d.offset, d.reason)
    1 target 'price' is a boolean; a regression target must be a number
    2 not a JSON object: got an array
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"task is 'classification' or 'regression', not {task!r}")
    with _gc_paused():
        fast = _decode_flat(messages, target, task)
        return fast if fast is not None else _decode(messages, target, task)


def _decode(messages: Messages, target: str | None, task: Task) -> DecodeResult:
    values = messages.values
    bad: dict[int, str] = {}
    rows, good = _parse(values, bad)

    labels: npt.NDArray[Any] | None = None
    if target is not None:
        labels, rows, good = _target_column(rows, good, target, task, bad)

    all_good = len(good) == len(values)
    meta = messages if all_good else messages.take(np.asarray(good, dtype=np.intp))
    columns, booleans = _columns(rows, skip=target)
    if target is not None and labels is not None:
        columns[target] = labels
    dead = [DeadLetter.from_row(messages, row, bad[row]) for row in sorted(bad)]
    return DecodeResult(Batch(columns, meta, frozenset(booleans)), dead)


# --- the flat fast path ----------------------------------------------------------------------

_FLAT_MIN_ROWS = 4096  # below this the exact path is as fast (measured)
_QUOTE, _MINUS, _ZERO, _DOT, _T, _F = (ord(c) for c in '"-0.tf')
_NULL = pa.scalar(None, pa.binary())


def _decode_flat(messages: Messages, target: str | None, task: Task) -> DecodeResult | None:
    """The batch read as CSV, when every payload is a flat JSON object laid out like the first.

    Events from one producer usually share one layout: the same keys in the same order, the
    same spacing, scalar values. Then splitting each payload at its commas gives one column
    per key, each cell the key's fixed prefix (``{"x0":``, ``"x1":``, ...) and the value's
    JSON text, and Arrow's CSV reader splits a whole batch that way in one C++ pass. Every
    cell is then checked: its prefix, the JSON grammar of its value (numbers: the exact
    grammar; strings: no escapes, no control characters, valid UTF-8; ``true``, ``false``,
    ``null``), and one kind of value per column. Anything else (another layout, a comma or an
    escape in a string, a nested value, a bad row) returns ``None``: the exact path then
    decodes the batch, so the result, dead letters included, is the same either way.
    """
    values = messages.values
    n = len(values)
    if n < _FLAT_MIN_ROWS:
        return None
    try:
        joined = b"\n".join(values)  # type: ignore[arg-type]
        first = orjson.loads(values[0])  # type: ignore[arg-type]
    except (TypeError, orjson.JSONDecodeError):
        return None
    if type(first) is not dict or not first or joined.count(b"\n") != n - 1 or b"\r" in joined:
        return None
    keys = list(first)
    names = [str(i) for i in range(len(keys))]
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(joined),
            read_options=pa_csv.ReadOptions(
                column_names=names, use_threads=False, block_size=len(joined) + 1
            ),
            parse_options=_CSV_PARSE,
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.binary()),
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.num_rows != n:
        return None
    columns: dict[str, npt.NDArray[Any]] = {}
    booleans: list[str] = []
    labels: npt.NDArray[Any] | None = None
    numeric: dict[str, Any] = {}  # number columns, validated and converted together
    last = len(keys) - 1
    for j, key in enumerate(keys):
        cells = table.column(j).combine_chunks()
        body = _strip_prefix(cells, key, first=j == 0, last=j == last)
        if body is None:
            return None
        if key == target:
            labels = _flat_target(body, task)
            if labels is None:
                return None
            continue
        found = _flat_column(body, numbers_later=True)
        if found is None:
            return None
        if found is _NUMBERS_LATER:
            numeric[key] = body
            columns[key] = np.empty(0)  # a place in the field order; filled below
            continue
        columns[key], is_boolean = found
        if is_boolean:
            booleans.append(key)
    if numeric:
        together = _flat_number_columns(list(numeric.values()))
        if together is None:
            return None
        for key, column in zip(numeric, together, strict=True):
            columns[key] = column
    if target is not None:
        if labels is None:  # no row has it (a row that had would have another layout)
            labels = np.full(n, np.nan) if task == "regression" else np.full(n, None, dtype=object)
        columns[target] = labels
    return DecodeResult(Batch(columns, messages, frozenset(booleans)), [])


_CSV_PARSE = pa_csv.ParseOptions(
    delimiter=",",
    quote_char=False,
    double_quote=False,
    escape_char=False,
    newlines_in_values=False,
    ignore_empty_lines=False,
)


def _strip_prefix(cells: Any, key: str, *, first: bool, last: bool) -> Any | None:
    """The value texts of one column, once every cell is checked to start with the key's
    prefix as the first row writes it (and, in the last column, to end with ``}``)."""
    cell = cells[0].as_py()
    colon = cell.find(b'":')
    if colon < 0:
        return None
    end = colon + 2
    while end < len(cell) and cell[end] in b" \t":
        end += 1
    prefix = cell[:end]
    quoted = prefix[1:] if first else prefix
    if first and not prefix.startswith(b"{"):
        return None
    try:
        if orjson.loads(quoted.strip(b" \t").removesuffix(b":").rstrip(b" \t")) != key:
            return None
    except orjson.JSONDecodeError:
        return None
    if not pc.all(pc.starts_with(cells, prefix)).as_py():
        return None
    if last:
        if not pc.all(pc.ends_with(cells, b"}")).as_py():
            return None
        return pc.binary_slice(cells, len(prefix), -1)
    longest = pc.max(pc.binary_length(cells)).as_py()
    return pc.binary_slice(cells, len(prefix), longest)


def _value_bytes(body: Any) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """The concatenated value texts of a binary array and their offsets (n + 1)."""
    _, offsets, data = body.buffers()
    n = len(body)
    starts = np.frombuffer(offsets, dtype=np.int32, count=n + 1, offset=4 * body.offset)
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return raw, starts.astype(np.int64)


_NUMBERS_LATER: Any = object()


def _flat_column(body: Any, numbers_later: bool = False) -> tuple[npt.NDArray[Any], bool] | None:
    """One feature column from its value texts, as the exact path would make it (or, with
    ``numbers_later``, ``_NUMBERS_LATER`` for a column of numbers and nulls: converting every
    such column of a batch in one pass is cheaper than one by one)."""
    n = len(body)
    raw, offsets = _value_bytes(body)
    starts, ends = offsets[:-1], offsets[1:]
    lengths = ends - starts
    if (lengths <= 0).any():
        return None
    lead = raw[starts]
    is_null = _is_word(raw, starts, lengths, lead, b"null")
    is_text = lead == _QUOTE
    is_flag = ((lead == _T) | (lead == _F)) & ~is_null
    is_number = ~(is_null | is_text | is_flag)
    kinds = int(is_text.any()) + int(is_flag.any()) + int(is_number.any())
    if kinds > 1:
        return None  # a mix of kinds: the exact path has the rules
    if kinds == 0:
        return _object_array([None] * n), False
    if is_number.any():
        if numbers_later:
            return _NUMBERS_LATER  # type: ignore[no-any-return]
        numbers = _flat_numbers(body, raw, starts, ends, is_null)
        return (numbers, False) if numbers is not None else None
    if is_flag.any():
        true = _is_word(raw, starts, lengths, lead, b"true")
        false = _is_word(raw, starts, lengths, lead, b"false")
        if not (true | false | is_null).all():
            return None
        flags = np.where(true, 1.0, np.where(false, 0.0, np.nan))
        return flags, True
    texts = _flat_texts(body, raw, starts, ends, is_text, is_null)
    return (texts, False) if texts is not None else None


def _is_word(
    raw: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    lead: npt.NDArray[np.uint8],
    word: bytes,
) -> npt.NDArray[np.bool_]:
    """Which texts are exactly ``word``."""
    found: npt.NDArray[np.bool_] = (lead == word[0]) & (lengths == len(word))
    if found.any():
        at = starts[found]
        same = np.ones(at.size, dtype=bool)
        for i in range(1, len(word)):
            same &= raw[at + i] == word[i]
        found[found] = same
    return found


def _flat_number_columns(bodies: list[Any]) -> list[npt.NDArray[np.float64]] | None:
    """Several columns of number texts (and nulls), of equal length, converted in one pass."""
    n = len(bodies[0])
    body = pa.concat_arrays(bodies) if len(bodies) > 1 else bodies[0]
    raw, offsets = _value_bytes(body)
    starts, ends = offsets[:-1], offsets[1:]
    is_null = _is_word(raw, starts, ends - starts, raw[starts], b"null")
    numbers = _flat_numbers(body, raw, starts, ends, is_null)
    if numbers is None:
        return None
    return [numbers[j * n : (j + 1) * n] for j in range(len(bodies))]


def _flat_numbers(
    body: Any,
    raw: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    is_null: npt.NDArray[np.bool_],
) -> npt.NDArray[np.float64] | None:
    """float64 (NaN for null) of JSON numbers, ``None`` unless each is valid JSON."""
    has_nulls = bool(is_null.any())
    present = ~is_null
    if not _valid_numbers(raw, starts[present], ends[present], has_nulls):
        return None
    text = body
    if has_nulls:  # the same texts, the nulls marked as such (the cast skips them)
        _, offsets, data = body.buffers()
        validity = pa.py_buffer(np.packbits(present, bitorder="little"))
        text = pa.Array.from_buffers(
            pa.binary(), len(body), [validity, offsets, data], offset=body.offset
        )
    try:
        numbers = _to_float64(pc.cast(text, pa.float64()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if np.isinf(numbers).any():
        return None  # orjson rejects a number too large for a double
    negative_zero = ((ends - starts) == 2) & (raw[starts] == _MINUS)
    if negative_zero.any():  # the integer -0 is 0 (orjson reads it as int 0)
        negative_zero[negative_zero] = raw[starts[negative_zero] + 1] == _ZERO
        numbers[negative_zero] = 0.0
    return numbers


def _valid_numbers(
    raw: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    has_nulls: bool,
) -> bool:
    """Whether every text ``raw[starts[i]:ends[i]]`` is a JSON number.

    Arrow's parser rejects what is not a number at all (``1.2.3``, ``1e``, ``--1``); this
    rejects what it would accept but JSON does not: a leading ``+``, ``.5``, ``5.``,
    ``01``, ``1.e5``, ``-.5`` (``inf`` and ``nan`` come out non-finite and are caught
    after). Only each text's first and last characters and the few non-digits are looked at.
    """
    if starts.size == 0:
        return True
    lo, hi = int(starts.min()), int(ends.max())
    kind = _CHAR_KIND[raw[lo:hi]]
    if (kind == _OTHER).any():
        return False
    lead = kind[starts - lo]
    if not ((lead == _DIGIT) | (lead == _MINUS_KIND)).all():
        return False
    if (kind[ends - 1 - lo] != _DIGIT).any():
        return False  # 5. 1e 1e+
    head = starts + (lead == _MINUS_KIND)  # where the integer part starts
    inside = head < ends
    if not inside.all() or (kind[head - lo] != _DIGIT).any():
        return False  # - -.5
    zero = (raw[head] == _ZERO) & (head + 1 < ends)
    if (kind[head[zero] + 1 - lo] == _DIGIT).any():
        return False  # 01 -01
    kind[starts[lead == _MINUS_KIND] - lo] = _LETTER  # a leading minus is fine: skip it
    special = np.flatnonzero((kind != _DIGIT) & (kind != _LETTER))
    if special.size == 0:
        return True
    at = kind[special]
    before = kind[np.maximum(special - 1, 0)]
    after = kind[np.minimum(special + 1, kind.size - 1)]
    after_digit = after == _DIGIT
    ok_dot = (at == _DOT_KIND) & (before == _DIGIT) & after_digit
    ok_exp = (at == _EXP) & (before == _DIGIT) & (after_digit | (after == _PLUS))
    ok_exp |= (at == _EXP) & (before == _DIGIT) & (after == _MINUS_KIND)
    ok_sign = ((at == _PLUS) | (at == _MINUS_KIND)) & (before == _EXP) & after_digit
    return bool((ok_dot | ok_exp | ok_sign).all())


_DIGIT, _DOT_KIND, _EXP, _PLUS, _MINUS_KIND, _LETTER, _OTHER = range(7)
_CHAR_KIND = np.full(256, _OTHER, dtype=np.uint8)
_CHAR_KIND[list(b"0123456789")] = _DIGIT
_CHAR_KIND[ord(".")] = _DOT_KIND
_CHAR_KIND[list(b"eE")] = _EXP
_CHAR_KIND[ord("+")] = _PLUS
_CHAR_KIND[ord("-")] = _MINUS_KIND
_CHAR_KIND[list(b"nul")] = _LETTER  # of the nulls between the numbers


def _flat_texts(
    body: Any,
    raw: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    is_text: npt.NDArray[np.bool_],
    is_null: npt.NDArray[np.bool_],
) -> npt.NDArray[np.object_] | None:
    """Strings without escapes, ``None`` for null; ``None`` if any string is not that simple."""
    if not (is_text | is_null).all():
        return None
    text_ends = ends[is_text]
    if ((text_ends - starts[is_text]) < 2).any() or (raw[text_ends - 1] != _QUOTE).any():
        return None
    quotes = int(np.count_nonzero(raw == _QUOTE))
    if quotes != 2 * int(np.count_nonzero(is_text)) or (raw < 0x20).any() or (raw == 0x5C).any():
        return None  # an escape, a control character or a quote inside a string
    inner = pc.binary_slice(body, 1, -1)
    if is_null.any():
        inner = pc.if_else(pc.equal(body, b"null"), _NULL, inner)
    try:
        strings = pc.cast(inner, pa.string())  # checks the UTF-8
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return strings.to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


def _flat_target(body: Any, task: Task) -> npt.NDArray[Any] | None:
    """The target column, or ``None`` where only the exact path knows what to do."""
    found = _flat_column(body)
    if found is None:
        return None
    column, is_boolean = found
    all_null = column.dtype == object and not any(v is not None for v in column.tolist())
    if task == "regression":
        if all_null:
            return np.full(len(column), np.nan)
        return None if is_boolean or column.dtype == object else column
    if column.dtype == object:
        return column  # strings (or null everywhere): the labels as they are
    if is_boolean:
        return _object_array([None if v != v else bool(v) for v in column.tolist()])
    raw, _ = _value_bytes(body)
    if ((raw == _DOT) | (raw == ord("e")) | (raw == ord("E"))).any():
        return None  # a float label: the exact path checks it is whole
    present = ~np.isnan(column)
    if (np.abs(column[present]) >= 2.0**53).any():
        return None  # beyond a double's integers: the exact path reads the text
    labels = np.full(len(column), None, dtype=object)
    labels[present] = column[present].astype(np.int64).astype(object)
    return labels


# --- parsing --------------------------------------------------------------------------------


def _parse(
    values: Sequence[bytes | None], bad: dict[int, str]
) -> tuple[list[dict[str, Any]], list[int]]:
    """The parsed JSON objects and their row numbers; reasons for the others go into ``bad``."""
    loads = orjson.loads
    try:
        parsed: list[Any] = [loads(v) for v in values]  # type: ignore[arg-type]
    except orjson.JSONDecodeError:
        parsed = _parse_one_by_one(values, bad)
    else:
        if set(map(type, parsed)) <= {dict}:
            return parsed, list(range(len(parsed)))
    rows: list[dict[str, Any]] = []
    good: list[int] = []
    for i, obj in enumerate(parsed):
        if i in bad:
            continue
        if type(obj) is dict:
            rows.append(obj)
            good.append(i)
        else:
            bad[i] = f"not a JSON object: got {_json_name(obj)}"
    return rows, good


def _parse_one_by_one(values: Sequence[bytes | None], bad: dict[int, str]) -> list[Any]:
    loads = orjson.loads
    out: list[Any] = []
    for i, value in enumerate(values):
        if value is None:
            bad[i] = "no payload (null value)"
        elif len(value) == 0:
            bad[i] = "empty payload"
        else:
            try:
                out.append(loads(value))
                continue
            except orjson.JSONDecodeError as exc:
                bad[i] = f"not JSON: {exc.msg} at character {exc.pos}"
        out.append(None)
    return out


def _json_name(value: object) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


# --- target ---------------------------------------------------------------------------------


def _target_column(
    rows: list[dict[str, Any]], good: list[int], target: str, task: Task, bad: dict[int, str]
) -> tuple[npt.NDArray[Any], list[dict[str, Any]], list[int]]:
    """The checked target column of the good rows; rows with a bad target move to ``bad``."""
    raw = [row.get(target) for row in rows]
    kinds = set(map(type, raw))
    if task == "classification":
        ok = kinds <= {str, int, bool, _NONE}
        check = _check_label
    else:
        ok = kinds <= {int, float, _NONE}
        check = _check_number
    if not ok:
        keep: list[int] = []
        for j, value in enumerate(raw):
            value, reason = check(value, target)
            if reason is None:
                raw[j] = value
                keep.append(j)
            else:
                bad[good[j]] = reason
        if len(keep) < len(raw):
            raw = [raw[j] for j in keep]
            rows = [rows[j] for j in keep]
            good = [good[j] for j in keep]
    if task == "classification":
        return _object_array(raw), rows, good
    return np.array(raw, dtype=np.float64), rows, good


def _check_label(value: Any, target: str) -> tuple[Any, str | None]:
    kind = type(value)
    if kind in (str, int, bool, _NONE):
        return value, None
    if kind is float and math.isfinite(value) and value == int(value):
        return int(value), None
    what = f"{value!r}, not a whole number" if kind is float else _json_name(value)
    return None, (
        f"target {target!r} is {what}; a classification target is a string, integer or boolean"
    )


def _check_number(value: Any, target: str) -> tuple[Any, str | None]:
    if type(value) in (int, float, _NONE):
        return value, None
    return None, f"target {target!r} is {_json_name(value)}; a regression target must be a number"


# --- columns --------------------------------------------------------------------------------

#: Arrow type a field is converted with, from the Python type of its first non-null value.
_ARROW_TYPES: dict[type, Any] = {
    int: pa.float64(),
    float: pa.float64(),
    bool: pa.bool_(),
    str: pa.large_string(),
}
_HINT_ROWS = 64  # rows scanned for a field's first non-null value before giving up


def _columns(
    rows: list[dict[str, Any]], skip: str | None
) -> tuple[dict[str, npt.NDArray[Any]], list[str]]:
    """One array per field (first-seen order), and the names of the boolean fields."""
    names = [n for n in _field_names(rows) if n != skip]
    if not names:
        return {}, []
    converted = _convert_with_arrow(rows, _type_hints(rows, names))
    columns: dict[str, npt.NDArray[Any]] = {}
    booleans: list[str] = []
    for name in names:
        found = converted.get(name)
        column, is_boolean = found if found else _column([row.get(name) for row in rows])
        columns[name] = column
        if is_boolean:
            booleans.append(name)
    return columns, booleans


def _field_names(rows: list[dict[str, Any]]) -> list[str]:
    """Every field of the rows, in first-seen order."""
    if not rows:
        return []
    first = rows[0].keys()
    if all(map(first.__eq__, map(dict.keys, rows))):  # the usual case, and twice as fast
        return list(first)
    return list(dict.fromkeys(chain.from_iterable(rows)))


def _type_hints(rows: list[dict[str, Any]], names: list[str]) -> dict[str, type]:
    """For each field, the type of its first non-null value in the first rows."""
    hints = {k: type(v) for k, v in rows[0].items() if v is not None}
    pending = [n for n in names if n not in hints]
    for row in rows[1:_HINT_ROWS]:
        if not pending:
            break
        for name in pending:
            value = row.get(name)
            if value is not None:
                hints[name] = type(value)
        pending = [n for n in pending if n not in hints]
    return hints


def _convert_with_arrow(
    rows: list[dict[str, Any]], hints: dict[str, type]
) -> dict[str, tuple[npt.NDArray[Any], bool]]:
    """Convert every field whose type hint Arrow can check, in one C++ pass over the rows.

    Arrow rejects a value that does not fit the hinted type (a string in a numeric field, a
    number in a string or boolean field), so a success proves each field's kind; it accepts a
    boolean in a numeric field, which is what a number/boolean mix becomes anyway. On any
    rejection nothing is converted here and every field takes the per-field path.
    """
    fields = [(name, _ARROW_TYPES[kind]) for name, kind in hints.items() if kind in _ARROW_TYPES]
    if not fields:
        return {}
    try:
        struct = pa.array(rows, type=pa.struct(fields))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return {}
    out: dict[str, tuple[npt.NDArray[Any], bool]] = {}
    for name, arrow_type in fields:
        child = struct.field(name)
        if arrow_type == pa.bool_():
            out[name] = (_to_float64(child.cast(pa.float64())), True)
        elif arrow_type == pa.float64():
            out[name] = (_to_float64(child), False)
        else:
            out[name] = (child.to_numpy(zero_copy_only=False), False)
    return out


def _to_float64(array: Any) -> npt.NDArray[np.float64]:
    return array.to_numpy(zero_copy_only=False, writable=True)  # type: ignore[no-any-return]


def _column(values: list[Any]) -> tuple[npt.NDArray[Any], bool]:
    """One field's values as an array, and whether the field is boolean (the general path)."""
    kinds = set(map(type, values))
    kinds.discard(_NONE)
    if kinds and kinds <= {int, float}:
        try:
            return _to_float64(pa.array(values, type=pa.float64())), False
        except pa.ArrowInvalid:  # an integer too large for a double to hold exactly
            return np.array(values, dtype=np.float64), False
    if kinds == {bool}:
        return np.array(values, dtype=np.float64), True
    if kinds <= {bool, int, float} and kinds:
        return np.array(values, dtype=np.float64), False
    if kinds <= {str}:  # strings, or null in every row
        return _object_array(values), False
    return _object_array([_as_text(v) for v in values]), False


def _as_text(value: Any) -> str | None:
    kind = type(value)
    if kind is str or value is None:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return str(value)
    return orjson.dumps(value).decode()


def _object_array(values: Sequence[Any]) -> npt.NDArray[np.object_]:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


@contextmanager
def _gc_paused() -> Iterator[None]:
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
