"""Running count, mean and variance of a numeric field, updated a batch at a time.

A batch's own moments are computed with numpy, then combined with the running ones by the
parallel formula of Chan, Golub and LeVeque (1979), the batch form of Welford's update::

    n = na + nb
    delta = mean_b - mean_a
    mean = mean_a + delta * nb / n
    m2 = m2_a + m2_b + delta**2 * na * nb / n       (m2: sum of squared deviations)

The same formula merges the moments of two workers, so merging the statistics of two halves of
a stream gives those of the whole, up to rounding.

>>> import numpy as np
>>> m = Moments()
>>> m.update(np.array([1.0, 2.0, np.nan]))
>>> m.update(np.array([3.0, 4.0]))
>>> m.count, m.mean, m.variance
(4, 2.5, 1.25)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Moments"]


@dataclass(slots=True)
class Moments:
    """Count, mean and sum of squared deviations (``m2``) of the values seen.

    >>> a, b = Moments(), Moments()
    >>> a.update(np.array([1.0, 2.0])); b.update(np.array([3.0, 4.0]))
    >>> a.merge(b); (a.count, a.mean, a.m2)
    (4, 2.5, 5.0)
    """

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @property
    def variance(self) -> float:
        """Population variance (``m2 / count``); 0 before two values are seen."""
        return self.m2 / self.count if self.count > 1 else 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)

    def update(self, values: npt.NDArray[np.float64]) -> None:
        """Add a batch of values; NaN values are skipped."""
        present = values[~np.isnan(values)]
        if present.size == 0:
            return
        mean = float(present.mean())
        deviations = present - mean
        self._combine(int(present.size), mean, float((deviations * deviations).sum()))

    def merge(self, other: Moments) -> None:
        """Add the values another ``Moments`` has seen."""
        self._combine(other.count, other.mean, other.m2)

    def _combine(self, count: int, mean: float, m2: float) -> None:
        if count == 0:
            return
        if self.count == 0:
            self.count, self.mean, self.m2 = count, mean, m2
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean += delta * (count / total)
        self.m2 += m2 + delta * delta * (self.count * count / total)
        self.count = total
