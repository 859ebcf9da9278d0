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
strings mixed with numbers or booleans      ``object``: each value as it is (``str``,
                                            ``int``, ``float``, ``bool``), so that what
                                            reads the column can tell ``1`` from ``"1"``
null (or absent) in every row               ``object``, all ``None`` (its type is unknown)
==========================================  ===============================================

A field absent from a row is missing in that row, exactly as if it were null.

The target field (``target``) is checked against the task, and a row whose target has the
wrong type is a dead letter. For classification a label is a string, an integer or a boolean
(a whole float such as ``1.0`` is read as the integer ``1``); the column is an ``object`` array
with ``None`` for unlabeled rows. For regression the target is a number (not a boolean); the
column is ``float64`` with NaN for unlabeled rows. When ``target`` is given the batch always
has its column, even if no row carries it.

A field given twice in one object takes its last value. The limits of ``streamfit.limits``
apply: a field whose name is longer than ``MAX_NAME_CHARS`` or holds a control character gets
no column, and neither do the least frequent fields of a batch of more than
``MAX_BATCH_FIELDS``; the rows that had such a field are marked in ``Batch.partial``.

Dead-letter reasons, one per kind of bad row::

    no payload (null value)
    empty payload
    payload of 2000000 bytes; at most 1048576 are accepted
    not JSON: unexpected character, expected a JSON value at character 0
    not JSON: str is not valid UTF-8: surrogates not allowed at character 9
    not JSON: number is infinity when parsed as double at character 5
    nested deeper than 64 levels
    not a JSON object: got an array
    target 'match' is an array; a classification target is a string, integer or boolean
    target 'price' is a boolean; a regression target must be a number
    target 'price' is 1e+300; a regression target is at most 1e+100 in magnitude

Speed: events from one producer usually share a layout, so a batch is first tried with a
decoder made for the layout of its first rows (msgspec, one per layout, kept): each payload
is decoded straight into a typed row, JSON grammar and each value's kind checked in C, and
the number fields of all rows become float64 columns in one conversion. A field the first
event lacks (events that leave missing fields out, as file replay writes them) grows the
layout when it turns up. An event that does not fit otherwise (a value of another kind, a
bad row) sends the whole batch to the exact path, so either way the result is the same. The
exact path parses the payloads one by one (orjson) and builds the columns in one C++ pass:
each field's type is guessed from its first non-null value, and pyarrow converts all rows to
a struct array of those types, which both builds the columns and proves the guesses. Only
when a guess fails (a field mixing types in this batch) or for nested values are the fields
read value by value in Python. The cyclic garbage collector is paused while a batch is
decoded: the rows are hundreds of thousands of short-lived objects and a collection in the
middle only costs time.

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
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, repeat
from operator import attrgetter, is_not, itemgetter
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa

from streamfit.batch import Batch, DeadLetter, Messages
from streamfit.limits import (
    MAX_BATCH_FIELDS,
    MAX_DEPTH,
    MAX_EVENT_BYTES,
    MAX_MAGNITUDE,
    MAX_NAME_CHARS,
)

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
        fast = _decode_typed(messages, target, task)
        return fast if fast is not None else _decode(messages, target, task)


def _decode(messages: Messages, target: str | None, task: Task) -> DecodeResult:
    values = messages.values
    bad: dict[int, str] = {}
    rows, good = _parse(values, bad)

    labels: npt.NDArray[Any] | None = None
    if target is not None:
        labels, rows, good = _target_column(rows, good, target, task, bad)

    columns = _columns(rows, skip=target)
    if columns.too_deep:  # rare: those rows become dead letters, the others are read again
        keep = [j for j in range(len(rows)) if j not in columns.too_deep]
        for j in columns.too_deep:
            bad[good[j]] = _TOO_DEEP
        rows, good = [rows[j] for j in keep], [good[j] for j in keep]
        if labels is not None:
            labels = labels[np.asarray(keep, dtype=np.intp)]
        columns = _columns(rows, skip=target)
    all_good = len(good) == len(values)
    meta = messages if all_good else messages.take(np.asarray(good, dtype=np.intp))
    if target is not None and labels is not None:
        columns.arrays[target] = labels
    partial = None
    if columns.partial:
        partial = np.zeros(len(rows), dtype=bool)
        partial[columns.partial] = True
    dead = [DeadLetter.from_row(messages, row, bad[row]) for row in sorted(bad)]
    return DecodeResult(Batch(columns.arrays, meta, frozenset(columns.booleans), partial), dead)


