"""Kill -9 at random points, restart, and lose nothing, duplicate nothing.

Both tests run ``streamfit run`` processes on the real broker, over a ``train`` and a ``score``
topic of three partitions each, in both processing modes, with kills triggered by progress
(the checkpoints the workers write), never by wall-clock delays:

- ``test_sigkill_at_random_points_changes_nothing``: one worker, over topics that already
  hold their 200k events. A run killed four times and restarted ends with the same result
  rows (none missing, none duplicated), the same metrics rows, and the same model,
  featurizer and evaluator state, byte for byte, as a run that was never interrupted: the
  blocks of the three partitions are learned in one order fixed by their offsets.
- ``test_a_second_worker_killed_while_the_first_runs``: two workers of one group over a
  stream that is still being produced; the second is killed twice and comes back. Every
  scored event is in the results exactly once, every partition is learned to its end, no
  worker's metrics series misses an interval.

Under ``exactly_once`` a ``read_committed`` consumer of the predictions topic sees each
prediction exactly once.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from streamfit.explore import StreamStatistics
from streamfit.store import Store
from streamfit.streams.kafka import create_topics
from tests.integration.support import (
    checkpointed,
    learned_by,
    produce,
    read_topic,
    sqlite_rows,
    start_worker,
    wait_for_assignment,
    wait_until,
)

TRAIN_EVENTS, SCORE_EVENTS, PARTITIONS = 180_000, 20_000, 3
BLOCK, METRICS_EVERY = 1000, 20_000


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
    path: Path, name: str, bootstrap: str, database: str, topics: dict[str, str], processing: str
) -> None:
    """The pipeline both tests run, ``name`` naming its tables and (with the topics) its
    consumer group."""
    spec = {
        "name": name,
        "source": {
            "kind": "kafka",
            "bootstrap_servers": bootstrap,
            "group_id": f"{topics['train']}_{name}",  # unique: the broker is shared
            # a killed member leaves the group after 6 s instead of 45 s
            "config": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
        },
        "topics": topics,
        "target": "y",
        "models": [{"name": "logistic", "builtin": "logistic_regression"}],
        # metrics at fixed points only (every 20k events learned, and at the end)
        "evaluation": {"interval_events": METRICS_EVERY, "interval_seconds": 3600},
        "outputs": {"database": database, "predictions_topic": f"{topics['score']}_{name}_out"},
        "processing": processing,
        "batch": {"max_records": 500, "timeout": 0.2},
        "learning": {"block_events": BLOCK},
        "checkpoint": {"interval_events": 15_000, "interval_seconds": 0.5},
    }
    path.write_text(orjson.dumps(spec).decode())


def final_state(database: str, name: str) -> dict[str, bytes]:
    with Store(database, name) as store:
        checkpoint = store.load_checkpoint()
        assert checkpoint is not None
        return {**checkpoint.model_states, **checkpoint.extra}


def same_statistics(one: bytes, other: bytes) -> bool:
    """Field statistics that saw the same events: over all time, the same counts and
    extremes, means, variances and correlations equal to rounding (the batches they were summed
    in differ), distinct counts within the HLL sketch's error. Quantile sketches (KLL) compact
    at random and the frequent-items sketch breaks ties in its own order, so quantiles,
    histograms and top values are not compared here (the explore tests hold them to the
    sketches' documented errors). The recent window holds the last events in the order the
    polls took them from the partitions, and a field is missing from an event only once it has
    been seen: both follow the order of arrival, which differs from run to run."""
    rows = [StreamStatistics.from_state(blob).rows() for blob in (one, other)]
    assert [r["field"] for r in rows[0]] == [r["field"] for r in rows[1]]
    for mine, theirs in zip(*rows, strict=True):
        for key, value in mine.items():
            if key.startswith("window_") or key in ("histogram", "top_values", "missing"):
                continue
            if key.startswith("p") and key[1:].isdigit():
                continue
            if key in ("mean", "variance") and value is not None:
                assert value == pytest.approx(theirs[key], rel=1e-9), (mine["field"], key)
            elif key == "distinct_count":  # HLL estimates: within their error of each other
                assert value == pytest.approx(theirs[key], rel=0.02), (mine["field"], key)
            elif key == "correlations" and value:
                for other_field, r in value.items():
                    assert r == pytest.approx(theirs[key][other_field], rel=1e-9, abs=1e-12)
            else:
                assert value == theirs[key], (mine["field"], key, value, theirs[key])
    return True


def result_offsets(database: str, name: str) -> list[tuple[str, int, int]]:
    rows = sqlite_rows(
        database, f"SELECT source_topic, source_partition, source_offset FROM {name}_results"
    )
    return sorted((str(t).rsplit("_", 1)[-1], int(p), int(o)) for t, p, o in rows)


def training_rows(database: str, name: str) -> list[tuple[Any, ...]]:
    return sqlite_rows(
        database,
        f"SELECT worker, events_seen, accuracy, roc_auc, window_accuracy FROM {name}_training "
        "ORDER BY worker, events_seen",
    )


def read_committed(bootstrap: str, topic: str, expected: int) -> list[dict[str, Any]]:
    """The records of ``topic`` as a ``read_committed`` consumer sees them."""
    values = read_topic(bootstrap, topic, at_least=expected, committed_only=True)
    return [orjson.loads(value) for value in values]


@pytest.fixture
def topics(kafka_bootstrap: str, unique_name: str) -> Iterator[dict[str, str]]:
    names = {"train": f"{unique_name}_train", "score": f"{unique_name}_score"}
    create_topics(kafka_bootstrap, list(names.values()), partitions=PARTITIONS)
    yield names


@pytest.mark.parametrize("processing", ["at_least_once", "exactly_once"])
def test_sigkill_at_random_points_changes_nothing(
    kafka_bootstrap: str, tmp_path: Path, topics: dict[str, str], processing: str
) -> None:
    produce(kafka_bootstrap, topics["train"], events(TRAIN_EVENTS, 1, True), partitions=PARTITIONS)
    produce(kafka_bootstrap, topics["score"], events(SCORE_EVENTS, 2, False), partitions=PARTITIONS)

    # one uninterrupted run
    calm_db = f"sqlite:///{tmp_path / 'calm.db'}"
    calm_spec = tmp_path / "calm.json"
    write_spec(calm_spec, "calm", kafka_bootstrap, calm_db, topics, processing)
    start_worker(calm_spec, tmp_path / "calm.log").wait()

    # one run killed with SIGKILL at random points, restarted each time. Each kill waits until
    # the checkpoints have passed a random share of the stream, then for a random fraction of
    # a checkpoint interval (so it lands anywhere between two checkpoints). The shares stop
    # well before the end, so every kill comes mid-stream however fast the machine is.
    crash_db = f"sqlite:///{tmp_path / 'crash.db'}"
    crash_spec = tmp_path / "crash.json"
    write_spec(crash_spec, "crash", kafka_bootstrap, crash_db, topics, processing)
    rng = random.Random(20261121)
    total = TRAIN_EVENTS + SCORE_EVENTS
    for target in sorted(rng.uniform(0.1, 0.8) * total for _ in range(4)):
        worker = start_worker(crash_spec, tmp_path / "crash.log")
        wait_until(
            lambda t=target: checkpointed(crash_db) >= t, f"{target:.0f} events", workers=[worker]
        )
        time.sleep(rng.uniform(0.0, 0.1))  # where between two checkpoints the kill lands
        worker.kill()
        assert checkpointed(crash_db) < total, "a kill came after the end of the stream"
    start_worker(crash_spec, tmp_path / "crash.log").wait()

    calm_rows, crash_rows = result_offsets(calm_db, "calm"), result_offsets(crash_db, "crash")
    assert len(crash_rows) == len(set(crash_rows)) == SCORE_EVENTS
    assert crash_rows == calm_rows
    assert training_rows(crash_db, "crash") == training_rows(calm_db, "calm")
    calm_state, crash_state = final_state(calm_db, "calm"), final_state(crash_db, "crash")
    assert set(calm_state) == set(crash_state)
    for name in calm_state:
        if name.endswith("/statistics"):  # sketches: see same_statistics
            assert same_statistics(crash_state[name], calm_state[name])
            continue
        assert crash_state[name] == calm_state[name], f"{name} differs after the crashes"
    with Store(calm_db, "calm") as store:
        offsets = store.load_checkpoint().offsets  # type: ignore[union-attr]
    assert sum(o for (t, _), o in offsets.items() if t == topics["train"]) == TRAIN_EVENTS
    assert sum(o for (t, _), o in offsets.items() if t == topics["score"]) == SCORE_EVENTS

    if processing == "exactly_once":  # each prediction once, for a read_committed consumer
        seen = read_committed(kafka_bootstrap, f"{topics['score']}_crash_out", SCORE_EVENTS)
        keys = [(p["partition"], p["offset"]) for p in seen]
        assert len(keys) == len(set(keys)) == SCORE_EVENTS


@pytest.mark.parametrize("processing", ["at_least_once", "exactly_once"])
def test_a_second_worker_killed_while_the_first_runs(
    kafka_bootstrap: str, tmp_path: Path, topics: dict[str, str], processing: str
) -> None:
    database = f"sqlite:///{tmp_path / 'group.db'}"
    spec = tmp_path / "group.json"
    write_spec(spec, "group", kafka_bootstrap, database, topics, processing)
    # a stream still being produced (about 40 s of it) while the workers run; they stop on
    # SIGTERM once their checkpoints cover all of it (60 whole blocks per train partition)
    feeders = [
        threading.Thread(
            target=produce,
            args=(kafka_bootstrap, topics[role], events(n, seed, role == "train")),
            kwargs={"partitions": PARTITIONS, "rate": n / 40},
        )
        for role, n, seed in (("train", TRAIN_EVENTS, 3), ("score", SCORE_EVENTS, 4))
    ]
    for feeder in feeders:
        feeder.start()
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start_worker(spec, first_log, worker_id="0", stop_when_idle=None)
    rng = random.Random(20261206)
    for kill in range(2):
        second = start_worker(spec, second_log, worker_id="1", stop_when_idle=None)
        target = learned_by(database, "1") + rng.randint(2_000, 6_000)
        wait_until(
            lambda t=target: learned_by(database, "1") >= t,
            f"worker 1 past {target} events (kill {kill})",
            workers=[first, second],
        )
        second.kill()
    second = start_worker(spec, second_log, worker_id="1", stop_when_idle=None)
    for feeder in feeders:
        feeder.join()
    wait_until(
        lambda: checkpointed(database) >= TRAIN_EVENTS + SCORE_EVENTS,
        "checkpoints covering the whole stream",
        timeout=300,
        workers=[first, second],
    )
    # both up and in the group (a process still starting up dies of SIGTERM), then stopped
    wait_for_assignment(
        kafka_bootstrap, f"{topics['train']}_group", 2, 2 * PARTITIONS, [first, second]
    )
    for worker in (first, second):
        worker.stop()

    rows = result_offsets(database, "group")
    assert len(rows) == len(set(rows)) == SCORE_EVENTS
    with Store(database, "group") as store:
        offsets = store.load_checkpoint().offsets  # type: ignore[union-attr]
    ends = {t: n for t, n in ((topics["train"], TRAIN_EVENTS), (topics["score"], SCORE_EVENTS))}
    for topic, n in ends.items():  # every partition learned or scored to its end
        assert sum(o for (t, _), o in offsets.items() if t == topic) == n
    metrics = training_rows(database, "group")
    for worker in ("0", "1"):
        seen = [events_seen for w, events_seen, *_ in metrics if w == worker]
        assert seen, f"worker {worker} wrote no metrics"
        for k in range(1, max(seen) // METRICS_EVERY + 1):  # a row at every interval crossed
            point = k * METRICS_EVERY
            assert any(point <= s < point + BLOCK for s in seen), (worker, point, seen)

    if processing == "exactly_once":
        seen_records = read_committed(kafka_bootstrap, f"{topics['score']}_group_out", SCORE_EVENTS)
        keys = [(p["partition"], p["offset"]) for p in seen_records]
        assert len(keys) == len(set(keys)) == SCORE_EVENTS
