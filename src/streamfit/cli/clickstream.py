"""Generated clicks for ``streamfit demo clickstream`` and the lifecycle's tests.

Each event is a page view: a user id (the event's key), its page and device, eight numeric
signals and whether it was clicked (``click``, 1 or 0, about a third of them 1). The signals
and clicks come from scikit-learn's ``make_classification``; at ``shift_at`` the stream
switches to another draw of it (another concept: what made a click no longer does), and the
events in ``mislabeled`` have their click flipped, as a broken tracker would send them.

>>> events = click_events(1000, shift_at=600, mislabeled=(200, 300), seed=3)
>>> len(events.values), sorted(orjson.loads(events.values[0]))[:4]
(1000, ['click', 'device', 'f0', 'f1'])
>>> events.keys[0].startswith(b"user-"), int(events.flipped.sum())
(True, 100)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson
from sklearn.datasets import make_classification

__all__ = ["ClickEvents", "click_events"]

_PAGES = ["home", "search", "product", "cart", "article", "video"]
_DEVICES = ["mobile", "desktop", "tablet"]
_SIGNALS = 8


@dataclass(frozen=True)
class ClickEvents:
    """The events (JSON), their keys, the true clicks and which ones were flipped."""

    values: list[bytes]
    keys: list[bytes]
    truth: npt.NDArray[np.int64]
    flipped: npt.NDArray[np.bool_]


def _concept(n: int, seed: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    X, y = make_classification(
        n_samples=n,
        n_features=_SIGNALS,
        n_informative=5,
        n_redundant=1,
        weights=[0.68],
        flip_y=0.02,
        class_sep=1.2,
        random_state=seed,
    )
    return X, y.astype(np.int64)


def click_events(
    n: int,
    shift_at: int | None = None,
    mislabeled: tuple[int, int] | None = None,
    seed: int = 0,
    users: int = 5000,
) -> ClickEvents:
    """``n`` page views: a shift of concept at event ``shift_at``, the clicks of events
    ``mislabeled[0]`` to ``mislabeled[1] - 1`` flipped."""
    rng = np.random.default_rng(seed)
    cut = n if shift_at is None else min(max(shift_at, 0), n)
    before, y_before = _concept(max(cut, 1), seed)
    after, y_after = _concept(max(n - cut, 1), seed + 1000)
    X = np.vstack([before[:cut], after[: n - cut]])
    truth = np.concatenate([y_before[:cut], y_after[: n - cut]])
    flipped = np.zeros(n, dtype=bool)
    if mislabeled is not None:
        flipped[mislabeled[0] : mislabeled[1]] = True
    clicks = np.where(flipped, 1 - truth, truth)
    # the page and device carry a little of the signal: a user's taste shows there too
    pages = np.clip(np.floor((X[:, 0] + 3) / 6 * len(_PAGES)), 0, len(_PAGES) - 1).astype(int)
    devices = rng.integers(0, len(_DEVICES), size=n)
    user_ids = rng.integers(0, users, size=n)
    values, keys = [], []
    rounded = X.round(4).tolist()
    for i in range(n):
        event = {
            "user": f"user-{user_ids[i]}",
            "page": _PAGES[pages[i]],
            "device": _DEVICES[devices[i]],
            **{f"f{j}": rounded[i][j] for j in range(_SIGNALS)},
            "click": int(clicks[i]),
        }
        values.append(orjson.dumps(event))
        keys.append(event["user"].encode())
    return ClickEvents(values, keys, truth, flipped)
