"""Poison events: find the events a step fails on, and set only those aside.

A step of the loop (decoding, featurizing and scoring, writing results, learning) runs on a
whole batch. When it raises for a reason that is not an outage, ``isolate`` runs it again on
each half of the batch, and so on down to single events: the step then ran on every event it
can handle, and each event it fails on alone is handed to ``reject`` with the error, to become
a dead letter with its reason. A failure costs about ``2 log2(n)`` extra runs per bad event;
a batch without bad events costs nothing extra.

Outages are not the events' fault: ``ServiceUnavailableError`` (and the transient stream
errors) pass through untouched, for the caller to pause and retry.

>>> done, rejected = [], []
>>> def step(rows: list[int]) -> None:
...     if 13 in rows:
...         raise ValueError("13 is unlucky")
...     done.extend(rows)
>>> isolate(list(range(10, 20)), step, lambda rows, exc: rejected.append((rows, str(exc))),
...         halves=lambda rows: (rows[: len(rows) // 2], rows[len(rows) // 2 :]))
>>> done
[10, 11, 12, 14, 15, 16, 17, 18, 19]
>>> rejected
[([13], '13 is unlucky')]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sized
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from streamfit.batch import Batch, DeadLetter, Messages
from streamfit.errors import ServiceUnavailableError, StreamError

__all__ = [
    "batch_halves",
    "dead_letters_for",
    "index_halves",
    "is_events_fault",
    "isolate",
    "message_halves",
    "reason_for",
]

log = logging.getLogger("streamfit.worker")

R = TypeVar("R", bound=Sized)


def isolate(
    rows: R,
    step: Callable[[R], None],
    reject: Callable[[R, Exception], None],
    halves: Callable[[R], tuple[R, R]],
) -> None:
    """Run ``step(rows)``; on an error that is not an outage, split until it is isolated."""
    try:
        step(rows)
    except (ServiceUnavailableError, StreamError):
        raise
    except Exception as exc:
        if len(rows) <= 1:
            reject(rows, exc)
            return
        left, right = halves(rows)
        isolate(left, step, reject, halves)
        isolate(right, step, reject, halves)


def batch_halves(batch: Batch) -> tuple[Batch, Batch]:
    """The first and second half of ``batch``'s rows."""
    middle = len(batch) // 2
    return batch.rows(0, middle), batch.rows(middle, len(batch))


def index_halves(
    index: npt.NDArray[np.intp],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The first and second half of an index of rows."""
    middle = len(index) // 2
    return index[:middle], index[middle:]


def message_halves(messages: Messages) -> tuple[Messages, Messages]:
    """The first and second half of ``messages``."""
    middle = len(messages) // 2
    return messages.rows(0, middle), messages.rows(middle, len(messages))


def is_events_fault(exc: Exception) -> bool:
    """Whether ``exc`` may be caused by the events at hand (not an outage)."""
    return not isinstance(exc, ServiceUnavailableError | StreamError)


def reason_for(step: str, exc: Exception) -> str:
    """A dead letter's reason for an event that ``step`` failed on."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return f"{step} failed: {detail}"[:1000]


def dead_letters_for(batch: Batch, step: str, exc: Exception) -> list[DeadLetter]:
    """One dead letter per row of ``batch``, saying that ``step`` failed on it and why."""
    reason = reason_for(step, exc)
    log.error("%s failed on an event; it goes to the dead letters: %s", step, reason, exc_info=exc)
    return [DeadLetter.from_row(batch.meta, row, reason) for row in range(len(batch))]
