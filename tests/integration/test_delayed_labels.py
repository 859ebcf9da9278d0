"""Delayed labels on the real broker: kill -9 during the join loses and duplicates nothing.

Events on a ``score`` topic and their labels on a ``labels`` topic, each label 1 to 5,000
events after its event and shuffled, both topics of three partitions keyed by the event's id
(so partition *n* of one holds the labels of partition *n* of the other). One run goes to the
end uninterrupted; another is killed with SIGKILL four times at random points (triggered by
the checkpoints' progress, never by a timed wait) and restarted. The killed run learns every label
exactly once (the models' event counts, the join's counters, each results row's label, no
dead letter), and ends with the model, featurizer and join of the uninterrupted run, byte for
byte.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from streamfit.delayed import LabelJoin
from streamfit.store import Store
from streamfit.streams.kafka import create_topics
from tests.integration.support import (
    checkpointed,
    produce,
    sqlite_rows,
    start_worker,
    wait_until,
    write_spec,
)

EVENTS, PARTITIONS, MAX_DELAY = 60_000, 3, 5_000


def stream(seed: int) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """Events (with ``id``), their ids as keys, and the labels in the order they come."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(EVENTS, 4)).round(4)
    y = (X @ np.array([1.0, -1.0, 0.5, 0.0]) + rng.normal(size=EVENTS) > 0).astype(int)
    colors = rng.choice(["red", "green", "blue"], EVENTS).tolist()
    ids = [f"ev{i}" for i in range(EVENTS)]
    events = [
        orjson.dumps({"id": i, **{f"x{j}": v for j, v in enumerate(row)}, "color": c})
        for i, row, c in zip(ids, X.tolist(), colors, strict=True)
    ]
    due = np.arange(EVENTS) + rng.integers(1, MAX_DELAY + 1, EVENTS)
    order = np.argsort(due, kind="stable")
    labels = [orjson.dumps({"id": ids[i], "y": int(y[i])}) for i in order.tolist()]
    return events, [i.encode() for i in ids], labels


def spec_for(name: str, bootstrap: str, database: str, topics: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "source": {
            "kind": "kafka",
            "bootstrap_servers": bootstrap,
            "group_id": f"{topics['score']}_{name}",
            "config": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
        },
        "topics": topics,
        "key": "id",
        "target": "y",
        "classes": [0, 1],
        "models": [{"name": "logistic", "builtin": "logistic_regression"}],
        "evaluation": {"interval_events": 20_000, "interval_seconds": 3600},
        "outputs": {"database": database},
        "batch": {"max_records": 500, "timeout": 0.2},
        "learning": {"block_events": 1000},
        "checkpoint": {"interval_events": 15_000, "interval_seconds": 0.5},
        "labels": {"ttl": {"events": 50_000}},
        "stats": False,
    }


def final_state(database: str, name: str) -> dict[str, bytes]:
    with Store(database, name) as store:
        checkpoint = store.load_checkpoint()
        assert checkpoint is not None
        return {**checkpoint.model_states, **checkpoint.extra}


def test_kill_9_during_the_join_loses_and_repeats_no_label(
    kafka_bootstrap: str, tmp_path: Path, unique_name: str
) -> None:
    topics = {"score": f"{unique_name}_events", "labels": f"{unique_name}_labels"}
    create_topics(kafka_bootstrap, list(topics.values()), partitions=PARTITIONS)
    events, keys, labels = stream(7)
    label_keys = [orjson.loads(label)["id"].encode() for label in labels]
    produce(kafka_bootstrap, topics["score"], events, keys=keys)
    produce(kafka_bootstrap, topics["labels"], labels, keys=label_keys)

    calm_db = f"sqlite:///{tmp_path / 'calm.db'}"
    calm_spec = write_spec(
        tmp_path / "calm.json", spec_for("calm", kafka_bootstrap, calm_db, topics)
    )
    start_worker(calm_spec, tmp_path / "calm.log").wait()

    crash_db = f"sqlite:///{tmp_path / 'crash.db'}"
    crash = spec_for("crash", kafka_bootstrap, crash_db, topics)
    crash_spec = write_spec(tmp_path / "crash.json", crash)
    rng = random.Random(20261207)
    total = 2 * EVENTS
    for target in sorted(rng.uniform(0.1, 0.8) * total for _ in range(4)):
        worker = start_worker(crash_spec, tmp_path / "crash.log")
        wait_until(
            lambda t=target: checkpointed(crash_db) >= t, f"{target:.0f} events", workers=[worker]
        )
        # the worker goes on between its checkpoint and this poll of it: the kill lands
        # wherever it is then (mid-batch, mid-join, mid-checkpoint), with no timed wait
        worker.kill()
        assert checkpointed(crash_db) < total, "a kill came after the end of the stream"
    start_worker(crash_spec, tmp_path / "crash.log").wait()

    calm_state, crash_state = final_state(calm_db, "calm"), final_state(crash_db, "crash")
    for name in ("0/model/logistic", "0/featurizer"):
        assert crash_state[name] == calm_state[name], f"{name} differs after the kills"
    calm_join = LabelJoin.from_state(calm_state["0/labels"])
    crash_join = LabelJoin.from_state(crash_state["0/labels"])
    assert crash_join.counters == calm_join.counters
    counters = crash_join.counters
    assert counters["labels_matched"] == EVENTS  # every label once
    assert counters["labels_duplicate"] == counters["labels_unmatched"] == 0
    assert counters["events_waiting"] == counters["labels_waiting"] == 0
    learned = orjson.loads(crash_state["0/counters"])["heads"][""]["models"]["logistic"][1]
    assert learned == EVENTS
    rows = sqlite_rows(crash_db, "SELECT event_key, label FROM crash_results")
    assert len(rows) == EVENTS and all(label in ("0", "1") for _, label in rows)
    truth = {orjson.loads(v)["id"]: str(orjson.loads(v)["y"]) for v in labels}
    assert all(truth[key] == label for key, label in rows)
    assert sqlite_rows(crash_db, "SELECT COUNT(*) FROM dead_letters") == [(0,)]