# --- the typed fast path ---------------------------------------------------------------------

#: Up to this many number cells a batch converts them with numpy, beyond with Arrow: each is
#: the faster there (measured: ``bench/README.md``)
_NUMPY_CELLS = 512
_TYPED_MIN_ROWS = 16  # below this, making a decoder for a new layout costs more than it saves
_LAYOUTS_KEPT = 64  # decoders kept, one per layout of the first event (names, kinds, target)
_EXTENSIONS = 8  # fields first seen after the first row: new decoders tried per batch
_LATE_FIELDS = 256  # ... and kept per layout, beyond which the exact path decodes
# labels beyond int64 (orjson reads some as floats) are left to the exact path
_LABEL = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)] | str | bool | None
_NUMBER, _FLAG, _TEXT = float | None, bool | None, str | None
_KIND_TYPES: dict[type, Any] = {int: _NUMBER, float: _NUMBER, bool: _FLAG, str: _TEXT}
_UNSET = msgspec.UNSET
# an event that does not fit a layout; RecursionError: nested deeper than msgspec follows
_DOES_NOT_FIT = (msgspec.DecodeError, UnicodeDecodeError, TypeError, RecursionError)
# what a layout's names may not hold (msgspec cannot rename fields to them), besides what no
# column is given for (``_is_column_name``)
_NOT_PLAIN = re.compile(r'["\\\x00-\x1f]')


def _plain_names(names: Iterable[str | None]) -> bool:
    """Whether a typed layout can have fields of these names (``None``: no target)."""
    return not any(
        name is not None and (len(name) > MAX_NAME_CHARS or _NOT_PLAIN.search(name))
        for name in names
    )


@dataclass(frozen=True, slots=True)
class _Layout:
    """A decoder to typed rows for one layout of events, and the row attributes by kind.

    Attribute ``a<i>`` of a row holds the first event's ``i``-th field (in ``kinds``; null
    when an event leaves it out), ``b<j>`` the ``j``-th *late* field, first seen in a later
    event of this batch or an earlier one (``UNSET`` when left out, so that a field no event
    of a batch has is not one of its columns), and ``label`` the target.
    """

    decoder: msgspec.json.Decoder[Any]
    kinds: dict[str, type]  # the first event's fields and kinds, the target left out
    late: dict[str, type]  # the late fields and their kinds, in the order they were met
    numbers: tuple[str, ...]  # the first event's number fields (float | None), in one pass
    rest: tuple[tuple[str, Any], ...]  # its other fields: attribute and checked type


_layouts: dict[tuple[Any, ...], _Layout] = {}


def _decode_typed(messages: Messages, target: str | None, task: Task) -> DecodeResult | None:
    """The batch decoded by a decoder made for its layout, when every event fits it.

    The first rows give each field's kind (number, boolean, string, other). msgspec then
    decodes each payload straight into a row of those types, checking the JSON grammar and
    each value's kind in C, and the columns are gathered from the rows. An event with a field
    the layout lacks extends it (up to ``_EXTENSIONS`` times a batch) and the batch is decoded
    again; any other event that does not fit (a value of another kind, bad JSON, a bad target)
    returns ``None``: the exact path then decodes the batch, so the result, dead letters
    included, is the same either way.
    """
    values = messages.values
    if len(values) < _TYPED_MIN_ROWS:
        return None
    try:
        if max(map(len, values)) > MAX_EVENT_BYTES:  # type: ignore[arg-type]
            return None
    except TypeError:  # a message without a payload
        return None
    found = _layout_of(values, target, task)
    if found is None:
        return None
    signature, layout = found
    try:
        rows = list(map(layout.decoder.decode, values))  # type: ignore[arg-type]
    except _DOES_NOT_FIT:
        layout, fits = _extended(layout, values, target, task)
        _layouts[signature] = layout  # grown as far as it got: the next batch goes on from it
        if not fits:
            return None
        try:
            rows = list(map(layout.decoder.decode, values))  # type: ignore[arg-type]
        except _DOES_NOT_FIT:
            return None
    found_columns = _number_columns(rows, layout.numbers) if layout.numbers else {}
    flags = set()
    for attr, kind in layout.rest:
        column = _kind_column(list(map(attrgetter(attr), rows)), kind)
        if column is None:
            return None
        found_columns[attr] = column
        if kind is _FLAG:
            flags.add(attr)
    columns = {key: found_columns[f"a{i}"] for i, key in enumerate(layout.kinds)}
    booleans = [key for i, key in enumerate(layout.kinds) if f"a{i}" in flags]
    if layout.late:
        late = _late_columns(rows, layout, values)
        if late is None:
            return None
        for key, (column, is_boolean) in late.items():
            columns[key] = column
            if is_boolean:
                booleans.append(key)
    if target is not None:
        labels = list(map(attrgetter("label"), rows))
        if task == "classification":
            columns[target] = _object_array(labels)
        else:
            numbers = columns[target] = np.array(labels, np.float64)
            if (np.abs(numbers) > MAX_MAGNITUDE).any():
                return None  # the exact path sets those rows aside
    return DecodeResult(Batch(columns, messages, frozenset(booleans)), [])


