"""Two workers of one pipeline share a consumer group, split the partitions, and each scores
with a model merged from both through the store. One worker killed: the other takes over its
partitions and nothing is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
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
from streamfit.streams.base import OutRecord
from streamfit.streams.kafka import KafkaSink, create_topics

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


def produce_over_time(bootstrap: str, topic: str, values: list[bytes], seconds: float) -> None:
    """Spread ``values`` over ``seconds`` (keys spread them over the partitions)."""
    sink = KafkaSink(bootstrap, topic)
    chunks = 20
    step = len(values) // chunks + 1
    for i in range(chunks):
        part = values[i * step : (i + 1) * step]
        sink.write([OutRecord(str(i * step + j).encode(), v) for j, v in enumerate(part)])
        sink.flush(60)
        time.sleep(seconds / chunks)
    sink.close()


def write_spec(
    path: Path, name: str, bootstrap: str, database: str, topics: dict[str, str]
) -> None:
    spec = {
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
    path.write_text(orjson.dumps(spec).decode())


def start(spec: Path, worker: str, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "streamfit.cli.main", "--log-level", "INFO", "run"]
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [*command, str(spec), "--worker-id", worker, "--stop-when-idle", "8"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )


def setup(bootstrap: str, name: str) -> tuple[dict[str, str], list[bytes], list[bytes]]:
    topics = {"train": f"{name}_train", "score": f"{name}_score"}
    create_topics(bootstrap, list(topics.values()), partitions=PARTITIONS)
    return topics, events(60_000, 1), events(6_000, 2)


def feed(
    bootstrap: str, topics: dict[str, str], train: list[bytes], score: list[bytes]
) -> list[threading.Thread]:
    threads = [
        threading.Thread(target=produce_over_time, args=(bootstrap, topics["train"], train, 8.0)),
        threading.Thread(target=produce_over_time, args=(bootstrap, topics["score"], score, 8.0)),
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
    pair_spec = tmp_path / "pair.json"
    write_spec(pair_spec, "pair", kafka_bootstrap, pair_db, topics)
    procs = [start(pair_spec, w, tmp_path / f"{w}.log") for w in ("a", "b")]
    for t in threads:
        t.join()
    for proc, w in zip(procs, ("a", "b"), strict=True):
        assert proc.wait(timeout=240) == 0, (tmp_path / f"{w}.log").read_text()[-3000:]

    solo_db = f"sqlite:///{tmp_path / 'solo.db'}"
    solo_spec = tmp_path / "solo.json"
    write_spec(solo_spec, "solo", kafka_bootstrap, solo_db, topics)
    solo = start(solo_spec, "s", tmp_path / "s.log")
    assert solo.wait(timeout=240) == 0, (tmp_path / "s.log").read_text()[-3000:]

    check_results(pair_db, "pair", topics, len(score))
    for w in ("a", "b"):  # both took part: each assigned some partitions
        assert "assigned [(" in (tmp_path / f"{w}.log").read_text()
    with Store(pair_db, "pair") as store:
        states = store.load_checkpoint().model_states  # type: ignore[union-attr]
    assert {"a/model/logistic", "b/model/logistic"} <= set(states)
    merged, single = holdout_auc(pair_db, "pair", ["a", "b"]), holdout_auc(solo_db, "solo", ["s"])
    assert abs(merged - single) <= 0.01, (merged, single)


def test_a_killed_worker_s_partitions_move_to_the_other(
    kafka_bootstrap: str, tmp_path: Path, unique_name: str
) -> None:
    topics, train, score = setup(kafka_bootstrap, unique_name)
    threads = feed(kafka_bootstrap, topics, train, score)
    database = f"sqlite:///{tmp_path / 'kill.db'}"
    spec = tmp_path / "kill.json"
    write_spec(spec, "kill", kafka_bootstrap, database, topics)
    a = start(spec, "a", tmp_path / "a.log")
    b = start(spec, "b", tmp_path / "b.log")
    time.sleep(5)
    a.send_signal(signal.SIGKILL)
    a.wait(timeout=30)
    for t in threads:
        t.join()
    assert b.wait(timeout=240) == 0, (tmp_path / "b.log").read_text()[-3000:]
    check_results(database, "kill", topics, len(score))
    assert (tmp_path / "b.log").read_text().count("assigned [(") >= 2  # b took a's share
