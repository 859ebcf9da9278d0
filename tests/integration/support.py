"""What the integration tests share: a broker of their own, topics written and read to their
end, consumer groups described, ``streamfit run`` processes, and the store read while they
write it.

Tests wait for state, never for time: ``wait_until`` polls a condition (a checkpoint past N
events, a group holding its partitions, a topic read to its end) until it holds, and fails
with what it was waiting for when a deadline passes or a worker it watches exits. The
deadline only bounds a test that is broken; it never paces one that works.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupState,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = ROOT / "scripts" / "kafka"

T = TypeVar("T")
Partition = tuple[str, int]


# ------------------------------------------------------------------------------------ waiting


def wait_until(
    condition: Callable[[], T],
    what: str,
    timeout: float = 120.0,
    workers: Sequence[WorkerProcess] = (),
) -> T:
    """``condition()``'s first truthy value, polled every 20 ms; fails after ``timeout`` s, or
    as soon as one of ``workers`` exits (with the end of its log)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for worker in workers:
            assert worker.running, f"waiting for {what}: {worker.name} exited\n{worker.tail()}"
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(0.02)


# --------------------------------------------------------------------------- a broker of one's own


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


# ------------------------------------------------------------------------------------- topics


def produce(
    bootstrap: str,
    topic: str,
    values: Sequence[bytes],
    *,
    keys: Sequence[bytes | None] | None = None,
    partitions: int = 0,
    rate: float = 0.0,
) -> None:
    """Write ``values`` to ``topic`` and wait until the broker has them all: with
    ``partitions``, round robin over that many partitions (else by key, or the client's
    choice); at ``rate`` events/s (0: as fast as it goes)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    started, chunk = time.monotonic(), 2000
    for start in range(0, len(values), chunk):
        if rate:
            ahead = start / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)  # pacing the load, not waiting for a result
        for i in range(start, min(start + chunk, len(values))):
            where = {"partition": i % partitions} if partitions else {}
            key = keys[i] if keys is not None else None
            while True:
                try:
                    producer.produce(topic, values[i], key, **where)
                    break
                except BufferError:
                    producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(120) == 0, f"events left undelivered to {topic}"


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    at_least: int = 0,
    committed_only: bool = False,
    timeout: float = 120.0,
) -> list[bytes]:
    """Every record of ``topic`` (values, partition by partition in offset order), read from
    its beginning until at least ``at_least`` came and the reader stands at the end of every
    partition. ``committed_only``: as a ``read_committed`` consumer sees it."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if committed_only else "read_uncommitted",
        }
    )
    try:
        count = len(consumer.list_topics(topic, timeout=30).topics[topic].partitions)
        parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(count)]
        consumer.assign(parts)
        values: dict[int, list[bytes]] = {p: [] for p in range(count)}

        def at_the_end() -> bool:
            for message in consumer.consume(5000, 0.2):
                if message.error() is None:
                    values[message.partition()].append(message.value())
            if sum(map(len, values.values())) < at_least:
                return False
            positions = consumer.position([TopicPartition(topic, p) for p in range(count)])
            for tp in positions:
                low, high = consumer.get_watermark_offsets(tp, timeout=10)
                if high > low and tp.offset < high:
                    return False
            return True

        wait_until(at_the_end, f"{topic} read to its end ({at_least} records at least)", timeout)
    finally:
        consumer.close()
    return [value for p in range(count) for value in values[p]]


# ---------------------------------------------------------------------------- consumer groups