def _layout_of(
    values: Sequence[bytes | None], target: str | None, task: Task
) -> tuple[tuple[Any, ...], _Layout] | None:
    """The layout of the first event, a null field's kind taken from the next rows where
    they have a value, with its signature; ``None`` where the exact path has to decide."""
    try:
        first = orjson.loads(values[0])  # type: ignore[arg-type]
    except (orjson.JSONDecodeError, TypeError):
        return None
    if type(first) is not dict or not first:
        return None
    kinds = {key: type(value) for key, value in first.items() if key != target}
    pending = [key for key, kind in kinds.items() if kind is _NONE]
    for value in values[1:_HINT_ROWS] if pending else ():
        try:
            row = orjson.loads(value)  # type: ignore[arg-type]
        except (orjson.JSONDecodeError, TypeError):
            return None
        if type(row) is not dict:
            return None
        for key in pending:
            hint = row.get(key)
            if hint is not None:
                kinds[key] = type(hint)
        pending = [key for key in pending if kinds[key] is _NONE]
        if not pending:
            break
    signature = (tuple(kinds.items()), target, task)
    layout = _layouts.get(signature)
    if layout is None:
        if len(kinds) > MAX_BATCH_FIELDS - _LATE_FIELDS or not _plain_names([*kinds, target]):
            return None
        if len(_layouts) >= _LAYOUTS_KEPT:
            _layouts.clear()
        layout = _layouts[signature] = _make_layout(kinds, {}, target, task)
    return signature, layout


def _extended(
    layout: _Layout, values: Sequence[bytes | None], target: str | None, task: Task
) -> tuple[_Layout, bool]:
    """``layout`` grown by the fields of this batch it lacks, met in order: each event that
    does not fit brings its new fields (up to ``_EXTENSIONS`` times), and the scan goes on
    from it with the grown decoder. With it, whether every event now fits (``False`` when an
    event does not fit for another reason, or when more fields are still missing)."""
    start = 0
    for _ in range(_EXTENSIONS):
        decode = layout.decoder.decode
        for at in range(start, len(values)):
            try:
                decode(values[at])  # type: ignore[arg-type]
            except _DOES_NOT_FIT:
                break
        else:
            return layout, True
        try:
            event = orjson.loads(values[at])  # type: ignore[arg-type]
        except (orjson.JSONDecodeError, TypeError):
            return layout, False
        if type(event) is not dict:
            return layout, False
        new = {
            key: type(v)
            for key, v in event.items()
            if key != target and key not in layout.kinds and key not in layout.late
        }
        if not new or len(layout.late) + len(new) > _LATE_FIELDS or not _plain_names(new):
            return layout, False
        layout = _make_layout(layout.kinds, {**layout.late, **new}, target, task)
        start = at
    return layout, False


