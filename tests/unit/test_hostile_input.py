"""Hostile input through the whole loop (in-process stream, SQLite): nothing it sends can
stop the worker or poison what it learns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from sklearn.metrics import roc_auc_score

from streamfit.runtime.build import build_worker
from streamfit.runtime.worker import Worker
from streamfit.spec import validate_spec
from streamfit.streams.memory import MemoryBroker

WEIGHTS = np.array([1.5, -2.0, 0.7, 0.0, 1.1, -0.4, 0.0, 0.9, -1.3, 0.2])


def numeric_events(n: int, seed: int) -> tuple[list[dict[str, Any]], list[int]]:
    """Ten normal fields ``x0..x9`` and a label they decide (a separable stream)."""
    X = np.random.default_rng(seed).normal(size=(n, len(WEIGHTS))).round(5)
    y = (X @ WEIGHTS > 0).astype(int).tolist()
    return [{f"x{i}": v for i, v in enumerate(row)} for row in X.tolist()], y


def run_pipeline(tmp_path: Path, train: list[bytes], score: list[bytes]) -> Worker:
    spec = validate_spec(
        {
            "name": "hostile",
            "topics": {"train": "train", "score": "score"},
            "target": "y",
            "models": [{"name": "lr", "builtin": "logistic_regression"}],
            "outputs": {"database": f"sqlite:///{tmp_path / 'db.sqlite'}"},
            "batch": {"max_records": 500, "timeout": 0.01},
        }
    )
    tmp_path.mkdir()
    broker = MemoryBroker()
    broker.append("train", train)
    worker = build_worker(spec, broker=broker)
    ends = broker.end_offsets("train")
    worker.run(until=lambda w: all(w.read.get(tp, 0) >= o for tp, o in ends.items()))
    broker.append("score", score)
    ends = broker.end_offsets("score")
    worker.run(until=lambda w: all(w.read.get(tp, 0) >= o for tp, o in ends.items()))
    return worker


def scored_auc(worker: Worker, labels: list[int]) -> float:
    rows = worker.store.read_results("hostile_results")
    assert [row["source_offset"] for row in rows] == list(range(len(labels)))
    p1 = [r["probability"] if r["prediction"] == "1" else 1 - r["probability"] for r in rows]
    return float(roc_auc_score(labels, p1))


@pytest.mark.parametrize("poisoned", [1, 5, 100])
def test_wrong_typed_values_in_the_first_events_do_not_retype_a_field(
    tmp_path: Path, poisoned: int
) -> None:
    events, labels = numeric_events(6000, seed=1)
    train = [{**event, "y": label} for event, label in zip(events, labels, strict=True)]
    score, score_labels = numeric_events(2000, seed=2)
    clean = run_pipeline(tmp_path / "clean", *_payloads(train, score))
    for event in train[:poisoned]:
        event["x0"] = "abc"
    hostile = run_pipeline(tmp_path / "hostile", *_payloads(train, score))

    assert hostile.featurizer.schema["x0"] == "numeric"
    assert hostile.featurizer.invalid_values == {"x0": poisoned}
    clean_auc, hostile_auc = scored_auc(clean, score_labels), scored_auc(hostile, score_labels)
    assert clean_auc > 0.99
    assert hostile_auc > clean_auc - 0.01
    columns = hostile.store.field_columns("hostile_results")
    assert columns["x0"] == "x0"


def _payloads(train: list[dict[str, Any]], score: list[dict[str, Any]]) -> tuple[list[bytes], ...]:
    return [orjson.dumps(e) for e in train], [orjson.dumps(e) for e in score]


def test_dead_letter_records_stay_below_the_producers_default_size(tmp_path: Path) -> None:
    from streamfit.runtime.outputs import MAX_RECORD_PAYLOAD

    spec = validate_spec(
        {
            "name": "dead",
            "topics": {"score": "score"},
            "models": [{"name": "lr", "builtin": "logistic_regression"}],
            "outputs": {
                "database": f"sqlite:///{tmp_path / 'db.sqlite'}",
                "dead_letter_topic": "d",
            },
        }
    )
    broker = MemoryBroker()
    small, large = b"[" + b"1," * 1000 + b"1]", b"[" + b"1," * 400_000 + b"1]"
    broker.append("score", [small, large])
    worker = build_worker(spec, broker=broker)
    worker.run(until=lambda w: w.read.get(("score", 0), 0) >= 2)
    records = [orjson.loads(value or b"") for _, value in broker.read("d")]
    assert [r["payload_bytes"] for r in records] == [len(small), len(large)]
    assert len(large) > MAX_RECORD_PAYLOAD and records[1]["payload_base64"] is None
    assert records[0]["payload_base64"] is not None
    assert all(len(value or b"") < 1_000_000 for _, value in broker.read("d"))
    assert [d.value for d in worker.store.read_dead_letters()] == [small, large]


def test_a_key_too_long_for_a_record_leaves_the_event_its_own_key(tmp_path: Path) -> None:
    from streamfit.limits import MAX_KEY_BYTES

    spec = validate_spec(
        {
            "name": "keys",
            "topics": {"score": "score"},
            "key": "id",
            "models": [{"name": "lr", "builtin": "logistic_regression"}],
            "outputs": {
                "database": f"sqlite:///{tmp_path / 'db.sqlite'}",
                "predictions_topic": "p",
            },
        }
    )
    broker = MemoryBroker()
    ids = ["a" * MAX_KEY_BYTES, "b" * (MAX_KEY_BYTES + 1), "c" * 900_000]
    events = [orjson.dumps({"id": i, "x": 1.0, "bad\x01name": 1}) for i in ids]
    broker.append("score", events, keys=[b"k0", b"k1", b"k2"], partition=0)
    worker = build_worker(spec, broker=broker)
    worker.run(until=lambda w: w.read.get(("score", 0), 0) >= 3)
    records = broker.read("p")
    assert [key for key, _ in records] == [ids[0].encode(), b"k1", b"k2"]
    assert all(len(value or b"") < 10_000 for _, value in records)
    rows = worker.store.read_results("keys_results")
    assert [r["event_key"] for r in rows] == [ids[0], "k1", "k2"]
    assert [r["event_payload"] for r in rows] == [e.decode() for e in events]  # "bad\x01name"


@pytest.mark.parametrize("value", [1e6, 1e77, 1e99])
def test_one_large_number_stops_no_step(tmp_path: Path, value: float) -> None:
    events, labels = numeric_events(1500, seed=1)
    train = [{**event, "y": label} for event, label in zip(events, labels, strict=True)]
    train[100]["x1"] = value
    score, _ = numeric_events(100, seed=2)
    worker = run_pipeline(tmp_path / "run", *_payloads(train, score))  # warnings are errors
    assert worker.stats.dead_letters == 0 and worker.store.count("hostile_results") == 100