def group_members(bootstrap: str, group: str) -> tuple[str, list[list[Partition]]] | None:
    """The group's state (``"STABLE"``, ``"EMPTY"``, ...) and each member's partitions, as the
    group coordinator describes them; None while it cannot."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        found = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
    except KafkaException:  # no coordinator yet, or a request that timed out
        return None
    members = [
        sorted((tp.topic, tp.partition) for tp in member.assignment.topic_partitions)
        for member in found.members
    ]
    state: ConsumerGroupState = found.state
    return state.name, sorted(members)


def wait_for_assignment(
    bootstrap: str,
    group: str,
    members: int,
    partitions: int,
    workers: Sequence[WorkerProcess] = (),
    timeout: float = 120.0,
) -> list[list[Partition]]:
    """Each member's partitions, once the group is stable with ``members`` members that each
    hold at least one partition, ``partitions`` in all."""

    def assigned() -> list[list[Partition]] | None:
        described = group_members(bootstrap, group)
        if described is None:
            return None
        state, held = described
        settled = (
            state == "STABLE"
            and len(held) == members
            and all(held)
            and sum(map(len, held)) == partitions
        )
        return held if settled else None

    what = f"group {group} stable with {members} member(s) holding {partitions} partitions"
    return wait_until(assigned, what, timeout, workers)


def committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: int
) -> dict[Partition, int]:
    """The offsets Kafka holds for ``group`` on ``topic`` (read without joining the group)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        found = consumer.committed(wanted, timeout=10)
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}


# ---------------------------------------------------------------------------- worker processes


@dataclass
class WorkerProcess:
    """A ``streamfit run`` process and the file its log goes to."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text()[-chars:] if self.log.exists() else ""

    def wait(self, timeout: float = 300.0) -> None:
        """Until it exits by itself; it must exit 0."""
        code = self.proc.wait(timeout=timeout)
        assert code == 0, f"{self.name} exited with {code}\n{self.tail()}"

    def kill(self) -> None:
        """SIGKILL: no final checkpoint, no leaving the group."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM: a final checkpoint, the group left; it must exit 0."""
        self.proc.send_signal(signal.SIGTERM)
        self.wait(timeout)


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    """``spec`` as a pipeline file (JSON is YAML)."""
    path.write_text(orjson.dumps(spec).decode())
    return path


def start_worker(
    spec: Path, log: Path, worker_id: str = "0", stop_when_idle: float | None = 4.0
) -> WorkerProcess:
    """``streamfit run spec --worker-id worker_id`` in a process of its own, logging at INFO to
    ``log`` (appended to); it stops by itself after ``stop_when_idle`` quiet seconds."""
    command = [sys.executable, "-m", "streamfit.cli.main", "--log-level", "INFO", "run"]
    command += [str(spec), "--worker-id", worker_id]
    if stop_when_idle is not None:
        command += ["--stop-when-idle", str(stop_when_idle)]
    with log.open("ab") as stderr:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    worker = WorkerProcess(f"worker {worker_id}", proc, log)
    STARTED.append(worker)
    return worker


#: every worker process a test started; ``reap_workers`` kills those still running after it
STARTED: list[WorkerProcess] = []


def reap_workers() -> None:
    """SIGKILL the workers tests started that still run (a failed test leaves them behind)."""
    while STARTED:
        worker = STARTED.pop()
        if worker.running:
            worker.kill()


# ------------------------------------------------------------- the store, read while it is written


def sqlite_rows(database: str, query: str, tables: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    """``query``'s rows in the SQLite ``database`` URL; [] while the file or one of the
    ``tables`` it reads does not exist yet."""
    path = database.removeprefix("sqlite:///")
    if not Path(path).exists():
        return []
    with closing(sqlite3.connect(path, timeout=30)) as conn:
        present = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        if not present.issuperset(tables):
            return []
        return conn.execute(query).fetchall()


def checkpointed(database: str) -> int:
    """Input events the checkpoints table says were handled, all workers together."""
    query = "SELECT COALESCE(SUM(next_offset), 0) FROM checkpoints"
    rows = sqlite_rows(database, query, ["checkpoints"])
    return int(rows[0][0]) if rows else 0


def learned_by(database: str, worker: str) -> int:
    """Events the last checkpoint of ``worker`` says it learned (0 before its first)."""
    query = f"SELECT state FROM checkpoint_states WHERE name = '{worker}/counters'"
    rows = sqlite_rows(database, query, ["checkpoint_states"])
    return int(orjson.loads(rows[0][0])["events_learned"]) if rows else 0


def wait_checkpointed(
    database: str, events: int, workers: Sequence[WorkerProcess] = (), timeout: float = 120.0
) -> int:
    """How many events the checkpoints hold, once it is at least ``events``."""
    return wait_until(
        lambda: n if (n := checkpointed(database)) >= events else 0,
        f"checkpoint past {events:,} events",
        timeout,
        workers,
    )