def _make_layout(
    kinds: dict[str, type], late: dict[str, type], target: str | None, task: Task
) -> _Layout:
    fields = [(f"a{i}", key, kind) for i, (key, kind) in enumerate(kinds.items())]
    # the number fields first: a row's numbers are then one slice of its tuple of values
    fields.sort(key=lambda field: _KIND_TYPES.get(field[2]) is not _NUMBER)
    types: list[tuple[str, Any, Any]] = [
        (attr, _KIND_TYPES.get(kind, Any), None) for attr, _, kind in fields
    ]
    rename = {attr: key for attr, key, _ in fields}
    for j, (key, kind) in enumerate(late.items()):
        kind_type = _KIND_TYPES.get(kind)
        types.append((f"b{j}", Any if kind_type is None else kind_type | msgspec.UnsetType, _UNSET))
        rename[f"b{j}"] = key
    if target is not None:
        types.append(("label", _LABEL if task == "classification" else _NUMBER, None))
        rename["label"] = target
    row = msgspec.defstruct("Event", types, rename=rename, forbid_unknown_fields=True, gc=False)

    checked = [(attr, _KIND_TYPES.get(kind)) for attr, _, kind in fields]
    return _Layout(
        decoder=msgspec.json.Decoder(row),
        kinds=dict(kinds),
        late=dict(late),
        numbers=tuple(attr for attr, kind in checked if kind is _NUMBER),
        rest=tuple((attr, kind) for attr, kind in checked if kind is not _NUMBER),
    )


def _kind_column(cells: list[Any], kind: Any) -> npt.NDArray[Any] | None:
    """One field's column from its rows' values, by the type its decoder checked them
    against (``None``: any JSON value); ``None`` where only the exact path can tell."""
    if kind is _NUMBER:
        return _to_float64(pa.array(cells, type=pa.float64()))
    if kind is _FLAG:
        return np.array(cells, dtype=np.float64)
    if kind is _TEXT:
        return _object_array(cells)
    return _other_column(cells)


def _late_columns(
    rows: list[Any], layout: _Layout, values: Sequence[bytes | None]
) -> dict[str, tuple[npt.NDArray[Any], bool]] | None:
    """The late fields that some row of this batch has, as columns, in the order the exact
    path finds them: by the first row that has them, then by their order in that row."""
    found: list[tuple[int, str, npt.NDArray[Any], bool]] = []
    for j, (key, kind) in enumerate(layout.late.items()):
        cells = list(map(attrgetter(f"b{j}"), rows))
        unset = cells.count(_UNSET)
        if unset == len(cells):
            continue  # in no row of this batch: not a field of it
        first = 0
        if unset:
            first = list(map(is_not, cells, repeat(_UNSET))).index(True)
            cells = [None if v is _UNSET else v for v in cells]
        kind_type = _KIND_TYPES.get(kind)
        if cells.count(None) == len(cells):
            kind_type = None  # null wherever present: its kind came from another batch
        column = _kind_column(cells, kind_type)
        if column is None:
            return None
        found.append((first, key, column, kind_type is _FLAG))
    firsts = [first for first, *_ in found]
    tied = {first for first in firsts if firsts.count(first) > 1}
    # fields first met in the same row keep that row's key order (read only for such rows)
    places = {first: list(orjson.loads(values[first])).index for first in tied}  # type: ignore[arg-type]
    found.sort(key=lambda item: (item[0], places[item[0]](item[1]) if item[0] in tied else 0))
    return {key: (column, is_boolean) for _, key, column, is_boolean in found}


def _number_columns(rows: list[Any], attrs: tuple[str, ...]) -> dict[str, npt.NDArray[Any]]:
    """The rows' number fields (their first fields) as float64 columns, NaN for null, in
    one conversion."""
    numbers = itemgetter(slice(0, len(attrs)))
    cells = list(chain.from_iterable(map(numbers, map(msgspec.structs.astuple, rows))))
    if len(cells) <= _NUMPY_CELLS:  # numpy reads None as NaN too, without Arrow's set-up
        flat = np.array(cells, dtype=np.float64)
    else:
        flat = _to_float64(pa.array(cells, type=pa.float64()))
    by_field = np.ascontiguousarray(flat.reshape(len(rows), len(attrs)).T)
    return dict(zip(attrs, by_field, strict=True))


