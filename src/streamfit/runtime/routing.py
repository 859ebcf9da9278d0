"""Which rows of a batch are learned from, which are scored, and which are written again.

A row is a *training* row when it carries the target and comes from a ``train`` topic; every
other row is *scored* (all rows are, training ones too, with
``outputs.score_training_events``). After a restart, rows below a partition's *emitted*
frontier were written before the crash: they are learned again, not written again.

>>> import numpy as np
>>> from streamfit.batch import Batch, Messages
>>> batch = Batch({"y": np.array([1, None], dtype=object)},
...               Messages.from_values([b"", b""], topic="t"))
>>> roles = split_roles(batch, "y", "classification", {"t"})
>>> roles.train.tolist(), roles.score.tolist()
([0], [1])
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfit.batch import Batch, Messages

__all__ = ["Roles", "among", "any_known", "not_emitted", "rows_of", "split_roles"]

Index = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class Roles:
    """Row numbers of the training rows and of the scored rows, and every row's label."""

    train: Index
    score: Index
    labels: npt.NDArray[Any]


def split_roles(
    batch: Batch,
    target: str | None,
    task: str,
    train_topics: Collection[str],
    score_training_events: bool = False,
) -> Roles:
    """The roles of the rows of ``batch`` (see the module docstring)."""
    n = len(batch)
    if target and target in batch.columns:
        labels = batch.columns[target]
        if task == "regression":
            labeled = ~np.isnan(labels.astype(np.float64))
        else:
            labeled = np.asarray(labels != None, dtype=bool)  # noqa: E711 (elementwise)
    else:
        labels = np.full(n, None, dtype=object)
        labeled = np.zeros(n, dtype=bool)
    topic = batch.meta.single_topic()
    if topic is not None:
        in_train_topic = np.full(n, topic in train_topics)
    else:
        in_train_topic = np.isin(batch.meta.topics, list(train_topics))
    is_train = labeled & in_train_topic
    if score_training_events:
        return Roles(np.flatnonzero(is_train), np.arange(n), labels)
    return Roles(np.flatnonzero(is_train), np.flatnonzero(~is_train), labels)


def not_emitted(meta: Messages, emitted: Mapping[tuple[str, int], int]) -> npt.NDArray[np.bool_]:
    """Rows at or past their partition's ``emitted`` frontier (all rows when it is empty).

    >>> meta = Messages.from_values([b""] * 3, topic="t")
    >>> not_emitted(meta, {("t", 0): 2}).tolist()
    [False, False, True]
    """
    if not emitted:
        return np.ones(len(meta), dtype=bool)
    limit = np.array(
        [
            emitted.get((t, int(p)), -1)
            for t, p in zip(meta.topics.tolist(), meta.partitions.tolist(), strict=True)
        ],
        dtype=np.int64,
    )
    return meta.offsets >= limit


def rows_of(batch: Batch, index: Index) -> Batch:
    """The rows of ``batch`` at ``index`` (increasing row numbers): the batch itself, not a
    copy, when that is every row (the usual case of a topic with one role)."""
    return batch if len(index) == len(batch) else batch.take(index)


def among(rows: Index, index: Index) -> Index:
    """Where the ``rows`` (increasing) are found in ``index`` (increasing).

    >>> among(np.array([1, 3]), np.array([0, 1, 2, 3])).tolist()
    [1, 3]
    """
    if np.array_equal(rows, index):
        return np.arange(len(index))
    return np.flatnonzero(np.isin(index, rows, assume_unique=True))


def any_known(labels: npt.NDArray[Any], task: str) -> bool:
    """Whether any of ``labels`` is known (not None, not NaN)."""
    if task == "regression":
        return bool((~np.isnan(labels.astype(np.float64))).any())
    return any(v is not None for v in labels)
