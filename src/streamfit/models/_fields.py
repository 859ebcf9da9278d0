"""Event fields as the typed columns a pretrained model takes, with the missing-value rule.

A pretrained model reads named fields of the events (the batch's columns), not streamfit's
hashed features. ``numbers``, ``integers``, ``texts`` and ``flags`` turn one column of a
batch (``float64`` with NaN for missing, or ``object`` with ``None``) into what a model
input of that type takes. A missing value (the field absent from the event, null, or a text
where a number is wanted) becomes the field's ``fill_missing`` value when the spec gives one,
else NaN for a number, 0 for an integer, ``""`` for a text and False for a flag. Numbers
as text read as they print: ``3.0`` is ``"3"``.

>>> numbers(np.array(["2.5", None, "x", 4], dtype=object), None).tolist()
[2.5, nan, nan, 4.0]
>>> texts(np.array([3.0, np.nan, 2.5]), "?").tolist()
['3', '?', '2.5']
>>> integers(np.array([1.0, np.nan]), None).tolist()
[1, 0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["flags", "integers", "numbers", "text_of", "texts"]


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return float("nan") if value is None else float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return float("nan")


def numbers(column: npt.NDArray[Any] | None, fill: Any, n: int = 0) -> npt.NDArray[np.float64]:
    """A column as float64, missing values filled (NaN by default)."""
    if column is None:
        out = np.full(n, np.nan)
    elif column.dtype.kind == "f":
        out = column.astype(np.float64, copy=True)
    else:
        out = np.fromiter((_number(v) for v in column.tolist()), np.float64, len(column))
    if fill is not None:
        out[np.isnan(out)] = float(fill)
    return out


def integers(column: npt.NDArray[Any] | None, fill: Any, n: int = 0) -> npt.NDArray[np.int64]:
    """A column as int64, missing values filled (0 by default)."""
    values = numbers(column, 0 if fill is None else fill, n)
    values[~np.isfinite(values)] = 0
    return values.astype(np.int64)


def flags(column: npt.NDArray[Any] | None, fill: Any, n: int = 0) -> npt.NDArray[np.bool_]:
    """A column as booleans, missing values filled (False by default)."""
    values = numbers(column, 0 if fill is None else float(bool(fill)), n)
    return np.asarray(np.nan_to_num(values) != 0, dtype=np.bool_)


def text_of(value: Any) -> str | None:
    """A value as the text a model was trained on; None for a missing one."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        number = float(value)
        if number != number:
            return None
        if number.is_integer() and abs(number) < 2**63:
            return str(int(number))
        return repr(number)
    return str(value)


def texts(column: npt.NDArray[Any] | None, fill: Any, n: int = 0) -> npt.NDArray[np.object_]:
    """A column as texts (an object array of ``str``), missing values filled ("")."""
    default = "" if fill is None else str(fill)
    if column is None:
        return np.full(n, default, dtype=object)
    out = np.empty(len(column), dtype=object)
    if column.dtype == object and all(type(v) is str for v in column.tolist()):
        out[:] = column
        return out
    out[:] = [default if (t := text_of(v)) is None else t for v in column.tolist()]
    return out
