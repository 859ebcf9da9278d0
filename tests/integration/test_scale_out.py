"""Two workers of one pipeline share a consumer group, split the partitions, and each scores
with a model merged from both through the store. One worker killed: the other takes over its
partitions and nothing is lost."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sklearn.metrics import roc_auc_score

from streamfit.batch import Messages
from streamfit.codecs import decode_json
from streamfit.features import Featurizer
from streamfit.models.factory import model_from_state
from streamfit.store import Store
from streamfit.streams.kafka import create_topics
from tests.integration.support import (
    WorkerProcess,
    learned_by,
    produce,
    start_worker,
    wait_for_assignment,
    wait_until,
    write_spec,
)

PARTITIONS = 4
WEIGHTS = np.array([1.2, -0.8, 0.5, 0.0, 1.5, -0.3])


def events(n: int, seed: int) -> list[bytes]:
    """Labeled events; on the score topic the label is kept in the results, not learned."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(WEIGHTS))).round(4)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ WEIGHTS)))).astype(int)
    return [
        orjson.dumps({**{f"x{i}": v for i, v in enumerate(row)}, "y": label})
        for row, label in zip(X.tolist(), y.tolist(), strict=True)
    ]


def spec(name: str, bootstrap: str, database: str, topics: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "source": {
            "kind": "kafka",
            "bootstrap_servers": bootstrap,
            "group_id": f"{name}_group",
            "config": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
        },
        "topics": topics,
        "target": "y",
        "models": [{"name": "logistic", "builtin": "logistic_regression"}],
        "outputs": {"database": database},
        "batch": {"max_records": 1000, "timeout": 0.1},
        "learning": {"block_events": 256},
        "checkpoint": {"interval_events": 10_000, "interval_seconds": 1.0},
    }


def start(spec_path: Path, worker: str, tmp_path: Path) -> WorkerProcess:
    return start_worker(spec_path, tmp_path / f"{worker}.log", worker, stop_when_idle=8)


def setup(bootstrap: str, name: str) -> tuple[dict[str, str], list[bytes], list[bytes]]:
    topics = {"train": f"{name}_train", "score": f"{name}_score"}
    create_topics(bootstrap, list(topics.values()), partitions=PARTITIONS)
    return topics, events(60_000, 1), events(6_000, 2)


def feed(
    bootstrap: str, topics: dict[str, str], train: list[bytes], score: list[bytes]
) -> list[threading.Thread]:
    """Both topics written over about 8 s, while the workers run (keys spread the events
    over the partitions)."""
    threads = [
        threading.Thread(
            target=produce,
            args=(bootstrap, topics[role], values),
            kwargs={"keys": [str(i).encode() for i in range(len(values))], "rate": len(values) / 8},
        )
        for role, values, rate in (
            ("train", train, len(train) / 8),
            ("score", score, len(score) / 8),
        )
    ]
    for t in threads:
        t.start()
    return threads


def holdout_auc(database: str, name: str, workers: list[str]) -> float:
    """ROC AUC on fresh events of the workers' final models merged (one worker: its own)."""
    with Store(database, name) as store:
        checkpoint = store.load_checkpoint()
    assert checkpoint is not None
    featurizer = Featurizer.from_state(checkpoint.extra[f"{workers[0]}/featurizer"])
    model: Any = model_from_state(checkpoint.model_states[f"{workers[0]}/model/logistic"])
    for other in workers[1:]:
        model.merge(model_from_state(checkpoint.model_states[f"{other}/model/logistic"]))
    fresh = events(20_000, 99)
    batch = decode_json(Messages.from_values(fresh), "y", "classification").batch
    proba = model.predict_proba_many(featurizer.transform(batch))
    positive = proba[:, list(model.classes).index(1)]
    return float(roc_auc_score(batch.columns["y"].astype(int), positive))


def check_results(database: str, name: str, topics: dict[str, str], expected: int) -> None:
    with Store(database, name) as store, store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT source_partition, source_offset FROM {name}_results"
        ).all()
        checkpoint = store.load_checkpoint()
    assert len(rows) == len(set(rows)) == expected  # every event scored, once
    assert checkpoint is not None
    learned = sum(o for (t, _), o in checkpoint.offsets.items() if t == topics["train"])
    assert learned == 60_000  # every training event learned by someone


def test_two_workers_split_the_partitions_and_merge(
    kafka_bootstrap: str, tmp_path: Path, unique_name: str
) -> None:
    topics, train, score = setup(kafka_bootstrap, unique_name)
    threads = feed(kafka_bootstrap, topics, train, score)

    pair_db = f"sqlite:///{tmp_path / 'pair.db'}"
    pair_spec = write_spec(tmp_path / "pair.json", spec("pair", kafka_bootstrap, pair_db, topics))
    workers = [start(pair_spec, w, tmp_path) for w in ("a", "b")]
    # both take part: the group gives each of them some of the partitions of both topics
    wait_for_assignment(kafka_bootstrap, "pair_group", 2, 2 * PARTITIONS, workers)
    for t in threads:
        t.join()
    for worker in workers:
        worker.wait(timeout=240)

    solo_db = f"sqlite:///{tmp_path / 'solo.db'}"
    solo_spec = write_spec(tmp_path / "solo.json", spec("solo", kafka_bootstrap, solo_db, topics))
    start(solo_spec, "s", tmp_path).wait(timeout=240)

    check_results(pair_db, "pair", topics, len(score))
    with Store(pair_db, "pair") as store:
        states = store.load_checkpoint().model_states  # type: ignore[union-attr]
    assert {"a/model/logistic", "b/model/logistic"} <= set(states)
    assert learned_by(pair_db, "a") > 0 and learned_by(pair_db, "b") > 0
    merged, single = holdout_auc(pair_db, "pair", ["a", "b"]), holdout_auc(solo_db, "solo", ["s"])
    assert abs(merged - single) <= 0.01, (merged, single)


def test_a_killed_worker_s_partitions_move_to_the_other(
    kafka_bootstrap: str, tmp_path: Path, unique_name: str
) -> None:
    topics, train, score = setup(kafka_bootstrap, unique_name)
    threads = feed(kafka_bootstrap, topics, train, score)
    database = f"sqlite:///{tmp_path / 'kill.db'}"
    spec_path = write_spec(tmp_path / "kill.json", spec("kill", kafka_bootstrap, database, topics))
    a, b = start(spec_path, "a", tmp_path), start(spec_path, "b", tmp_path)
    wait_for_assignment(kafka_bootstrap, "kill_group", 2, 2 * PARTITIONS, [a, b])
    wait_until(lambda: learned_by(database, "a"), "a checkpoint of worker a", workers=[a, b])
    a.kill()
    # the group notices a is gone (its session times out) and gives b every partition
    wait_for_assignment(kafka_bootstrap, "kill_group", 1, 2 * PARTITIONS, [b])
    for t in threads:
        t.join()
    b.wait(timeout=240)
    check_results(database, "kill", topics, len(score))
