"""What kind each field is, and a batch column read as its field's kind.

A field's kind is decided by evidence, by the featurizer's rules: the first batch in which it
has a value decides, by the type most of its values have (``numeric`` for numbers,
``boolean`` for booleans, ``text`` for strings of at least ``text_min_tokens`` words on
average, else ``categorical``); ``features.types`` in the spec decides instead where it names
the field.

Read as its kind (``read_column``), each row of a column is *valid*, *missing* (null, or the
field absent from the event) or *invalid*: a value of the wrong type, the same notion as the
featurizer's ``invalid_values``. For a numeric field that is a string that is not a number
(numbers written as strings, thousands separators included, are numbers), ``NaN`` or
``Infinity`` written as a string, or a number beyond ``limits.MAX_MAGNITUDE`` in magnitude;
for a boolean field a value that is neither a boolean, a number nor a yes/no word. Invalid
values never reach a sketch. A categorical or text field takes any value (a number as its
JSON spelling), so none is invalid there; numbers are still *of another kind* for it, which
is what a type change watches (see ``streamfit.explore.statistics``).

>>> import numpy as np
>>> column = np.array([1.5, 7, "2", "n/a", None], dtype=object)
>>> infer_kind(column, boolean=False)  # two numbers of four values: not most
'categorical'
>>> read = read_column(column, "numeric", boolean=False)
>>> read.numbers.tolist(), read.invalid.tolist(), read.missing.tolist()
([1.5, 7.0, 2.0, nan, nan], [False, False, False, True, False], [False, False, False, False, True])
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from streamfit.features.columns import (
    as_flags,
    as_numbers,
    as_texts,
    factorize_strings,
    mean_word_count,
)
from streamfit.limits import MAX_MAGNITUDE

__all__ = ["KINDS", "Kind", "ReadColumn", "infer_kind", "read_column"]

Kind = Literal["numeric", "categorical", "boolean", "text"]
KINDS: tuple[Kind, ...] = ("numeric", "categorical", "boolean", "text")

Floats = npt.NDArray[np.float64]
Flags = npt.NDArray[np.bool_]


def infer_kind(column: npt.NDArray[Any], boolean: bool, text_min_tokens: int = 4) -> Kind | None:
    """The kind a field's values in ``column`` make it; ``None`` while they are all missing.

    ``boolean``: the decoder marked the column as booleans (``Batch.booleans``).

    >>> infer_kind(np.array(["a b c d e", "f g h i"], dtype=object), boolean=False)
    'text'
    >>> infer_kind(np.array([np.nan]), boolean=False) is None
    True
    """
    if column.dtype.kind == "f":
        if np.isnan(column).all():
            return None
    elif column.dtype.kind not in "iub" and not pd.notna(column).any():
        return None
    if boolean or column.dtype.kind == "b":
        return "boolean"
    if column.dtype.kind in "iuf":
        return "numeric"
    present: list[Any] = column[pd.notna(column)].tolist()
    kinds = Counter(map(type, present))
    if 2 * (kinds[int] + kinds[float]) > len(present):
        return "numeric"
    if 2 * kinds[bool] > len(present):
        return "boolean"
    texts = as_texts(column)
    if mean_word_count(texts) >= text_min_tokens:
        return "text"
    return "categorical"


@dataclass(frozen=True, slots=True)
class ReadColumn:
    """A column read as one kind, row for row.

    ``numbers``: for a numeric field the valid values (NaN elsewhere), for a boolean one 1/0
    (NaN elsewhere); ``codes`` and ``texts``: for a categorical, text or boolean field each
    row's value as a code into ``texts`` (-1 where missing or invalid). ``missing``: no value;
    ``invalid``: a value of the wrong type; ``other``: a value of another kind than the
    field's (``invalid`` for numeric and boolean fields; numbers for categorical and text
    ones).
    """

    numbers: Floats | None
    codes: npt.NDArray[np.intp] | None
    texts: list[str]
    missing: Flags
    invalid: Flags
    other: Flags


def read_column(column: npt.NDArray[Any], kind: Kind, boolean: bool) -> ReadColumn:
    """``column`` (as the decoder makes it) read as a field of ``kind``."""
    n = len(column)
    none = np.zeros(n, dtype=bool)
    if kind == "numeric":
        if column.dtype.kind == "f":
            numbers = column.astype(np.float64, copy=False)
            missing = np.isnan(numbers)
            with np.errstate(invalid="ignore"):
                large = np.abs(numbers) > MAX_MAGNITUDE
            if large.any():
                numbers = np.where(large, np.nan, numbers)
                return ReadColumn(numbers, None, [], missing, large, large)
            return ReadColumn(numbers, None, [], missing, none, none)
        present = _present(column)
        numbers = as_numbers(column)  # NaN where missing, not a number, or not finite
        with np.errstate(invalid="ignore"):
            large = np.abs(numbers) > MAX_MAGNITUDE
        if large.any():
            numbers[large] = np.nan
        invalid = present & np.isnan(numbers)
        return ReadColumn(numbers, None, [], ~present, invalid, invalid)
    if kind == "boolean":
        present = _present(column)
        flags = as_flags(column, boolean=boolean)
        invalid = present & np.isnan(flags)
        codes = np.where(np.isnan(flags), -1, flags).astype(np.intp)
        return ReadColumn(flags, codes, ["false", "true"], ~present, invalid, invalid)
    codes, texts = factorize_strings(column, boolean=boolean)
    missing = codes < 0
    if column.dtype.kind in "iuf":
        other = ~missing
    elif column.dtype == object:
        other = _numbers_among(column)
    else:
        other = none
    return ReadColumn(None, codes, texts, missing, none, other)


def _present(column: npt.NDArray[Any]) -> Flags:
    if column.dtype.kind == "f":
        numbers: Flags = ~np.isnan(column)
        return numbers
    if column.dtype.kind in "iub":
        return np.ones(len(column), dtype=bool)
    present: Flags = np.asarray(pd.notna(column), dtype=bool)
    return present


def _numbers_among(column: npt.NDArray[Any]) -> Flags:
    """Rows holding a number (not a boolean) in an ``object`` column."""
    if pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty"):
        return np.zeros(len(column), dtype=bool)  # the usual case, told in one C pass
    codes, uniques = pd.factorize(column)
    values = uniques.tolist()
    if any(isinstance(v, bool) for v in values):  # True, 1 and 1.0 are one key to factorize
        return np.array([type(v) in (int, float) for v in column.tolist()], dtype=bool)
    table = np.array([*(type(v) in (int, float) for v in values), False], dtype=bool)
    return table[codes]  # type: ignore[no-any-return]
