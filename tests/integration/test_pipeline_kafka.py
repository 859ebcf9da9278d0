"""The whole pipeline on the real broker, into each real database.

Two topics, `train` and `score`, on Apache Kafka; the worker learns from one while it
classifies the other; results, metrics and dead letters land in SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from streamfit.runtime.build import build_worker
from streamfit.runtime.worker import Worker
from streamfit.spec import validate_spec
from streamfit.spec.model import PipelineSpec
from streamfit.store import Store
from streamfit.streams.kafka import create_topics
from tests.integration.support import (
    group_members,
    produce,
    read_topic,
    start_worker,
    wait_until,
    write_spec,
)

BAD_EVENTS = [b"{not json", b'"a string"', b'{"a": 1.0, "y": {"nested": true}}']


def make_events(n: int, seed: int, labeled: bool) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a, b = rng.normal(size=2).tolist()
        city = f"city{int(rng.integers(50))}"
        event: dict[str, Any] = {"id": f"{seed}-{i}", "a": a, "b": b, "city": city}
        if labeled:
            event["y"] = int(a - b > 0)
        out.append(orjson.dumps(event))
    return out


def spec_for(name: str, bootstrap: str, database: str) -> PipelineSpec:
    return validate_spec(
        {
            "name": name,
            "source": {"kind": "kafka", "bootstrap_servers": bootstrap, "group_id": name},
            "topics": {"train": f"{name}_train", "score": f"{name}_score"},
            "key": "id",
            "target": "y",
            "models": [
                {"name": "logistic", "builtin": "logistic_regression"},
                {
                    "name": "sgd",
                    "sklearn": "linear_model.SGDClassifier",
                    "params": {"loss": "log_loss", "classes": [0, 1]},
                },
            ],
            "evaluation": {"interval_events": 500, "window": 200},
            "outputs": {
                "database": database,
                "predictions_topic": f"{name}_predictions",
                "dead_letter_topic": f"{name}_dead",
            },
            "batch": {"max_records": 500, "timeout": 0.1},
        }
    )


def run_until(worker: Worker, total: int, timeout: float = 120) -> None:
    """Run the worker in this process until it has taken ``total`` events in."""
    deadline = time.monotonic() + timeout
    worker.run(until=lambda w: w.stats.events_in >= total or time.monotonic() > deadline)
    assert worker.stats.events_in >= total, f"only {worker.stats.events_in}/{total} events"


def test_train_and_score_from_kafka_into_sql(
    kafka_bootstrap: str, database_url: str, unique_name: str
) -> None:
    spec = spec_for(unique_name, kafka_bootstrap, database_url)
    create_topics(kafka_bootstrap, [*spec.topics.all, f"{unique_name}_predictions"])
    train, score = make_events(3000, 1, True), make_events(400, 2, False)
    produce(kafka_bootstrap, spec.topics.train[0], train[:1500] + BAD_EVENTS + train[1500:])

    worker = build_worker(spec)
    run_until(worker, len(train) + len(BAD_EVENTS))  # a model first, then events to classify
    produce(kafka_bootstrap, spec.topics.score[0], score)
    run_until(worker, len(train) + len(BAD_EVENTS) + len(score))
    worker.store.close()

    with Store(database_url, unique_name) as store:
        assert store.count(f"{unique_name}_results") == 400
        letters = store.read_dead_letters()
        assert sorted(letter.value for letter in letters) == sorted(BAD_EVENTS)
        assert all(letter.topic == spec.topics.train[0] for letter in letters)
        reasons = {letter.value: letter.reason for letter in letters}
        assert "not JSON" in reasons[b"{not json"]
        assert "not a JSON object" in reasons[b'"a string"']
        assert "target 'y'" in reasons[b'{"a": 1.0, "y": {"nested": true}}']
        rows = store.read_results(f"{unique_name}_results")
        assert {row["source_offset"] for row in rows} == set(range(400))
        assert all(row["prediction"] in ("0", "1") for row in rows)
        assert {row["model"] for row in rows} == {"logistic"}
        assert all(row["city"].startswith("city") for row in rows)
        training = store.read_training(f"{unique_name}_training", model="logistic")
        seen = [row["events_seen"] for row in training]
        assert seen == sorted(seen) and seen[-1] == 3000
        assert training[-1]["roc_auc"] > 0.9

    predictions = read_topic(kafka_bootstrap, f"{unique_name}_predictions", at_least=400)
    assert len(predictions) == 400
    first = orjson.loads(predictions[0])
    assert first["model"] == "logistic" and "sgd" in first["challengers"]
    dead = read_topic(kafka_bootstrap, f"{unique_name}_dead", at_least=3)
    assert {orjson.loads(d)["reason"] for d in dead} == set(reasons.values())


def test_reprocessing_the_same_offsets_upserts(
    kafka_bootstrap: str, tmp_path: Path, unique_name: str
) -> None:
    database = f"sqlite:///{tmp_path / 'x.db'}"
    spec = spec_for(unique_name, kafka_bootstrap, database)
    create_topics(kafka_bootstrap, spec.topics.all)
    produce(kafka_bootstrap, spec.topics.train[0], make_events(500, 3, True))
    produce(kafka_bootstrap, spec.topics.score[0], make_events(100, 4, False))
    for attempt in range(2):  # progress forgotten: a second group reads the same offsets again
        group = spec.source.model_copy(update={"group_id": f"{unique_name}_{attempt}"})
        worker = build_worker(spec.model_copy(update={"source": group}))
        run_until(worker, 600)
        worker.store.delete_checkpoint()
        worker.store.close()
    with Store(database, unique_name) as store:
        assert store.count(f"{unique_name}_results") == 100


def test_cli_run_stops_cleanly_on_sigterm(
    kafka_bootstrap: str, tmp_path: Path, unique_name: str
) -> None:
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    spec = spec_for(unique_name, kafka_bootstrap, database)
    create_topics(kafka_bootstrap, spec.topics.all)
    produce(kafka_bootstrap, spec.topics.train[0], make_events(1000, 5, True))
    produce(kafka_bootstrap, spec.topics.score[0], make_events(200, 6, False))
    path = write_spec(tmp_path / "pipeline.yaml", spec.model_dump(mode="json"))
    worker = start_worker(path, tmp_path / "cli.log", stop_when_idle=None)  # runs until told
    with Store(database, unique_name) as store:
        wait_until(
            lambda: store.count(f"{unique_name}_results") >= 200,
            "the score topic's 200 results",
            workers=[worker],
        )
    worker.stop()  # SIGTERM: it must exit 0
    with Store(database, unique_name) as store:
        assert store.count(f"{unique_name}_results") == 200
        assert store.load_model("logistic") is not None
        checkpoint = store.load_checkpoint()  # the final one: every event handled
        assert checkpoint is not None and sum(checkpoint.emitted.values()) == 1200
    # and it left its consumer group rather than waiting to be timed out of it
    assert group_members(kafka_bootstrap, unique_name) == ("EMPTY", [])


def test_cli_rejects_a_bad_spec_with_the_key_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: x\ntopics: {score: s}\nmodels: [{name: m, builtin: logistic_regression}]\n"
        "batch: {max_record: 10}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "streamfit.cli.main", "run", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "batch.max_record: unknown key" in proc.stderr


def test_cli_produce_replays_a_file(kafka_bootstrap: str, tmp_path: Path, unique_name: str) -> None:
    path = tmp_path / "events.csv"
    path.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(250)))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamfit.cli.main",
            "produce",
            str(path),
            "--topic",
            unique_name,
            "--bootstrap",
            kafka_bootstrap,
            "--rate",
            "2000",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    values = read_topic(kafka_bootstrap, unique_name, at_least=250)
    assert len(values) == 250
    assert orjson.loads(values[7]) == {"a": 7, "b": 1, "label": 1}


@pytest.mark.parametrize("dummy", [0])
def test_demo_through_kafka_json_summary(kafka_bootstrap: str, tmp_path: Path, dummy: int) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamfit.cli.main",
            "demo",
            "--kafka",
            kafka_bootstrap,
            "--db",
            f"sqlite:///{tmp_path / 'demo.db'}",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    summary = orjson.loads(proc.stdout)
    assert summary["events_trained"] + summary["events_scored"] == 8378
    assert summary["result_rows"] == summary["events_scored"]
    logistic = next(m for m in summary["models"] if m["name"] == "logistic")
    assert logistic["metrics"]["roc_auc"] >= 0.84
