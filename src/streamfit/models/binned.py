"""A built-in nonlinear classifier: logistic regression over binned features and their crosses.

Each row is expanded before the linear model sees it (``_kernels.expand_binned``, compiled):

* the row's own entries (the linear part);
* for each entry, indicators of the bins its value falls in (``bins`` equal bins over
  ``[-5, 5]``, the range the featurizer clips standardized numbers to, in ``tilings`` grids
  each shifted by a fraction of a bin): a piecewise-constant function of every numeric field,
  learned per bin, so thresholds and non-monotone effects that a linear model cannot draw;
* for a row of at most ``cross_limit`` entries, an indicator for each pair of entries and
  their coarse bins (``cross_bins`` bins): pairwise interactions, as a tree's nested splits
  would find them.

Indicators are hashed into the same ``n_features`` columns as the features. The model is then
``LogisticRegression`` over the expanded rows: the same per-event AdaGrad loop, classes,
versioned state (with its own model name and parameters) and merging. Why this learner and its
settings (measured against River's trees and forests on the shared streams): ``bench/README.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from streamfit.models._kernels import expand_binned
from streamfit.models.linear import LogisticRegression, _check_int

__all__ = ["BinnedLogisticRegression"]

_LOW, _HIGH = -5.0, 5.0


class BinnedLogisticRegression(LogisticRegression):
    """Logistic regression over each row's features, their bins and crosses of their bins.

    Parameters
    ----------
    learning_rate, intercept_lr, l2, n_features
        As ``LogisticRegression``.
    bins
        Bins per feature value over ``[-5, 5]``.
    cross_limit
        Rows with at most this many entries also get their pairwise crosses (0: none).
    cross_bins
        Bins per value in a cross.
    tilings
        Grids of bins per value, each moved by ``1 / tilings`` of a bin (tile coding): steps
        ``tilings`` times finer than one grid's, while each bin still learns from as many
        events. Each indicator is worth ``1 / tilings``, so the grids together weigh as one.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> rng = np.random.default_rng(0)
    >>> x = rng.uniform(-3, 3, size=4000)
    >>> y = np.where(np.abs(x) < 1, "in", "out")  # no linear model separates these
    >>> X = sp.csr_matrix((x, (np.arange(4000), np.zeros(4000, int))), shape=(4000, 1024))
    >>> model = BinnedLogisticRegression()
    >>> proba = model.predict_learn_many(X, y)
    >>> accuracy = (np.array(model.classes)[proba[2000:].argmax(axis=1)] == y[2000:]).mean()
    >>> bool(accuracy > 0.9)
    True
    >>> BinnedLogisticRegression.from_state(model.state()).state() == model.state()
    True
    """

    _state_name = "builtin.BinnedLogisticRegression"

    def __init__(
        self,
        learning_rate: float = 0.5,
        intercept_lr: float = 0.3,
        l2: float = 0.0,
        bins: int = 16,
        cross_limit: int = 0,
        cross_bins: int = 4,
        tilings: int = 3,
        n_features: int | None = None,
    ) -> None:
        super().__init__(learning_rate, intercept_lr, l2, n_features)
        self.bins = _check_int("bins", bins, low=1) or 1
        self.cross_limit = _check_int("cross_limit", cross_limit, low=0) or 0
        self.cross_bins = _check_int("cross_bins", cross_bins, low=1) or 1
        self.tilings = _check_int("tilings", tilings, low=1) or 1

    @property
    def params(self) -> dict[str, Any]:
        """The constructor arguments (the whole configuration)."""
        return {
            **super().params,
            "bins": self.bins,
            "cross_limit": self.cross_limit,
            "cross_bins": self.cross_bins,
            "tilings": self.tilings,
        }

    def _check_X(self, X: object) -> sp.csr_matrix:
        rows = super()._check_X(X)
        indptr, indices, data = expand_binned(
            rows.indptr,
            rows.indices,
            np.asarray(rows.data, dtype=np.float64),
            rows.shape[1],
            self.bins,
            _LOW,
            _HIGH,
            self.cross_limit,
            self.cross_bins,
            self.tilings,
        )
        return sp.csr_matrix((data, indices, indptr), shape=rows.shape)
