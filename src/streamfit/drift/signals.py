"""What a model's drift detector watches: one number per labeled event, from its prediction.

For a classifier, the 0/1 error: 1 where the class it predicted (the most probable one)
is not the label; an event it had no prediction for yet (no class seen) is no value (NaN,
skipped). For a regressor, the absolute error ``|label - prediction|`` (less swayed by one
wild label than the squared error, which ADWIN would read as a change). Anomaly detectors
have no labels: their score stream is watched as it is.

>>> import numpy as np
>>> labels = np.array(["a", "b", "b"], dtype=object)
>>> predicted = np.array([[0.9, 0.1], [0.8, 0.2], [0.0, 0.0]])
>>> error_stream("classification", labels, predicted, ["a", "b"]).tolist()
[0.0, 1.0, nan]
>>> error_stream("regression", np.array([1.0, 2.0]), np.array([1.5, 2.0]), []).tolist()
[0.5, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["error_stream"]


def error_stream(
    task: str, labels: npt.NDArray[Any], predicted: npt.NDArray[Any], classes: Sequence[object]
) -> npt.NDArray[np.float64]:
    """The numbers a model's detector is fed for one block (module docstring)."""
    n = len(labels)
    if task != "classification":
        truth = np.asarray(labels, dtype=np.float64)
        return np.abs(truth - np.asarray(predicted, dtype=np.float64).reshape(n))
    proba = np.asarray(predicted, dtype=np.float64)
    out = np.full(n, np.nan)
    if proba.ndim != 2 or proba.shape[1] == 0 or not n:
        return out
    column = {_label_key(c): i for i, c in enumerate(classes)}
    truth = np.array([column.get(_label_key(y), -1) for y in labels.tolist()], dtype=np.int64)
    best = proba.argmax(axis=1)
    has = proba.sum(axis=1) > 0
    out[has] = (best[has] != truth[has]).astype(np.float64)
    return out


def _label_key(value: object) -> object:
    """Labels and classes compared as the store writes them (1, 1.0 and True alike)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
