"""What the integration tests share: a broker of their own, worker processes, and waiting for
state (a checkpoint, a group's assignment, a topic's records) instead of for time.

Every wait polls a condition until it holds or a deadline passes, and then fails with what it
last saw: the deadline only bounds a test that is broken, it never paces one that works.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = ROOT / "scripts" / "kafka"


class Broker:
    """A single-node Kafka broker of a test's own (``scripts/kafka``), to stop and start."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.bootstrap = ""

    def start(self, fresh: bool = False) -> str:
        """Start it (again: same port and data unless ``fresh``); return its bootstrap."""
        args = ["start", "--dir", str(self.directory), *(["--fresh"] if fresh else [])]
        self.bootstrap = _kafka(*args).stdout.strip().splitlines()[-1]
        return self.bootstrap

    def stop(self) -> None:
        _kafka("stop", "--dir", str(self.directory))


@contextmanager
def own_broker(directory: Path) -> Iterator[Broker]:
    """A fresh broker in ``directory``, stopped on exit (never the shared one)."""
    _kafka("fetch")  # the jars, once (cached)
    broker = Broker(directory)
    broker.start(fresh=True)
    try:
        yield broker
    finally:
        broker.stop()


def _kafka(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(KAFKA_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/kafka {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done
