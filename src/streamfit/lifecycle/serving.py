"""A/B serving: each scored event is served by one model, chosen by a hash of its key.

``ServingSplit(split)`` gives each model of ``split`` its share of the events. An event's
key (the spec's ``key`` field, else its Kafka key) hashes to a number in [0, 1), the same
every time and on every worker, so a key is always served by the same model (sticky); an
event without a key hashes its partition and offset instead. The shares cut [0, 1) in the
order of ``split``.

>>> split = ServingSplit({"gbm": 0.5, "logistic": 0.5})
>>> keys = [b"user-1", b"user-2", b"user-1", None]
>>> arms = split.assign(keys, np.zeros(4, np.int64), np.arange(4))
>>> bool(arms[0] == arms[2])
True
>>> many = [str(i).encode() for i in range(10_000)]
>>> fractions = key_fractions(many, np.zeros(10_000, np.int64), np.arange(10_000))
>>> round(float((fractions < 0.5).mean()), 2)
0.5
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfit.lifecycle.gate import unit_interval

__all__ = ["ServingSplit", "key_fractions"]

_NO_KEY_SALT = np.uint64(0x5EED5EED5EED5EED)


def key_fractions(
    keys: Sequence[bytes | None], partitions: npt.NDArray[Any], offsets: npt.NDArray[Any]
) -> npt.NDArray[np.float64]:
    """Each row's place in [0, 1): from its key, or from its partition and offset."""
    n = len(keys)
    mixed = np.empty(n, dtype=np.uint64)
    missing = np.zeros(n, dtype=bool)
    for i, key in enumerate(keys):
        if key is None:
            missing[i] = True
            mixed[i] = 0
        else:
            mixed[i] = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
    if missing.any():
        with np.errstate(over="ignore"):
            mixed[missing] = (
                np.asarray(offsets, dtype=np.int64)[missing].astype(np.uint64)
                * np.uint64(0x100000001B3)
                + np.asarray(partitions, dtype=np.int64)[missing].astype(np.uint64)
                + _NO_KEY_SALT
            )
    return unit_interval(mixed)


class ServingSplit:
    """The models that serve, and their shares (module docstring)."""

    def __init__(self, split: Mapping[str, float]) -> None:
        self.arms = list(split)
        self.bounds = np.cumsum([split[name] for name in self.arms])
        self.bounds[-1] = np.inf  # shares that add up to 1.0 within rounding cover [0, 1)

    def assign(
        self,
        keys: Sequence[bytes | None],
        partitions: npt.NDArray[Any],
        offsets: npt.NDArray[Any],
    ) -> npt.NDArray[np.intp]:
        """Each row's arm: an index into ``arms``."""
        fractions = key_fractions(keys, partitions, offsets)
        return np.searchsorted(self.bounds, fractions, side="right").astype(np.intp)
