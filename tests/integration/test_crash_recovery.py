"""Kill -9 at random points, restart, and get exactly what an uninterrupted run got.

A 200k-event pipeline on the real broker (180k labeled events on `train`, 20k on `score`, one
partition each) runs once without interruption, and once killed with SIGKILL several times and
restarted each time. Both must end with the same result rows (none missing, none duplicated)
and the same model, featurizer and evaluator state, byte for byte.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from confluent_kafka import Consumer

from streamfit.store import Store
from streamfit.streams.base import OutRecord
from streamfit.streams.kafka import KafkaSink, create_topics

TRAIN_EVENTS, SCORE_EVENTS = 180_000, 20_000


def events(n: int, seed: int, labeled: bool) -> list[bytes]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).round(4)
    y = (X @ np.array([1.0, -1.0, 0.5, 0.0, 2.0]) + rng.normal(size=n) > 0).astype(int)
    colors = rng.choice(["red", "green", "blue", "grey"], n).tolist()
    out = []
    for row, label, color in zip(X.tolist(), y.tolist(), colors, strict=True):
        event: dict[str, Any] = {f"x{i}": v for i, v in enumerate(row)} | {"color": color}
        if labeled:
            event["y"] = label
        out.append(orjson.dumps(event))
    return out


def write_spec(
    path: Path,
    name: str,
    bootstrap: str,
    database: str,
    topics: dict[str, str],
    processing: str = "at_least_once",
) -> None:
    spec = {
        "name": name,
        "source": {
            "kind": "kafka",
            "bootstrap_servers": bootstrap,
            "group_id": f"{name}_g",
            # a killed member leaves the group after 6 s instead of 45 s
            "config": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
        },
        "topics": topics,
        "target": "y",
        "models": [{"name": "logistic", "builtin": "logistic_regression"}],
        "evaluation": {"interval_events": 20_000},
        "outputs": {"database": database, "predictions_topic": f"{topics['score']}_{name}_out"},
        "processing": processing,
        "batch": {"max_records": 500, "timeout": 0.2},
        "learning": {"block_events": 1000},
        "checkpoint": {"interval_events": 15_000, "interval_seconds": 0.5},
    }
    path.write_text(orjson.dumps(spec).decode())


def start(spec: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "streamfit.cli.main", "--log-level", "INFO", "run"]
    with log.open("ab") as stderr:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [*command, str(spec), "--stop-when-idle", "4"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )


def checkpointed(database: str) -> int:
    """How many input events the checkpoints table says were handled (0 before the first)."""
    path = database.removeprefix("sqlite:///")
    if not Path(path).exists():
        return 0
    with closing(sqlite3.connect(path, timeout=30)) as conn:
        try:
            (done,) = conn.execute(
                "SELECT COALESCE(SUM(next_offset), 0) FROM checkpoints"
            ).fetchone()
        except sqlite3.OperationalError:  # the tables are not there yet
            return 0
    return int(done)


def final_state(database: str, name: str) -> dict[str, bytes]:
    with Store(database, name) as store:
        checkpoint = store.load_checkpoint()
        assert checkpoint is not None
        return {**checkpoint.model_states, **checkpoint.extra}


def result_offsets(database: str, name: str) -> list[tuple[str, int]]:
    with Store(database, name) as store, store.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"SELECT source_topic, source_offset FROM {name}_results").all()
    return sorted((str(t).rsplit("_", 1)[-1], int(o)) for t, o in rows)


def read_committed(bootstrap: str, topic: str, expected: int) -> list[dict[str, Any]]:
    """What a ``read_committed`` consumer sees of ``topic``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}_reader",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[dict[str, Any]] = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 10 or len(out) < expected:
        msgs = consumer.consume(5000, 1.0)
        if msgs:
            idle_since = time.monotonic()
        out.extend(orjson.loads(m.value()) for m in msgs if m.error() is None)
        if time.monotonic() - idle_since > 60:
            break
    consumer.close()
    return out


@pytest.mark.parametrize("processing", ["at_least_once", "exactly_once"])
def test_sigkill_at_random_points_changes_nothing(
    kafka_bootstrap: str, tmp_path: Path, unique_name: str, processing: str
) -> None:
    topics = {"train": f"{unique_name}_train", "score": f"{unique_name}_score"}
    create_topics(kafka_bootstrap, list(topics.values()))
    for role, values in (
        ("train", events(TRAIN_EVENTS, 1, True)),
        ("score", events(SCORE_EVENTS, 2, False)),
    ):
        sink = KafkaSink(kafka_bootstrap, topics[role])
        sink.write([OutRecord(None, v) for v in values])
        sink.flush(120)
        sink.close()

    # one uninterrupted run
    calm_db = f"sqlite:///{tmp_path / 'calm.db'}"
    calm_spec = tmp_path / "calm.json"
    write_spec(calm_spec, "calm", kafka_bootstrap, calm_db, topics, processing)
    calm = start(calm_spec, tmp_path / "calm.log")
    assert calm.wait(timeout=300) == 0, (tmp_path / "calm.log").read_text()[-3000:]

    # one run killed with SIGKILL at random points, restarted each time
    crash_db = f"sqlite:///{tmp_path / 'crash.db'}"
    crash_spec = tmp_path / "crash.json"
    write_spec(crash_spec, "crash", kafka_bootstrap, crash_db, topics, processing)
    rng = random.Random(20261121)
    total = TRAIN_EVENTS + SCORE_EVENTS
    # Kills are triggered by progress, not by time: each waits until the checkpoints table has
    # passed a random share of the stream, then for a random fraction of a checkpoint interval
    # (so it lands anywhere between two checkpoints). The shares stop well before the end, so
    # every kill comes mid-stream however fast or slow the machine is.
    targets = sorted(rng.uniform(0.1, 0.8) * total for _ in range(4))
    kills_mid_stream = 0
    for target in targets:
        proc = start(crash_spec, tmp_path / "crash.log")
        deadline = time.monotonic() + 120
        while proc.poll() is None and checkpointed(crash_db) < target:
            assert time.monotonic() < deadline, "the worker made no progress for 120 s"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.1))
        assert proc.poll() is None, (tmp_path / "crash.log").read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills_mid_stream += checkpointed(crash_db) < total
    last = start(crash_spec, tmp_path / "crash.log")
    assert last.wait(timeout=300) == 0, (tmp_path / "crash.log").read_text()[-3000:]
    assert kills_mid_stream == len(targets), "a kill came after the end of the stream"

    calm_rows, crash_rows = result_offsets(calm_db, "calm"), result_offsets(crash_db, "crash")
    assert len(crash_rows) == len(set(crash_rows)) == SCORE_EVENTS
    assert crash_rows == calm_rows
    calm_state, crash_state = final_state(calm_db, "calm"), final_state(crash_db, "crash")
    assert set(calm_state) == set(crash_state)
    for name in calm_state:
        assert crash_state[name] == calm_state[name], f"{name} differs after the crashes"
    with Store(calm_db, "calm") as store:
        assert store.load_checkpoint().offsets == {  # type: ignore[union-attr]
            (topics["train"], 0): TRAIN_EVENTS,
            (topics["score"], 0): SCORE_EVENTS,
        }

    if processing == "exactly_once":  # each prediction once, for a read_committed consumer
        seen = read_committed(kafka_bootstrap, f"{topics['score']}_crash_out", SCORE_EVENTS)
        offsets = [p["offset"] for p in seen]
        assert len(offsets) == len(set(offsets)) == SCORE_EVENTS
