"""Running count, mean and variance of numeric fields.

``standardize_running`` is what the featurizer learns with: Welford's update, one value at a
time in stream order, each value standardized with the moments that include it (as River's
``StandardScaler`` learns an event before transforming it), a wild value kept from spoiling
them (see ``standardize_running``). It is a compiled loop (numba):
per-event moments are sequential, and updating them one value at a time is what makes the
result the same, bit for bit, however the stream is cut into blocks.

``Moments`` below holds one field's moments; it is updated a batch at a time.

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

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["REACH", "WARM_UP", "Moments", "standardize_running"]

#: standard deviations from the mean a value may move the running moments by, at most
REACH = 10.0
#: values learned as they are before any is winsorized
WARM_UP = 30


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _standardize_running(
    values: np.ndarray,
    count: np.ndarray,
    mean: np.ndarray,
    m2: np.ndarray,
    clip: float,
    reach: float,
    warm: np.ndarray,
) -> np.ndarray:
    k, n = values.shape
    warm_up = warm.shape[1]
    out = np.empty((k, n))
    for f in range(k):
        c = count[f]
        mu = mean[f]
        s = m2[f]
        for i in range(n):
            x = values[f, i]
            if x != x:  # missing
                out[f, i] = np.nan
                continue
            learned = x
            if c >= warm_up and s > 0.0:  # an outlier moves the moments by ``reach`` std at most
                bound = reach * math.sqrt(s / c)
                learned = min(max(x, mu - bound), mu + bound)
            c += 1
            delta = learned - mu
            mu += delta / c
            s += delta * (learned - mu)
            if c <= warm_up:
                warm[f, c - 1] = x
                if c == warm_up:
                    mu, s = _robust_start(warm[f], reach, mu, s)
            z = 0.0
            if c > 1 and s > 0.0:
                z = (x - mu) / math.sqrt(s / c)
                z = min(max(z, -clip), clip)
            out[f, i] = z
        count[f] = c
        mean[f] = mu
        m2[f] = s
    return out


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _robust_start(first: np.ndarray, reach: float, mean: float, m2: float) -> tuple[float, float]:
    """The moments of the first values winsorized to ``reach`` robust deviations (1.4826 x
    the median absolute deviation, else 1.2533 x the mean one) of their median; ``mean`` and
    ``m2`` as they are when fewer than half of them are known (state from before the buffer)."""
    present = first[~np.isnan(first)]
    if present.size * 2 < first.size:
        return mean, m2
    median = np.median(present)
    deviations = np.abs(present - median)
    scale = 1.4826 * np.median(deviations)
    if scale == 0.0:
        scale = 1.2533 * deviations.mean()
    bounded = np.minimum(np.maximum(present, median - reach * scale), median + reach * scale)
    centre = bounded.mean()
    spread = bounded - centre
    return centre, float((spread * spread).sum()) * (first.size / present.size)


def standardize_running(
    values: npt.NDArray[np.float64],
    count: npt.NDArray[np.int64],
    mean: npt.NDArray[np.float64],
    m2: npt.NDArray[np.float64],
    clip: float,
    first: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]:
    """Learn ``values`` (``(fields, rows)``, NaN missing) into the moments, row after row, in
    place; return each value standardized with the moments just after it was learned:
    ``(x - mean) / std`` clipped to ``[-clip, clip]``, 0 while the std is 0, NaN for NaN.

    One wild value (a sensor's 1e6 among values near 1) must not blow up the mean and
    deviation that every later value of the field is scaled by, whenever it comes:

    * ``first`` (``(fields, WARM_UP)``, NaN where not seen yet; updated in place) keeps each
      field's first ``WARM_UP`` values. When the last of them is learned, the moments start
      over from them winsorized to ``REACH`` robust deviations of their median (median
      absolute deviation), so a wild value among them weighs as a large one, not as itself.
    * After that, a value enters the moments winsorized to ``REACH`` standard deviations of
      the mean. A field whose values really move still moves its moments, ``REACH``
      deviations at a time.

    >>> count, mean, m2 = np.zeros(1, np.int64), np.zeros(1), np.zeros(1)
    >>> standardize_running(np.array([[30.0, 50.0, np.nan]]), count, mean, m2, 5.0).tolist()
    [[0.0, 1.0, nan]]
    >>> count.tolist(), mean.tolist(), m2.tolist()
    ([2], [40.0], [200.0])
    >>> wild = np.r_[1e12, np.random.default_rng(0).normal(size=WARM_UP - 1)][None, :]
    >>> count, mean, m2 = np.zeros(1, np.int64), np.zeros(1), np.zeros(1)
    >>> _ = standardize_running(wild, count, mean, m2, 5.0, np.full((1, WARM_UP), np.nan))
    >>> bool(abs(mean[0]) < 1 and m2[0] / count[0] < 3)
    True
    """
    if first is None:
        first = np.full((len(count), WARM_UP), np.nan)
    out: npt.NDArray[np.float64] = _standardize_running(
        np.ascontiguousarray(values, dtype=np.float64), count, mean, m2, clip, REACH, first
    )
    return out


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
