"""One field's statistics over a span of events, on Apache DataSketches.

A ``FieldSketch`` holds, for one field: how many events had a valid value (``count``), none
(``missing``) or one of the wrong type (``invalid``); for a numeric field the exact minimum,
maximum, mean and variance (running moments, merged with Chan's formula) and a KLL sketch of
its values (quantiles and histograms, within the sketch's rank error: about 1.65% at the
default ``k`` of 200, ``kll_doubles_sketch.get_normalized_rank_error(200, False)``); for every
field an HLL sketch of its distinct values (within about 1.6% at ``lg_k`` 12) and a
frequent-items sketch of its most frequent values with their counts. Every part merges with
the same part of another ``FieldSketch`` of the same kind, so the sketches of two spans, or
of two workers, add up to those of both.

It is fed a batch at a time, vectorized: a column's values go to the KLL sketch as one
array; each batch's distinct values once to the HLL sketch (a number as the 64 bits of its
``float64``, a string as itself); and the values that repeat in the batch, at most
``top_per_batch`` of them with their counts, to the frequent-items sketch (all of a batch's
values when it has no more distinct ones than that). So a value that never repeats within a
batch is not counted as frequent: the top values of a continuous measurement are empty,
those of a field with few values exact.

>>> import numpy as np
>>> from streamfit.explore.kinds import read_column
>>> sketch = FieldSketch("numeric")
>>> sketch.add(read_column(np.array([1.0, 2.0, 2.0, np.nan]), "numeric", boolean=False))
0.6666666666666666
>>> sketch.count, sketch.missing, sketch.mean, sketch.distinct, sketch.top(2)
(3, 1, 1.6666666666666667, 2, [(2.0, 2), (1.0, 1)])
>>> copy = FieldSketch.from_parts(*sketch.parts())
>>> copy.merge(sketch); copy.count, copy.quantiles([0.5])
(6, [2.0])
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from datasketches import (
    frequent_items_error_type,
    frequent_strings_sketch,
    hll_sketch,
    hll_union,
    kll_doubles_sketch,
    tgt_hll_type,
)

from streamfit.errors import StateFormatError
from streamfit.explore.kinds import Kind, ReadColumn

__all__ = ["FieldSketch", "SketchSizes", "rank_error"]

Floats = npt.NDArray[np.float64]
_MAX_ITEM_CHARS = 200  # a top value is kept to its first 200 characters


@dataclass(frozen=True, slots=True)
class SketchSizes:
    """How large each sketch is: KLL ``k``, HLL ``lg_k``, log2 of the frequent-items map, and
    how many of a batch's repeated values go to the frequent-items sketch."""

    kll_k: int = 200
    hll_lg_k: int = 12
    items_lg_max: int = 7
    top_per_batch: int = 32


def rank_error(k: int = 200) -> float:
    """The KLL sketch's normalized rank error for ``k`` (99% confidence, one-sided).

    >>> round(rank_error(200), 4)
    0.0133
    """
    return float(kll_doubles_sketch.get_normalized_rank_error(k, False))


