"""Where an anomaly score stands among the recent ones, and when it raises an alarm.

``ScoreQuantiles`` keeps the scores of the last ``window`` events in Apache DataSketches'
REQ sketches (relative-error quantiles, accurate at the high ranks where alarms are: within
about 1% of ``1 - rank`` at the default ``k``, so a score at the 99.9th percentile is told from
one at the 99th), in 4 slices of ``window / 4`` events, the oldest dropped as a new one
fills (a tumbling window: between 3/4 of ``window`` and ``window`` scores). For each scored
event (``rank_then_add``):

- ``score_quantile``: the share of the recent scores, those before its batch, below its
  score (NaN before any score: the first batch of a stream has none);
- ``is_anomaly``: its ``score_quantile`` above ``alarm_quantile`` (default 0.99), or, with
  ``alarm_score`` set, its score above that fixed threshold.

``quantiles`` gives the recent scores' quantiles (the training table's ``score_p50`` ...
``score_p99_9``). Merging adds another worker's slices; the state is a versioned blob in the
envelope of ``streamfit._envelope``. REQ sketches compact at random: ranks are exact while
a slice holds few scores, and within the sketch's error after.

>>> import numpy as np
>>> quantiles = ScoreQuantiles(window=1000)
>>> _ = quantiles.rank_then_add(np.arange(500.0))
>>> ranks, alarms = quantiles.rank_then_add(np.array([100.0, 499.0, 600.0]))
>>> ranks.round(3).tolist(), alarms.tolist()
([0.2, 0.998, 1.0], [False, True, True])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import orjson
from datasketches import req_floats_sketch

from streamfit._envelope import pack_arrays, seal, unpack_arrays, unseal
from streamfit.errors import StateFormatError

__all__ = ["SCORE_QUANTILES", "ScoreQuantiles"]

#: The recent scores' quantiles the training table reports: p50, p90, p99, p99.9.
SCORE_QUANTILES = (0.5, 0.9, 0.99, 0.999)

Floats = npt.NDArray[np.float64]
_SLICES = 4
_MAGIC = b"SFSCORES"
_VERSION = 1
_WHAT = "score quantiles"


class ScoreQuantiles:
    """Ranks of scores among the recent ones, and alarms (see the module docstring)."""

    def __init__(
        self,
        window: int = 10_000,
        alarm_quantile: float = 0.99,
        alarm_score: float | None = None,
        k: int = 12,
    ) -> None:
        if window < _SLICES:
            raise ValueError(f"window must be at least {_SLICES} scores, got {window}")
        if not 0.0 < alarm_quantile < 1.0:
            raise ValueError(f"alarm_quantile is between 0 and 1, got {alarm_quantile}")
        self.window = window
        self.alarm_quantile = alarm_quantile
        self.alarm_score = alarm_score
        self.k = k
        self.slice_scores = math.ceil(window / _SLICES)
        self._slices: list[req_floats_sketch] = [req_floats_sketch(k, True)]

    @property
    def scores(self) -> int:
        """Scores in the window."""
        return sum(s.n for s in self._slices)

    def ranks(self, scores: Floats) -> Floats:
        """Each score's share of the recent scores below it (NaN when there are none)."""
        total = self.scores
        if total == 0 or not len(scores):
            return np.full(len(scores), np.nan)
        values = np.asarray(scores, dtype=np.float32).astype(np.float64)
        finite = np.isfinite(values)
        distinct, inverse = np.unique(values[finite], return_inverse=True)
        below = np.zeros(len(distinct))
        if len(distinct):
            points = distinct.tolist()
            for sketch in self._slices:
                if sketch.n:
                    below += sketch.n * np.asarray(sketch.get_cdf(points, False))[:-1]
        out = np.full(len(scores), np.nan)
        out[finite] = (below / total)[inverse]
        return out

    def alarms(self, scores: Floats, ranks: Floats) -> npt.NDArray[np.bool_]:
        """Which scores raise an alarm (see the module docstring)."""
        if self.alarm_score is not None:
            return np.asarray(scores > self.alarm_score, dtype=bool)
        with np.errstate(invalid="ignore"):
            return np.asarray(ranks > self.alarm_quantile, dtype=bool)

    def add(self, scores: Floats) -> None:
        """Add scores to the window (non-finite ones are left out)."""
        values = np.asarray(scores, dtype=np.float64)
        values = values[np.isfinite(values)].astype(np.float32)
        start = 0
        while start < len(values):
            current = self._slices[-1]
            room = self.slice_scores - current.n
            current.update(values[start : start + room])
            start += room
            if current.n >= self.slice_scores:
                self._slices.append(req_floats_sketch(self.k, True))
                del self._slices[:-_SLICES]

    def rank_then_add(self, scores: Floats) -> tuple[Floats, npt.NDArray[np.bool_]]:
        """Each score's rank among the recent scores and its alarm; then add the scores."""
        ranks = self.ranks(scores)
        alarms = self.alarms(scores, ranks)
        self.add(scores)
        return ranks, alarms

    def quantiles(self, ranks: Sequence[float] = SCORE_QUANTILES) -> list[float] | None:
        """The recent scores at these ranks (None before any score)."""
        merged = self._merged()
        if merged.is_empty():
            return None
        return [float(v) for v in merged.get_quantiles(list(ranks))]

    def _merged(self) -> req_floats_sketch:
        merged = req_floats_sketch(self.k, True)
        for sketch in self._slices:
            if sketch.n:
                merged.merge(sketch)
        return merged

    def merge(self, other: ScoreQuantiles) -> None:
        """Add ``other``'s recent scores to these (slice by slice, the newest together)."""
        for mine, theirs in zip(reversed(self._slices), reversed(other._slices), strict=False):
            if theirs.n:
                mine.merge(theirs)

    def state(self) -> bytes:
        blobs = {
            f"slice{i}": np.frombuffer(s.serialize(), np.uint8) for i, s in enumerate(self._slices)
        }
        entries, chunks = pack_arrays(blobs, _WHAT)
        header = orjson.dumps(
            {
                "window": self.window,
                "alarm_quantile": self.alarm_quantile,
                "alarm_score": self.alarm_score,
                "k": self.k,
                "arrays": entries,
            }
        )
        return seal(_MAGIC, _VERSION, header, *chunks)

    @classmethod
    def from_state(cls, blob: bytes) -> ScoreQuantiles:
        opened = unseal(blob, _MAGIC, _VERSION, _WHAT)
        header = opened.header
        arrays = unpack_arrays(opened.payload, header.get("arrays"), _WHAT)
        try:
            out = cls(
                int(header["window"]),
                float(header["alarm_quantile"]),
                None if header["alarm_score"] is None else float(header["alarm_score"]),
                int(header["k"]),
            )
            slices = [
                req_floats_sketch.deserialize(arrays[f"slice{i}"].tobytes())
                for i in range(len(arrays))
            ]
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise StateFormatError(f"{_WHAT}: invalid: {exc}") from exc
        if not slices:
            raise StateFormatError(f"{_WHAT}: no slices")
        out._slices = slices
        return out
