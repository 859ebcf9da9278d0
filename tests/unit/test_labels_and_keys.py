"""Labels the user controls (``classes``, ``missing_label``) and keys and integers that read
back as written, through the real worker on the in-process stream."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import sqlalchemy as sa

from streamfit.runtime.build import build_worker
from streamfit.runtime.worker import Worker
from streamfit.spec import validate_spec
from streamfit.spec.model import PipelineSpec
from streamfit.store import Store
from streamfit.streams.memory import MemoryBroker


def make_spec(db: str, **overrides: Any) -> PipelineSpec:
    data: dict[str, Any] = {
        "name": "sms",
        "topics": {"train": "train", "score": "score"},
        "target": "label",
        "models": [{"name": "lr", "builtin": "logistic_regression"}],
        "outputs": {"database": db, "predictions_topic": "predictions"},
        "batch": {"max_records": 50, "timeout": 0.01},
        "learning": {"block_events": 10},
    }
    data.update(overrides)
    return validate_spec(data)


def messages(n: int, labels: list[Any] | None, first_id: int = 0) -> list[bytes]:
    rng = np.random.default_rng(first_id)
    out = []
    for i in range(n):
        event: dict[str, Any] = {"id": first_id + i, "wave": i % 3, "x": float(rng.normal())}
        if labels is not None:
            event["label"] = labels[i % len(labels)]
        out.append(orjson.dumps(event))
    return out


def run(spec: PipelineSpec, broker: MemoryBroker) -> Worker:
    worker = build_worker(spec, broker=broker)
    ends = {tp: o for t in spec.topics.all for tp, o in broker.end_offsets(t).items()}
    worker.run(until=lambda w: all(w.read.get(tp, 0) >= o for tp, o in ends.items()))
    return worker


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'x.db'}"


def test_a_label_outside_the_classes_is_a_dead_letter_and_no_class(db: str) -> None:
    broker = MemoryBroker()
    train = messages(60, ["ham", "spam"])
    train[25] = orjson.dumps({"id": 25, "wave": 1, "x": 0.3, "label": "SPAM"})
    train[40] = orjson.dumps({"id": 40, "wave": 1, "x": 0.3, "label": 5})
    broker.append("train", train)
    worker = run(make_spec(db, classes=["ham", "spam"]), broker)
    assert sorted(worker.slots[0].model.classes) == ["ham", "spam"]  # type: ignore[attr-defined]
    letters = worker.store.read_dead_letters()
    assert [(d.offset, d.reason) for d in letters] == [
        (25, "label 'SPAM' is not one of the classes ham, spam (spec: classes)"),
        (40, "label 5 is not one of the classes ham, spam (spec: classes)"),
    ]
    assert letters[0].value == train[25]  # the original bytes, nothing lost
    assert worker.stats.events_trained == 58
    worker.close()


def test_without_classes_each_new_class_is_logged_once(
    db: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker = MemoryBroker()
    broker.append("train", messages(60, ["ham", "spam"]) + messages(5, ["SPAM"], first_id=60))
    with caplog.at_level(logging.WARNING, logger="streamfit.labels"):
        worker = run(make_spec(db), broker)
    new = [r.getMessage() for r in caplog.records if r.getMessage().startswith("new class")]
    assert [m.split(",")[0] for m in new] == [
        "new class 'ham'",
        "new class 'spam'",
        "new class 'SPAM'",
    ]
    assert "first seen at train[0]@60" in new[2] and "'classes:'" in new[2]
    worker.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="streamfit.labels"):  # a restart: known
        broker.append("train", messages(5, ["spam", "SPAM"], first_id=65))
        run(make_spec(db), broker).close()
    assert not [r for r in caplog.records if r.getMessage().startswith("new class")]


@pytest.mark.parametrize("rule", ["dead_letter", "score"])
def test_a_missing_label_on_a_train_only_topic_follows_the_rule(db: str, rule: str) -> None:
    broker = MemoryBroker()
    train = messages(30, [0, 1])
    train[7] = orjson.dumps({"id": 7, "wave": 1, "x": 0.1})
    train[8] = orjson.dumps({"id": 8, "wave": 1, "x": 0.1, "label": None})
    broker.append("train", train)
    worker = run(make_spec(db, missing_label=rule), broker)
    letters = [(d.offset, d.reason) for d in worker.store.read_dead_letters()]
    results = worker.store.count("sms_results")
    if rule == "dead_letter":
        reason = "no label: 'label' is missing on train topic 'train' (spec: missing_label: "
        assert letters == [(7, reason + "dead_letter)"), (8, reason + "dead_letter)")]
        assert results == 0
    else:
        assert letters == [] and results == 2  # scored, as unlabeled events
    worker.close()


def test_keys_and_integers_read_back_as_written(db: str) -> None:
    broker = MemoryBroker()
    broker.append("train", messages(40, [0, 1]))
    broker.append("score", messages(5, None, first_id=4500), keys=[b"kafka-key"] * 5)
    worker = run(make_spec(db, key="id"), broker)
    records = broker.read("predictions")
    assert [k for k, _ in records] == [b"4500", b"4501", b"4502", b"4503", b"4504"]
    assert [orjson.loads(v)["key"] for _, v in records] == ["4500", "4501", "4502", "4503", "4504"]
    rows = worker.store.read_results("sms_results")
    assert [r["event_key"] for r in rows] == ["4500", "4501", "4502", "4503", "4504"]
    assert [(r["id"], r["wave"]) for r in rows] == [
        (4500, 0),
        (4501, 1),
        (4502, 2),
        (4503, 0),
        (4504, 1),
    ]
    columns = {
        c["name"]: c["type"] for c in sa.inspect(worker.store.engine).get_columns("sms_results")
    }
    assert isinstance(columns["id"], sa.Integer) and isinstance(columns["wave"], sa.Integer)
    assert isinstance(columns["x"], sa.Float)
    worker.close()


def test_an_integer_column_widens_when_a_fraction_comes(tmp_path: Path) -> None:
    from streamfit.batch import Batch, Messages
    from streamfit.store import ModelPredictions

    def batch(values: list[float], first: int) -> Batch:
        meta = Messages.from_values([b"{}"] * len(values), topic="t", first_offset=first)
        return Batch({"n": np.array(values)}, meta)

    champion = ModelPredictions("m", 1, np.array(["a", "b"], dtype=object), np.array([0.5, 0.5]))
    with Store(f"sqlite:///{tmp_path / 'w.db'}", "p") as store:
        store.write_results(
            "p_results", batch([1.0, np.nan], 0), [champion], None, "classification"
        )
        store.write_results("p_results", batch([2.5, 3.0], 2), [champion], None, "classification")
        assert [r["n"] for r in store.read_results("p_results")] == [1, None, 2.5, 3]
        assert (
            store.write_results(
                "p_results", batch([7.25, 8.0], 4), [champion], None, "classification"
            )
            == 2
        )
        assert [r["n"] for r in store.read_results("p_results")][-2:] == [7.25, 8]