class FieldSketch:
    """One field's statistics over a span of events (see the module docstring)."""

    __slots__ = (
        "_distinct",
        "_frequent",
        "_quantiles",
        "count",
        "invalid",
        "kind",
        "m2",
        "maximum",
        "mean",
        "minimum",
        "missing",
        "sizes",
        "trues",
    )

    def __init__(self, kind: Kind, sizes: SketchSizes | None = None) -> None:
        self.kind: Kind = kind
        self.sizes = sizes or SketchSizes()
        self.count = self.missing = self.invalid = self.trues = 0
        self.mean = self.m2 = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf
        self._quantiles = kll_doubles_sketch(self.sizes.kll_k) if kind == "numeric" else None
        self._distinct = hll_sketch(self.sizes.hll_lg_k, tgt_hll_type.HLL_8)
        self._frequent = frequent_strings_sketch(self.sizes.items_lg_max)

    # -- updates --------------------------------------------------------------------------------

    def add(
        self, read: ReadColumn, start: int = 0, stop: int | None = None, distinct: bool = True
    ) -> float:
        """Add rows ``start:stop`` of a column read as this field's kind; return the share of
        their valid values that are distinct (1.0 when there are none).

        ``distinct=False`` (numeric fields): the values are not told apart first, which saves
        time on a continuous measurement (one whose values hardly ever repeat): they all go
        to the HLL sketch, none to the frequent items, and 1.0 is returned.
        """
        cut = slice(start, stop)
        self.missing += int(np.count_nonzero(read.missing[cut]))
        self.invalid += int(np.count_nonzero(read.invalid[cut]))
        if self.kind == "numeric":
            assert read.numbers is not None
            values = read.numbers[cut]
            return self._add_numbers(values[~np.isnan(values)], distinct)
        assert read.codes is not None
        codes = read.codes[cut]
        counts = np.bincount(codes[codes >= 0], minlength=len(read.texts))
        seen = np.flatnonzero(counts)
        if not len(seen):
            return 1.0
        total = int(counts.sum())
        self.count += total
        if self.kind == "boolean":
            self.trues += int(counts[1]) if len(counts) > 1 else 0
        texts = read.texts
        deque(map(self._distinct.update, [texts[i] for i in seen.tolist()]), 0)
        self._add_frequent([texts[i] for i in seen.tolist()], counts[seen])
        return len(seen) / total

    def _add_numbers(self, values: Floats, distinct: bool) -> float:
        n = len(values)
        if n == 0:
            return 1.0
        mean = float(values.mean())
        m2 = float(np.square(values - mean).sum())
        self._add_moments(n, mean, m2, float(values.min()), float(values.max()))
        assert self._quantiles is not None
        self._quantiles.update(values)
        if not distinct:
            bits = (values + 0.0).view(np.int64)  # + 0.0: -0.0 is 0.0
            deque(map(self._distinct.update, bits.tolist()), 0)
            return 1.0
        codes, uniques = pd.factorize(values)
        bits = (uniques + 0.0).view(np.int64)
        deque(map(self._distinct.update, bits.tolist()), 0)
        counts = np.bincount(codes, minlength=len(uniques))
        self._add_frequent(uniques, counts)
        return len(uniques) / n

    def _add_moments(self, n: int, mean: float, m2: float, low: float, high: float) -> None:
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.minimum = min(self.minimum, low)
        self.maximum = max(self.maximum, high)

    def _add_frequent(self, values: Any, counts: npt.NDArray[np.intp]) -> None:
        """The values that repeat (all of them when there are few), at most ``top_per_batch``
        of the most frequent, with their counts."""
        top = self.sizes.top_per_batch
        if len(counts) > top:
            repeated = np.flatnonzero(counts > 1)
            if len(repeated) > top:
                repeated = repeated[np.argpartition(-counts[repeated], top)[:top]]
            chosen = repeated
        else:
            chosen = np.arange(len(counts))
        if not len(chosen):
            return
        if self.kind == "numeric":
            items = [_number_text(v) for v in np.asarray(values)[chosen].tolist()]
        else:
            items = [values[i][:_MAX_ITEM_CHARS] for i in chosen.tolist()]
        deque(map(self._frequent.update, items, counts[chosen].tolist()), 0)

    def merge(self, other: FieldSketch) -> None:
        """Add ``other``'s statistics (a sketch of the same kind) to these."""
        if other.kind != self.kind:
            raise ValueError(f"cannot merge a {other.kind} field's sketch into a {self.kind} one")
        self.missing += other.missing
        self.invalid += other.invalid
        self.trues += other.trues
        if self.kind == "numeric":
            if other.count:
                self._add_moments(other.count, other.mean, other.m2, other.minimum, other.maximum)
            assert self._quantiles is not None and other._quantiles is not None
            self._quantiles.merge(other._quantiles)
        else:
            self.count += other.count
        union = hll_union(self.sizes.hll_lg_k)
        union.update(self._distinct)
        union.update(other._distinct)
        self._distinct = union.get_result(tgt_hll_type.HLL_8)
        self._frequent.merge(other._frequent)

    # -- figures --------------------------------------------------------------------------------

    @property
    def variance(self) -> float | None:
        """The population variance of the valid values (numeric fields; None before two)."""
        return self.m2 / self.count if self.kind == "numeric" and self.count > 1 else None

    @property
    def distinct(self) -> int:
        """The estimated number of distinct valid values."""
        return round(float(self._distinct.get_estimate()))

    def quantiles(self, ranks: list[float]) -> list[float] | None:
        """The values at these normalized ranks (numeric fields with values; else None)."""
        if self._quantiles is None or self._quantiles.is_empty():
            return None
        return [float(q) for q in self._quantiles.get_quantiles(ranks)]

    def histogram(self, bins: int) -> dict[str, list[float]] | None:
        """``bins`` equal-width bins from the minimum to the maximum: their edges and the
        (estimated) number of values in each (numeric fields with values; else None)."""
        if self._quantiles is None or self._quantiles.is_empty():
            return None
        low, high = self.minimum, self.maximum
        if not high > low:
            return {"edges": [low, high], "counts": [float(self.count)]}
        edges = np.linspace(low, high, bins + 1)
        masses = self._quantiles.get_pmf(edges[1:-1].tolist())
        counts = [round(m * self.count) for m in masses]
        return {"edges": edges.tolist(), "counts": [float(c) for c in counts]}

    def top(self, n: int) -> list[tuple[Any, int]]:
        """Up to ``n`` most frequent values with their estimated counts, most frequent
        first (a numeric field's as numbers); only values the sketch is sure are frequent."""
        items = self._frequent.get_frequent_items(frequent_items_error_type.NO_FALSE_POSITIVES)
        items = sorted(items, key=lambda item: (-item[1], item[0]))[:n]
        if self.kind == "numeric":
            return [(float(value), int(estimate)) for value, estimate, *_ in items]
        return [(value, int(estimate)) for value, estimate, *_ in items]

    # -- state ----------------------------------------------------------------------------------

    def parts(self) -> tuple[dict[str, Any], list[bytes]]:
        """Its scalars (JSON values) and its sketches' bytes: what ``from_parts`` reads."""
        scalars = {
            "kind": self.kind,
            "sizes": [self.sizes.kll_k, self.sizes.hll_lg_k, self.sizes.items_lg_max],
            "top_per_batch": self.sizes.top_per_batch,
            "counts": [self.count, self.missing, self.invalid, self.trues],
            "moments": [self.mean, self.m2],
            "range": [_finite_or_none(self.minimum), _finite_or_none(self.maximum)],
        }
        blobs = [
            b"" if self._quantiles is None else bytes(self._quantiles.serialize()),
            bytes(self._distinct.serialize_compact()),
            bytes(self._frequent.serialize()),
        ]
        return scalars, blobs

    @classmethod
    def from_parts(cls, scalars: dict[str, Any], blobs: list[bytes]) -> FieldSketch:
        """The sketch ``parts()`` described; ``StateFormatError`` if they do not describe one."""
        try:
            kll_k, lg_k, lg_items = (int(v) for v in scalars["sizes"])
            sizes = SketchSizes(kll_k, lg_k, lg_items, int(scalars["top_per_batch"]))
            sketch = cls(scalars["kind"], sizes)
            if sketch.kind not in ("numeric", "categorical", "boolean", "text"):
                raise ValueError(f"unknown kind {sketch.kind!r}")
            sketch.count, sketch.missing, sketch.invalid, sketch.trues = (
                int(v) for v in scalars["counts"]
            )
            sketch.mean, sketch.m2 = (float(v) for v in scalars["moments"])
            low, high = scalars["range"]
            sketch.minimum = math.inf if low is None else float(low)
            sketch.maximum = -math.inf if high is None else float(high)
            quantiles, distinct, frequent = blobs
            if sketch.kind == "numeric":
                sketch._quantiles = kll_doubles_sketch.deserialize(quantiles)
            sketch._distinct = hll_sketch.deserialize(distinct)
            sketch._frequent = frequent_strings_sketch.deserialize(frequent)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise StateFormatError(
                f"field statistics: a field's sketches are invalid: {exc}"
            ) from exc
        return sketch

    def copy(self) -> FieldSketch:
        return FieldSketch.from_parts(*self.parts())


def _number_text(value: float) -> str:
    """A number as JSON writes it (``1.0`` as ``1``)."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