def _other_column(values: list[Any]) -> npt.NDArray[Any] | None:
    """A field that had no value in the first rows: null throughout, or scalars read by the
    general column rule. ``None`` where orjson would have read the events otherwise (nested
    values, integers beyond 64 bits) or where the field is boolean (which only the exact
    path lists)."""
    kinds = set(map(type, values))
    if not kinds <= {_NONE, int, float, str}:
        return None
    if int in kinds and not all(-(2**63) <= v < 2**64 for v in values if type(v) is int):
        return None
    return _column(values)[0]


# --- parsing --------------------------------------------------------------------------------


def _parse(
    values: Sequence[bytes | None], bad: dict[int, str]
) -> tuple[list[dict[str, Any]], list[int]]:
    """The parsed JSON objects and their row numbers; reasons for the others go into ``bad``."""
    loads = orjson.loads
    try:
        if max(map(len, values), default=0) > MAX_EVENT_BYTES:  # type: ignore[arg-type]
            raise orjson.JSONDecodeError("too large", "", 0)
        parsed: list[Any] = [loads(v) for v in values]  # type: ignore[arg-type]
    except (orjson.JSONDecodeError, TypeError):  # TypeError: a message without a payload
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
        elif len(value) > MAX_EVENT_BYTES:
            bad[i] = f"payload of {len(value)} bytes; at most {MAX_EVENT_BYTES} are accepted"
        else:
            try:
                out.append(loads(value))
                continue
            except orjson.JSONDecodeError as exc:
                too_deep = exc.msg.startswith("depth limit exceeded")  # orjson's: 1024 levels
                bad[i] = _TOO_DEEP if too_deep else f"not JSON: {exc.msg} at character {exc.pos}"
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
    numbers = np.array(raw, dtype=np.float64)
    too_large = np.flatnonzero(np.abs(numbers) > MAX_MAGNITUDE).tolist()
    if too_large:  # it would drive a learner's weights or step sizes past any use
        for j in too_large:
            bad[good[j]] = (
                f"target {target!r} is {float(numbers[j])!r}; a regression target is at most "
                f"{MAX_MAGNITUDE:g} in magnitude"
            )
        keep = sorted(set(range(len(raw))) - set(too_large))
        numbers = numbers[keep]
        rows = [rows[j] for j in keep]
        good = [good[j] for j in keep]
    return numbers, rows, good


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
_FEW_ROWS = 4  # batches this small (a request to predict one event) skip Arrow
_HINT_ROWS = 64  # rows scanned for a field's first non-null value before giving up
_SPARSE_FIELDS = 256  # a batch with more fields than this, most of them absent from most
# rows, reads its columns from one pass over the rows' values (``_sparse_columns``)
_CONTROL = re.compile(r"[\x00-\x1f]")
_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"


@dataclass(slots=True)
class _Columns:
    """A batch's columns, and what ``_columns`` found on the way."""

    arrays: dict[str, npt.NDArray[Any]]
    booleans: list[str]
    partial: list[int]  # rows with fields that got no column
    too_deep: set[int]  # rows nested deeper than ``MAX_DEPTH``


def _columns(rows: list[dict[str, Any]], skip: str | None) -> _Columns:
    """One array per field (first-seen order), and the names of the boolean fields."""
    out = _Columns({}, [], [], set())
    names = [n for n in _field_names(rows) if n != skip]
    if not names:
        return out
    names, out.partial = _column_names(rows, names, skip)
    if len(names) > _SPARSE_FIELDS and len(names) * len(rows) > 4 * _cells(rows):
        converted = _sparse_columns(rows, names, out.too_deep)
    elif len(rows) <= _FEW_ROWS:  # Arrow's set-up costs more than it saves: per field
        converted = {}
    else:
        converted = _convert_with_arrow(rows, _type_hints(rows, names))
    for name in names:
        found = converted.get(name)
        if found:
            column, is_boolean = found
        else:
            column, is_boolean = _column([row.get(name) for row in rows], out.too_deep)
        out.arrays[name] = column
        if is_boolean:
            out.booleans.append(name)
    return out


def _cells(rows: list[dict[str, Any]]) -> int:
    return sum(map(len, rows))


