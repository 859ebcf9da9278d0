"""streamfit.evaluation: prequential (test-then-train) model quality.

Each labeled batch is predicted first, then handed to an evaluator with its true labels, then
learned from. Evaluators keep cumulative figures and figures over the last ``window`` events,
save and restore their state with checkpoints, and merge across workers.

>>> import numpy as np
>>> ev = make_evaluator("classification", window=100)
>>> ev.update(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]), [0, 1])
>>> ev.snapshot()["accuracy"], ev.positive_label
(1.0, 1)
"""

from __future__ import annotations

from streamfit.evaluation.metrics import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    ClassificationEvaluator,
    Evaluator,
    RegressionEvaluator,
    make_evaluator,
)

__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "ClassificationEvaluator",
    "Evaluator",
    "RegressionEvaluator",
    "make_evaluator",
]
