"""What the commands show while they work: totals and the rate of the last few seconds.

A rate averaged since the start falls toward zero while a worker waits for events and hides a
slowdown behind a good start; ``RateMeter`` measures over a sliding window instead.

>>> meter = RateMeter(window=10.0)
>>> meter.add(0, now=0.0)
>>> meter.add(5_000, now=5.0)
>>> meter.rate(now=5.0)
1000.0
>>> meter.add(5_000, now=20.0)   # nothing new for 15 s: the rate is 0, not 250
>>> meter.rate(now=20.0)
0.0
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

__all__ = ["RateMeter", "event_progress", "stderr_console"]


class RateMeter:
    """Events per second over the last ``window`` seconds, from running totals."""

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, total: int, now: float | None = None) -> None:
        """Record the running total ``total`` at time ``now`` (monotonic seconds)."""
        now = time.monotonic() if now is None else now
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def rate(self, now: float | None = None) -> float:
        """Events per second between the oldest sample in the window and the newest."""
        if len(self._samples) < 2:
            return 0.0
        now = time.monotonic() if now is None else now
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        span = max(now, t1) - t0
        return (n1 - n0) / span if span > 0 else 0.0


def stderr_console() -> Console:
    """A console on standard error (standard output stays for results such as ``--json``)."""
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


class _RateColumn(ProgressColumn):
    """The task's rate over the last seconds (rich's own estimate, over a short window)."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text("" if speed is None else f"{speed:,.0f} events/s", style="progress.data.speed")


@contextmanager
def event_progress(
    description: str, total: int | None, console: Console | None = None, enabled: bool = True
) -> Iterator[Progress]:
    """A progress display of events: bar (when the total is known), count, current rate,
    time elapsed. Shown only on a terminal; elsewhere it stays silent."""
    console = console or stderr_console()
    columns: list[ProgressColumn | str] = [TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), TextColumn("{task.completed:,}/{task.total:,} events")]
    else:
        columns += [TextColumn("{task.completed:,} events")]
    columns += [_RateColumn(), TimeElapsedColumn()]
    progress = Progress(
        *columns,
        console=console,
        disable=not (enabled and console.is_terminal),
        speed_estimate_period=5.0,
        transient=False,
    )
    progress.add_task(description, total=total)
    with progress:
        yield progress
