"""One of River's drift detectors over one stream of numbers, and what each alarm reports.

A ``Watch`` feeds a stream (a model's errors, a field's values) to ``river.drift.ADWIN``,
``PageHinkley`` or ``KSWIN``, one value at a time, in the order given: River's detectors are
per-event Python (ADWIN's core is compiled; KSWIN runs a Kolmogorov-Smirnov test at every
value and costs about a thousand times more, see ``bench/README.md``). Values that are not
finite (a missing field, a row without a prediction) are skipped. Each alarm reports where
it happened in the values given, how many values the watch had seen then, the detector's
own figure (``statistic``), the mean of the values since the previous alarm (``mean_before``)
and which way the stream moved (``direction``, ``up`` or ``down``):

============  ==========================================================================
detector      ``statistic``
============  ==========================================================================
adwin         the mean of ADWIN's window just after the cut (the new level)
page_hinkley  the cumulative deviation that crossed ``threshold``
kswin         the Kolmogorov-Smirnov test's p-value
============  ==========================================================================

State: River detectors have no serialized form of their own, so the detector is pickled in
the envelope (``streamfit._envelope``, magic ``SFDR``), with a JSON header naming the
detector, its parameters, the River version (major.minor; another one is refused, as for
River models) and the watch's counters.

>>> import numpy as np
>>> watch = Watch("adwin", {"delta": 0.002})
>>> stream = np.r_[np.zeros(2000), np.ones(500)]  # the level jumps at value 2000
>>> alarms = watch.update_many(stream)
>>> [(a.index >= 2000, a.direction) for a in alarms][:1]
[(True, 'up')]
>>> restored = Watch.from_state(watch.state())
>>> restored.seen == watch.seen == 2500
True
"""

from __future__ import annotations

import functools
import json
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfit._envelope import seal, unseal
from streamfit.errors import StateFormatError

__all__ = ["Alarm", "Watch"]

_MAGIC = b"SFDR"
_VERSION = 1


@dataclass(frozen=True, slots=True)
class Alarm:
    """A drift found at ``index`` of the values given to ``Watch.update_many``."""

    index: int
    seen: int  # values the watch had seen, this one included
    statistic: float | None
    mean_before: float | None
    direction: str


@functools.cache
def _river_version() -> str:
    from importlib.metadata import version

    return ".".join(version("river").split(".")[:2])


def _build(detector: str, params: dict[str, Any]) -> Any:
    from river import drift

    kind: dict[str, Any] = {
        "adwin": drift.ADWIN,
        "page_hinkley": drift.PageHinkley,
        "kswin": drift.KSWIN,
    }
    return kind[detector](**params)


class Watch:
    """A River drift detector over one stream (see the module docstring)."""

    def __init__(self, detector: str, params: dict[str, Any]) -> None:
        self.detector = detector
        self.params = dict(params)
        self.river = _build(detector, self.params)
        self.seen = 0  # finite values fed
        self._sum = 0.0  # of the values since the last alarm
        self._count = 0

    def update_many(self, values: npt.NDArray[np.float64]) -> list[Alarm]:
        """Feed ``values`` in order; the alarms they raised."""
        values = np.asarray(values, dtype=np.float64)
        finite = np.flatnonzero(np.isfinite(values))
        if not len(finite):
            return []
        kept = values[finite]
        river = self.river
        update = river.update
        found: list[tuple[int, float | None, float | None]] = []  # position in ``kept``, ...
        for i, x in enumerate(kept.tolist()):
            update(x)
            if river.drift_detected:
                found.append((i, *self._figures()))
        alarms: list[Alarm] = []
        sums = np.cumsum(kept)
        start = 0  # the first value of ``kept`` after the last alarm
        for i, statistic, level in found:
            total = self._sum + float(sums[i] - (sums[start - 1] if start else 0.0))
            count = self._count + (i - start + 1)
            mean_before = total / count
            direction = "up" if level is None or level >= mean_before else "down"
            alarms.append(
                Alarm(int(finite[i]), self.seen + i + 1, statistic, mean_before, direction)
            )
            self._sum, self._count, start = 0.0, 0, i + 1
        if start < len(kept):
            self._sum += float(sums[-1] - (sums[start - 1] if start else 0.0))
            self._count += len(kept) - start
        self.seen += len(kept)
        return alarms

    def _figures(self) -> tuple[float | None, float | None]:
        """Right after an alarm: the detector's ``statistic``, and the level of the stream
        now, which ``direction`` compares with the mean before (``None``: the detector
        says the direction itself: ``statistic`` >= 0 for up)."""
        river = self.river
        if self.detector == "adwin":
            return float(river.estimation), float(river.estimation)
        if self.detector == "page_hinkley":
            up = float(river._sum_increase - river._min_increase)
            down = float(river._max_decrease - river._sum_decrease)
            return max(up, down), (np.inf if up >= down else -np.inf)
        recent = list(river.window)  # KSWIN keeps the most recent values after an alarm
        return float(river.p_value), float(np.mean(recent)) if recent else None

    # -- state

    def state(self) -> bytes:
        """The watch as a blob (see the module docstring)."""
        header = {
            "detector": self.detector,
            "params": self.params,
            "river": _river_version(),
            "seen": self.seen,
            "sum": self._sum,
            "count": self._count,
        }
        text = json.dumps(header, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return seal(_MAGIC, _VERSION, text.encode(), pickle.dumps(self.river, protocol=5))

    @classmethod
    def from_state(cls, blob: bytes) -> Watch:
        """The watch ``state()`` wrote; ``StateFormatError`` if ``blob`` is not one, or was
        written with another River version."""
        opened = unseal(blob, _MAGIC, _VERSION, "drift detector state")
        header = opened.header
        try:
            if header["river"] != _river_version():
                raise StateFormatError(
                    f"drift detector state: written with River {header['river']}, "
                    f"this is {_river_version()}"
                )
            watch = cls.__new__(cls)
            watch.detector = str(header["detector"])
            watch.params = dict(header["params"])
            watch.seen = int(header["seen"])
            watch._sum = float(header["sum"])
            watch._count = int(header["count"])
            watch.river = pickle.loads(opened.payload)
        except StateFormatError:
            raise
        except Exception as exc:
            raise StateFormatError(f"drift detector state: {exc!r}") from exc
        return watch