def _sparse_columns(
    rows: list[dict[str, Any]], names: list[str], too_deep: set[int]
) -> dict[str, tuple[npt.NDArray[Any], bool]]:
    """The columns of fields most rows lack (many fields, few in each row), from one pass
    over the rows' values rather than one look-up per field and row: by the same rules,
    each field's values read from the rows that have it, and placed in its column."""
    places: dict[str, list[int]] = {name: [] for name in names}
    cells: dict[str, list[Any]] = {name: [] for name in names}
    for j, row in enumerate(rows):
        for key, value in row.items():
            found = cells.get(key)
            if found is not None:
                found.append(value)
                places[key].append(j)
    out: dict[str, tuple[npt.NDArray[Any], bool]] = {}
    n = len(rows)
    for name in names:
        at = places[name]
        deep: set[int] = set()
        column, is_boolean = _column(cells[name], deep)
        too_deep.update(at[i] for i in deep)
        full = np.full(n, None if column.dtype == object else np.nan, dtype=column.dtype)
        full[np.asarray(at, dtype=np.intp)] = column
        out[name] = (full, is_boolean)
    return out


def _column_names(
    rows: list[dict[str, Any]], names: list[str], skip: str | None
) -> tuple[list[str], list[int]]:
    """The fields that get a column (``names`` is every field of the rows but ``skip``), and
    the rows that have others: names longer than ``MAX_NAME_CHARS`` or with a control
    character get none, and past ``MAX_BATCH_FIELDS`` only the fields most rows have do
    (the first seen among equally frequent ones)."""
    kept = [name for name in names if _is_column_name(name)]
    if len(kept) > MAX_BATCH_FIELDS:
        counts = Counter(chain.from_iterable(rows))
        place = {name: i for i, name in enumerate(kept)}
        chosen = set(sorted(kept, key=lambda n: (-counts[n], place[n]))[:MAX_BATCH_FIELDS])
        kept = [name for name in kept if name in chosen]
    if len(kept) == len(names):
        return names, []
    columns = {*kept, skip}
    return kept, [j for j, row in enumerate(rows) if not columns.issuperset(row)]


def _is_column_name(name: str) -> bool:
    return len(name) <= MAX_NAME_CHARS and not _CONTROL.search(name)


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
    wanted = set(names)
    hints = {k: type(v) for k, v in rows[0].items() if v is not None and k in wanted}
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


def _column(values: list[Any], too_deep: set[int] | None = None) -> tuple[npt.NDArray[Any], bool]:
    """One field's values as an array, and whether the field is boolean (the general path).

    Rows whose value is nested deeper than ``MAX_DEPTH`` allows are added to ``too_deep``
    (their cell is ``None``).
    """
    kinds = set(map(type, values))
    kinds.discard(_NONE)
    if kinds and kinds <= {int, float}:
        if len(values) <= _FEW_ROWS:  # what Arrow would make, without its set-up
            return np.array(values, dtype=np.float64), False
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
    if not kinds & {dict, list}:  # strings with numbers or booleans: each kept as it is
        return _object_array(values), False
    cells = list(values)
    for j, value in enumerate(values):
        if type(value) in (dict, list):
            text = _nested_text(value)
            if text is None and too_deep is not None:
                too_deep.add(j)
            cells[j] = text
    return _object_array(cells), False


def _nested_text(value: dict[str, Any] | list[Any]) -> str | None:
    """The JSON text of an object or array found in an event (at level 2), ``None`` when it
    nests deeper than ``MAX_DEPTH`` allows."""
    try:
        text = orjson.dumps(value)
    except orjson.JSONEncodeError:  # orjson writes 254 levels at most
        return None
    # each level opens a bracket: fewer brackets than levels allowed, no need to count them
    if text.count(b"[") + text.count(b"{") >= MAX_DEPTH and _depth(value) >= MAX_DEPTH:
        return None
    return text.decode()


def _depth(value: Any) -> int:
    """How many levels of objects and arrays ``value`` nests (0 for a scalar).

    >>> _depth(1), _depth([]), _depth({"a": [1, {"b": 2}]})
    (0, 1, 3)
    """
    deepest, level = 0, [(value, 1)]
    while level:
        item, depth = level.pop()
        if type(item) is dict:
            item = list(item.values())
        elif type(item) is not list:
            continue
        deepest = max(deepest, depth)
        level.extend((child, depth + 1) for child in item)
    return deepest


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
