"""Reading a batch column as the kind of feature its field is, whatever its dtype.

Every function takes a column as the decoder makes it (``float64`` with NaN missing, or
``object`` with ``None`` missing; other numeric dtypes are accepted) and works on the column's
distinct values where it must call Python per value (``pandas.factorize`` first).

>>> import numpy as np
>>> as_numbers(np.array(["69,487.00", "n/a", None], dtype=object)).tolist()
[69487.0, nan, nan]
>>> codes, values = factorize_strings(np.array([1.0, np.nan, 2.5, 1.0]))
>>> codes.tolist(), values
([0, -1, 1, 0], ['1', '2.5'])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "FALSE_WORDS",
    "TRUE_WORDS",
    "as_flags",
    "as_numbers",
    "as_texts",
    "factorize_strings",
    "mean_word_count",
]

#: Strings read as true / false in a field typed ``boolean`` (case is ignored).
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "on"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "off"})

Column = npt.NDArray[Any]
Floats = npt.NDArray[np.float64]


def as_numbers(column: Column) -> Floats:
    """A ``float64`` copy of the column, NaN where missing, infinite or not a number.

    Strings are parsed after removing thousands separators (``"69,487.00"`` is 69487.0).

    >>> as_numbers(np.array([1.0, np.inf, np.nan])).tolist()
    [1.0, nan, nan]
    """
    if column.dtype.kind in "biuf":
        out = column.astype(np.float64, copy=True)
    else:
        out = _map_distinct(column, _parse_number)
    out[~np.isfinite(out)] = np.nan
    return out


def as_flags(column: Column, *, boolean: bool = False) -> Floats:
    """1.0 / 0.0 / NaN (missing): numbers are true when not zero, strings by their word.

    ``boolean`` says the column already holds 0/1 (a decoded boolean field).

    >>> as_flags(np.array(["Yes", "no", "maybe", None], dtype=object)).tolist()
    [1.0, 0.0, nan, nan]
    """
    if column.dtype.kind in "biuf":
        values = column.astype(np.float64, copy=True)
        if boolean:
            return values
        known = np.isfinite(values)
        values[known] = values[known] != 0
        values[~known] = np.nan
        return values
    return _map_distinct(column, _parse_flag)


def factorize_strings(
    column: Column, *, boolean: bool = False
) -> tuple[npt.NDArray[np.intp], list[str]]:
    """Codes (-1 = missing) and the distinct values as strings, for hashing.

    Strings stay as they are; numbers are written like JSON writes them (``1.0`` as ``"1"``),
    booleans (``boolean=True`` for a 0/1 column) as ``"true"`` / ``"false"``.
    """
    if column.dtype.kind in "biuf":
        codes, uniques = pd.factorize(column.astype(np.float64, copy=False))  # NaN -> -1
        if boolean:
            return codes, ["true" if u else "false" for u in uniques.tolist()]
        return codes, [_number_text(u) for u in uniques.tolist()]
    codes, uniques = pd.factorize(column)  # None and NaN -> -1
    texts: list[Any] = uniques.tolist()
    if not set(map(type, texts)) <= {str}:
        # numbers and booleans among the strings: ``True``, ``1`` and ``1.0`` are one key to
        # ``factorize`` but not one value, so each cell is spelled first
        spelled = [None if v is None or v != v else _as_text(v) for v in column.tolist()]
        codes, uniques = pd.factorize(np.array(spelled, dtype=object))
        texts = uniques.tolist()
    return codes, texts


def as_texts(column: Column, *, boolean: bool = False) -> npt.NDArray[np.object_]:
    """The column as an ``object`` array of strings, ``None`` where missing."""
    codes, texts = factorize_strings(column, boolean=boolean)
    table = np.array([*texts, None], dtype=object)
    return table[codes]  # code -1 picks the trailing None


def mean_word_count(texts: npt.NDArray[np.object_]) -> float:
    """The average number of whitespace-separated words of the non-missing strings.

    >>> mean_word_count(np.array(["a b c", None, "d"], dtype=object))
    2.0
    """
    present: list[Any] = texts[pd.notna(texts)].tolist()
    if not set(map(type, present)) <= {str}:
        present = [t if isinstance(t, str) else str(t) for t in present]
    if not present:
        return 0.0
    return len(" ".join(present).split()) / len(present)  # a space never joins two words


def _map_distinct(column: Column, parse: Callable[[Any], float]) -> Floats:
    codes, uniques = pd.factorize(column)
    table = np.array([*map(parse, uniques.tolist()), math.nan], dtype=np.float64)
    return table[codes]  # type: ignore[no-any-return]  # code -1 picks the trailing NaN


def _parse_number(value: Any) -> float:
    if isinstance(value, str):
        try:
            return float(value.replace(",", ""))
        except ValueError:
            return math.nan
    if isinstance(value, int | float):  # a boolean among numbers counts as 1 or 0
        return float(value)
    return math.nan


def _parse_flag(value: Any) -> float:
    if isinstance(value, str):
        word = value.strip().lower()
        return 1.0 if word in TRUE_WORDS else 0.0 if word in FALSE_WORDS else math.nan
    if isinstance(value, bool | int | float) and math.isfinite(value):
        return float(value != 0)
    return math.nan


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number_text(value) if math.isfinite(value) else repr(value)
    return str(value)
