"""Batch columns to lists of database values, one vectorized pass per column.

Missing values (NaN, None) and non-finite numbers (which MariaDB cannot store) become NULL.

>>> outcome_texts(np.array([1.0, 0.0, 2.5, np.nan]))
['1', '0', '2.5', None]
>>> outcome_texts(np.array([True, "yes", 3, None], dtype=object))
['1', 'yes', '3', None]
>>> field_values(np.array([1.0, np.nan]), "bool", "bool")
[True, None]
>>> field_values(np.array(["a", {"b": 1}, None], dtype=object), "text", "text")
['a', '{"b":1}', None]
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import orjson

from streamfit.store.tables import ColumnKind

__all__ = [
    "clean",
    "column_kind",
    "event_time_texts",
    "event_times",
    "field_kind",
    "field_values",
    "fits_integers",
    "float_list",
    "key_texts",
    "missing",
    "nul_rows",
    "outcome_texts",
    "present",
    "probability_list",
    "whole_numbers",
]

_T = TypeVar("_T")
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
_INT_LIMIT = 2.0**63
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def field_kind(values: npt.NDArray[Any], is_boolean: bool) -> ColumnKind:
    """The column kind for a batch column (``is_boolean``: listed in ``Batch.booleans``)."""
    kind = values.dtype.kind
    if kind == "f":
        return "bool" if is_boolean else "float"
    if kind == "b":
        return "bool"
    if kind in "iu":
        return "int"
    return "text"


def column_kind(values: npt.NDArray[Any], is_boolean: bool) -> ColumnKind:
    """The kind of column to make for a new field, on the evidence of its values: as
    ``field_kind``, but an ``object`` column whose values are mostly numbers (or mostly
    booleans) makes a number (boolean) column, so that one odd value cannot decide it.

    >>> column_kind(np.array(["abc", 1.5, 2, None], dtype=object), False)
    'float'
    >>> column_kind(np.array(["abc", 1.5, None], dtype=object), False)
    'text'
    >>> column_kind(np.array([4500.0, np.nan]), False), column_kind(np.array([2.5]), False)
    ('int', 'float')
    """
    kind = field_kind(values, is_boolean)
    if kind == "float" and whole_numbers(values, some=True):
        return "int"  # JSON numbers reach the batch as floats: whole ones stay integers
    if kind != "text" or values.dtype != object:
        return kind
    cells: list[Any] = values.tolist()
    kinds = Counter(type(v) for v in cells if v is not None and v == v)
    present = sum(kinds.values())
    if 2 * (kinds[int] + kinds[float]) > present:
        return "float"
    if 2 * kinds[bool] > present:
        return "bool"
    return "text"


def present(values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Which cells of a batch column hold a value (not NaN, not None)."""
    if values.dtype.kind == "f":
        found: npt.NDArray[np.bool_] = ~np.isnan(values)
        return found
    if values.dtype == object:
        return np.array([v is not None and v == v for v in values.tolist()], dtype=bool)
    return np.ones(len(values), dtype=bool)


def missing(converted: list[Any]) -> npt.NDArray[np.bool_]:
    """Which of the database values are NULL."""
    return np.fromiter((v is None for v in converted), dtype=bool, count=len(converted))


def nul_rows(values: npt.NDArray[Any]) -> npt.NDArray[np.bool_] | None:
    """Which cells are strings holding NUL; ``None`` when none is (the usual case, found by
    one search of the strings joined)."""
    if values.dtype != object:
        return None
    cells: list[Any] = values.tolist()
    try:
        joined = "".join(cells)
    except TypeError:  # not all strings
        joined = "".join(v for v in cells if type(v) is str)
    if "\x00" not in joined:
        return None
    return np.array([type(v) is str and "\x00" in v for v in cells], dtype=bool)


def whole_numbers(values: npt.NDArray[Any], some: bool = False) -> bool:
    """Whether every number of a float column is whole (NaN is missing, not a fraction);
    with ``some``, also whether there is at least one.

    >>> whole_numbers(np.array([1.0, np.nan, -3.0])), whole_numbers(np.array([1.0, 2.5]))
    (True, False)
    >>> whole_numbers(np.array([np.nan])), whole_numbers(np.array([np.nan]), some=True)
    (True, False)
    """
    a = np.asarray(values, dtype=np.float64)
    present = a[~np.isnan(a)]
    if some and len(present) == 0:
        return False
    return bool(np.all(np.isfinite(present) & (present == np.round(present)))) and bool(
        np.all(np.abs(present) < _INT_LIMIT)
    )


