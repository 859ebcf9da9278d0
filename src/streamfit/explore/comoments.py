"""Mergeable co-moments of numeric fields: their covariances and correlations, pairwise.

(The matrix products run on one BLAS thread: they are small, and BLAS threads that wait
for a core on a busy machine cost a hundred times the product itself.)


For every pair of fields ``(i, j)`` it keeps, over the events that have both: their number,
the mean of each, each one's sum of squared deviations and the sum of the products of their
deviations. A batch adds its own co-moments (centered on the batch's means, in four matrix
products over the batch, no loop over events), merged in with Chan's formula; two
``CoMoments`` over the same fields merge the same way, so those of two spans or two workers
add up to the co-moments of both, exactly up to rounding. A missing value leaves the event
out of the pairs of its field only (pairwise deletion).

Fields are added as they come, up to ``capacity`` of them (the matrices are
``capacity`` x ``capacity`` at most): past it, further numeric fields have no correlations.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=1000)
>>> values = np.column_stack([x, 2 * x + rng.normal(scale=0.1, size=1000), rng.normal(size=1000)])
>>> a, b = CoMoments(["x", "y", "z"]), CoMoments(["x", "y", "z"])
>>> a.add(values[:600]); b.add(values[600:])
>>> a.merge(b)
>>> bool(np.allclose(a.correlation(), np.corrcoef(values.T)))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["CoMoments"]

Floats = npt.NDArray[np.float64]
_BLAS: list[Any] = []  # the process's threadpoolctl controller, made on first use


def _one_blas_thread() -> Any:
    if not _BLAS:
        from threadpoolctl import ThreadpoolController

        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


class CoMoments:
    """Pairwise co-moments of numeric fields (see the module docstring)."""

    __slots__ = ("c", "fields", "m2", "mean", "n")

    def __init__(self, fields: Sequence[str] = ()) -> None:
        self.fields: list[str] = list(fields)
        k = len(self.fields)
        self.n: Floats = np.zeros((k, k))
        self.mean: Floats = np.zeros((k, k))  # mean[i, j]: of field i, over events with j
        self.m2: Floats = np.zeros((k, k))  # m2[i, j]: field i's, over events with j
        self.c: Floats = np.zeros((k, k))  # c[i, j]: sum of products of deviations

    def add_fields(self, names: Sequence[str]) -> None:
        """New fields (with no values yet): their rows and columns."""
        if not names:
            return
        self.fields.extend(names)
        k = len(self.fields)
        for part in ("n", "mean", "m2", "c"):
            old = getattr(self, part)
            grown = np.zeros((k, k))
            grown[: old.shape[0], : old.shape[1]] = old
            setattr(self, part, grown)

    def reset_field(self, name: str) -> None:
        """Forget ``name``'s values (its type changed): its pairs start again."""
        i = self.fields.index(name)
        for matrix in (self.n, self.mean, self.m2, self.c):
            matrix[i, :] = 0.0
            matrix[:, i] = 0.0

    def add(self, values: Floats) -> None:
        """Add a batch: ``(rows, fields)`` values in ``fields`` order, NaN where missing
        (fewer columns than fields: the last fields are missing)."""
        rows, k = values.shape
        if rows == 0 or k == 0:
            return
        with _one_blas_thread():
            self._add(values, rows, k)

    def _add(self, values: Floats, rows: int, k: int) -> None:
        present = ~np.isnan(values)
        if present.all():  # the usual case: every event has every field
            centre = values.mean(axis=0)
            deviations = values - centre
            products = deviations.T @ deviations
            n = np.full((k, k), float(rows))
            mean = np.broadcast_to(centre[:, None], (k, k))
            m2 = np.broadcast_to(np.diag(products)[:, None], (k, k))
            self._merge(n, mean, m2, products, k)
            return
        counts = present.sum(axis=0)
        centre = np.divide(
            np.where(present, values, 0.0).sum(axis=0),
            counts,
            out=np.zeros(k),
            where=counts > 0,
        )
        deviations = np.where(present, values - centre, 0.0)
        mask = present.astype(np.float64)
        n = mask.T @ mask
        sums = deviations.T @ mask  # sums[i, j]: of i's deviations, over events with j
        squares = (deviations * deviations).T @ mask
        products = deviations.T @ deviations
        with np.errstate(invalid="ignore", divide="ignore"):
            shift = np.where(n > 0, sums / n, 0.0)
        mean = shift + centre[:, None]
        m2 = squares - n * shift * shift
        c = products - n * shift * shift.T
        self._merge(n, mean, m2, c, k)

    def merge(self, other: CoMoments) -> None:
        """Add ``other``'s co-moments (its fields are matched by name; new ones added)."""
        self.add_fields([name for name in other.fields if name not in self.fields])
        index = np.array([self.fields.index(name) for name in other.fields], dtype=np.intp)
        k = len(self.fields)
        n, mean, m2, c = (np.zeros((k, k)) for _ in range(4))
        for full, matrix in zip(
            (n, mean, m2, c), (other.n, other.mean, other.m2, other.c), strict=True
        ):
            full[np.ix_(index, index)] = matrix
        self._merge(n, mean, m2, c, k)

    def _merge(self, n: Floats, mean: Floats, m2: Floats, c: Floats, k: int) -> None:
        """Chan's parallel update of the leading ``k`` x ``k`` block."""
        na, ma = self.n[:k, :k], self.mean[:k, :k]
        total = na + n
        with np.errstate(invalid="ignore", divide="ignore"):
            weight = np.where(total > 0, na * n / total, 0.0)
            share = np.where(total > 0, n / total, 0.0)
        delta = mean - ma
        self.mean[:k, :k] = ma + delta * share
        self.m2[:k, :k] += m2 + delta * delta * weight
        self.c[:k, :k] += c + delta * delta.T * weight
        self.n[:k, :k] = total

    def correlation(self) -> Floats:
        """Pearson correlations, ``(fields, fields)``; NaN where a pair has no spread."""
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = np.sqrt(self.m2)  # not sqrt(m2 * m2.T): that overflows from 1e77
            out: Floats = self.c / (spread * spread.T)
        out[~np.isfinite(out)] = np.nan
        return out

    def covariance(self) -> Floats:
        """Population covariances, ``(fields, fields)``; NaN where a pair has no events."""
        with np.errstate(invalid="ignore", divide="ignore"):
            out: Floats = np.where(self.n > 0, self.c / self.n, np.nan)
        return out

    def copy(self) -> CoMoments:
        other = CoMoments()
        other.fields = list(self.fields)
        other.n, other.mean, other.m2, other.c = (
            m.copy() for m in (self.n, self.mean, self.m2, self.c)
        )
        return other
