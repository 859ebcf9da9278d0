"""The figures the lifecycle judges models by, computed as the training table computes them.

``score`` runs a fresh evaluator of ``streamfit.evaluation`` over some labeled rows and reads
one metric from it, so a gate's or a promotion rule's F1 is the F1 of the training table (the
same positive class, the same treatment of a row no class was predicted for).

>>> import numpy as np
>>> proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
>>> score("classification", "accuracy", np.array([0, 1, 1]), proba, [0, 1])
0.6666666666666666
>>> better("log_loss", 0.30, 0.35, margin=0.01), better("f1", 0.80, 0.795, margin=0.01)
(True, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfit.evaluation import ClassificationEvaluator, RegressionEvaluator

__all__ = ["LOWER_IS_BETTER", "better", "higher_is_better", "score"]

#: metrics where a smaller figure is the better one
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse"})


def higher_is_better(metric: str) -> bool:
    """Whether a larger ``metric`` is better (F1: yes; log loss: no)."""
    return metric not in LOWER_IS_BETTER


def better(metric: str, one: float | None, other: float | None, margin: float = 0.0) -> bool:
    """Whether ``one`` beats ``other`` on ``metric`` by more than ``margin``; an undefined
    figure never beats, and is beaten by any defined one."""
    if one is None:
        return False
    if other is None:
        return True
    if higher_is_better(metric):
        return one > other + margin
    return one < other - margin


def score(
    task: str,
    metric: str,
    labels: npt.NDArray[Any],
    predicted: npt.NDArray[np.float64],
    classes: Sequence[object] = (),
) -> float | None:
    """``metric`` over these rows: ``predicted`` is a classifier's ``(rows, classes)``
    probabilities or a regressor's values. ``None`` where it is undefined (no rows, ROC AUC
    with one class)."""
    n = len(labels)
    if n == 0:
        return None
    if task == "classification":
        evaluator = ClassificationEvaluator(window=n, auc_bins=1)
        evaluator.update(labels, predicted, list(classes))
    else:
        regression = RegressionEvaluator(window=n)
        regression.update(labels.astype(np.float64), predicted)
        snapshot = regression.snapshot()
        value = snapshot.get(f"window_{metric}")
        return None if value is None else float(value)
    value = evaluator.snapshot().get(f"window_{metric}")
    return None if value is None else float(value)