def fits_integers(values: npt.NDArray[Any], kind: ColumnKind) -> bool:
    """Whether a batch column of ``kind`` goes into an integer column without losing a
    fraction (text that is no number becomes NULL there, as in any number column).

    >>> fits_integers(np.array(["3", "x", None], dtype=object), "text")
    True
    >>> fits_integers(np.array(["2.5"], dtype=object), "text")
    False
    """
    if kind == "float":
        return whole_numbers(values)
    if kind != "text":
        return True
    numbers = [_to_float(v) for v in values.tolist() if v is not None and type(v) is not bool]
    return whole_numbers(np.array([x for x in numbers if x is not None], dtype=np.float64))


def _nulls(out: list[Any], missing: npt.NDArray[np.bool_]) -> list[Any]:
    for i in np.flatnonzero(missing).tolist():
        out[i] = None
    return out


def float_list(values: npt.NDArray[Any]) -> list[float | None]:
    """Floats, NULL for NaN and infinities."""
    if values.dtype.kind == "O":
        return [_to_float(v) for v in values.tolist()]
    a = np.asarray(values, dtype=np.float64)
    return _nulls(a.tolist(), ~np.isfinite(a))


def probability_list(values: npt.NDArray[Any]) -> list[float | None]:
    """One probability per row; of a 2-d (rows x classes) array, the largest of each row."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim == 2:
        a = a.max(axis=1) if a.shape[1] else np.full(len(a), np.nan)
    return float_list(a)


def _number_texts(a: npt.NDArray[np.float64]) -> list[str | None]:
    """'1' for 1.0, '2.5' for 2.5, None for NaN: how numbers read as labels."""
    finite = np.isfinite(a)
    integral = finite & (a == np.round(a)) & (np.abs(a) < _INT_LIMIT)
    out = np.full(len(a), None, dtype=object)
    out[integral] = a[integral].astype(np.int64).astype(str)
    rest = finite & ~integral
    out[rest] = a[rest].astype(str)
    result: list[str | None] = out.tolist()
    return result


def _outcome_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _clean(str(value))
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return _number_texts(np.array([value], dtype=np.float64))[0]
    return _json(value)


def outcome_texts(values: npt.NDArray[Any]) -> list[str | None]:
    """Class labels as text: numbers that are whole read ``"1"``, booleans ``"1"``/``"0"``.

    A boolean field reaches the store as float 0/1 (the ``Batch`` convention), so a label
    ``1.0``, a prediction ``1``, ``np.int64(1)`` and ``True`` all read ``"1"`` and compare equal
    in SQL. Strings stay as they are; anything else is JSON.
    """
    kind = values.dtype.kind
    if kind == "f":
        return _number_texts(values.astype(np.float64, copy=False))
    if kind == "b":
        return ["1" if v else "0" for v in values.tolist()]
    if kind in "iu":
        texts: list[str | None] = values.astype(str).tolist()
        return texts
    return _each_distinct(values.tolist(), _outcome_text)


def key_texts(keys: Sequence[bytes | None]) -> list[str | None]:
    """Kafka keys as text: UTF-8, undecodable bytes replaced."""
    return [None if k is None else _clean(k.decode("utf-8", "replace")) for k in keys]


def event_times(timestamps_ms: npt.NDArray[np.int64]) -> list[dt.datetime | None]:
    """Naive UTC datetimes from epoch milliseconds; NULL where Kafka had none (negative)."""
    ts = np.asarray(timestamps_ms, dtype=np.int64)
    bad = (ts < 0) | (ts > _MAX_MS)
    times = np.where(bad, 0, ts).astype("datetime64[ms]").astype(object)
    return _nulls(times.tolist(), bad)


def event_time_texts(timestamps_ms: npt.NDArray[np.int64]) -> list[str | None]:
    """Epoch milliseconds as text: ``2024-01-31 12:00:00.000000`` (SQLAlchemy's SQLite form)."""
    ts = np.asarray(timestamps_ms, dtype=np.int64)
    bad = (ts < 0) | (ts > _MAX_MS)
    stamps = np.where(bad, 0, ts).astype("datetime64[ms]").astype("datetime64[us]")
    texts = np.char.replace(np.datetime_as_string(stamps, unit="us"), "T", " ")
    return _nulls(texts.tolist(), bad)


# -- event fields -------------------------------------------------------------------------------


def field_values(values: npt.NDArray[Any], source: ColumnKind, target: ColumnKind) -> list[Any]:
    """A batch column of kind ``source`` as values for a column of kind ``target``.

    When a field changes type after its column was made, values are converted to the column's
    type where that makes sense (``"3.5"`` into a number column) and are NULL where not.
    """
    if source == "text":
        if target == "text":
            return _texts(values.tolist())
        convert = {"float": _to_float, "bool": _to_bool, "int": _to_int}[target]
        return [convert(v) for v in values.tolist()]
    if source == "int":
        ints = values.astype(np.int64, copy=False)
        if target == "int":
            return ints.tolist()  # type: ignore[no-any-return]
        if target == "bool":
            return (ints != 0).tolist()  # type: ignore[no-any-return]
        if target == "text":
            return ints.astype(str).tolist()  # type: ignore[no-any-return]
        return float_list(ints.astype(np.float64))
    a = values.astype(np.float64, copy=False)
    missing = np.isnan(a)
    if target == "float":
        return float_list(a)
    if target == "bool":
        return _nulls((a != 0).tolist(), missing)
    if target == "int":
        whole = np.isfinite(a) & (a == np.round(a)) & (np.abs(a) < _INT_LIMIT)
        return _nulls(np.where(whole, a, 0).astype(np.int64).tolist(), ~whole)
    if source == "bool":
        return _nulls(np.where(a != 0, "true", "false").tolist(), missing)
    return _number_texts(a)


def clean(text: str) -> str:
    """``text`` as every database can store it: each NUL (which PostgreSQL's text cannot
    hold) replaced by U+FFFD."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


_clean = clean


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _json(value: Any) -> str:
    return _clean(orjson.dumps(value, default=_json_default, option=_JSON_OPTIONS).decode())


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _clean(str(value))  # str(): numpy.str_ and other subclasses become plain str
    if isinstance(value, float) and value != value:
        return None
    return _json(value)


def _texts(values: list[Any]) -> list[str | None]:
    if set(map(type, values)) <= {str, type(None)}:  # strings, often all different
        return [v if type(v) is str and "\x00" not in v else _text(v) for v in values]
    return _each_distinct(values, _text)


#: Types whose equal values always convert alike: not floats (``0.0 == -0.0``, and a float
#: equals an int it may not read like), and not ``bool`` next to ``int`` (``True == 1``).
_DISTINCT_SAFE = frozenset({str, int, bool, type(None)})


def _each_distinct(values: list[Any], convert: Callable[[Any], _T]) -> list[_T]:
    """``[convert(v) for v in values]``, converting each distinct value once: a label or a
    category column has few distinct values and many rows. Values of other types than
    ``_DISTINCT_SAFE`` (or both ints and booleans) are converted one by one.

    >>> _each_distinct([1, 2, 1, None], str)
    ['1', '2', '1', 'None']
    """
    kinds = set(map(type, values))
    if not kinds <= _DISTINCT_SAFE or {int, bool} <= kinds:
        return [convert(v) for v in values]
    converted = {v: convert(v) for v in dict.fromkeys(values)}
    return list(map(converted.__getitem__, values))


def _to_float(value: Any) -> float | None:
    if value is None or (isinstance(value, str | bytes) and not value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _to_bool(value: Any) -> bool | None:
    if isinstance(value, str):
        word = value.strip().lower()
        return True if word in _TRUE else False if word in _FALSE else None
    number = _to_float(value)
    return None if number is None else number != 0


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    number = _to_float(value)
    if number is None or number != round(number) or abs(number) >= _INT_LIMIT:
        return None
    return int(number)
