"""Delayed labels on the in-process stream: the join, the worker around it, its state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from streamfit.batch import Messages
from streamfit.delayed import LabelJoin
from streamfit.errors import SpecError
from streamfit.features.featurizer import KeptRows
from streamfit.runtime.build import build_worker
from streamfit.runtime.worker import Worker
from streamfit.spec import validate_spec
from streamfit.spec.model import PipelineSpec
from streamfit.store import Store
from streamfit.streams.memory import MemoryBroker


def make_spec(db: str, **overrides: Any) -> PipelineSpec:
    data: dict[str, Any] = {
        "name": "late",
        "topics": {"score": "events", "labels": "outcomes"},
        "key": "id",
        "target": "y",
        "models": [{"name": "lr", "builtin": "logistic_regression"}],
        "evaluation": {"window": 200, "interval_events": 500},
        "outputs": {"database": db},
        "batch": {"max_records": 97, "timeout": 0.01},
        "learning": {"block_events": 50},
        "stats": False,
    }
    data.update(overrides)
    return validate_spec(data)


def stream(n: int, seed: int, max_delay: int) -> tuple[list[bytes], list[tuple[int, bytes]]]:
    """``n`` events with ids, and their labels, each due 1 to ``max_delay`` events later."""
    rng = np.random.default_rng(seed)
    events, labels = [], []
    for i in range(n):
        x = rng.normal(size=3).tolist()
        color = ["red", "green", "blue"][int(rng.integers(3))]
        y = int(x[0] + 0.5 * x[1] + (color == "red") > 0)
        event = {"id": f"e{i}", "a": x[0], "b": x[1], "c": x[2], "color": color}
        events.append(orjson.dumps(event))
        due = i + int(rng.integers(1, max_delay + 1))
        labels.append((due, orjson.dumps({"id": f"e{i}", "y": y})))
    labels.sort(key=lambda pair: pair[0])
    return events, labels


def publish(broker: MemoryBroker, events: list[bytes], labels: list[tuple[int, bytes]]) -> None:
    """Events and labels in arrival order: a label after the event it is due after."""
    pending = list(labels)
    for i, event in enumerate(events):
        broker.append("events", [event])
        while pending and pending[0][0] <= i:
            broker.append("outcomes", [pending.pop(0)[1]])
    broker.append("outcomes", [label for _, label in pending])


def run_all(worker: Worker, broker: MemoryBroker) -> None:
    ends = {tp: o for t in worker.spec.topics.all for tp, o in broker.end_offsets(t).items()}
    worker.run(until=lambda w: all(w.read.get(tp, 0) >= o for tp, o in ends.items()))


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'late.db'}"


def test_late_labels_are_learned_with_the_features_of_their_events(db: str) -> None:
    events, labels = stream(1500, 1, max_delay=300)
    broker = MemoryBroker()
    publish(broker, events, labels)
    worker = build_worker(make_spec(db), broker=broker)
    run_all(worker, broker)
    try:
        slot = worker.slots[0]
        assert slot.events_learned == 1500 and worker.head.events_learned == 1500
        join = worker.head.delayed
        assert join is not None
        assert join.join.counters["labels_matched"] == 1500
        assert join.join.counters["events_waiting"] == join.join.counters["labels_waiting"] == 0
        rows = worker.store.read_results("late_results")
        assert len(rows) == 1500 and all(row["label"] in ("0", "1") for row in rows)
        served = worker.evaluation.evaluators["lr"].snapshot()
        assert served["events_seen"] == 1500 and served["roc_auc"] > 0.8
        figures = worker.store.read_label_join("late_labels")
        last = figures[-1]
        assert last["labels_matched"] == 1500 and last["learned_roc_auc"] > served["roc_auc"]
        assert 1 <= last["mean_delay_events"] <= 300
        assert worker.store.read_training("late_training")[-1]["events_seen"] == 1500
        assert worker.store.read_dead_letters() == []
    finally:
        worker.close()


def test_bad_label_events_are_dead_letters_with_their_reasons(db: str) -> None:
    broker = MemoryBroker()
    broker.append("events", [orjson.dumps({"id": i, "a": float(i)}) for i in range(3)])
    bad = [
        {"y": 1},  # no key
        {"id": {"nested": 1}, "y": 1},
        {"id": 2.5, "y": 1},
        {"id": 1, "y": [1]},
        {"id": 1, "y": "maybe"},
        {"id": 1},
        [1, 2],
    ]
    broker.append("outcomes", [orjson.dumps(b) for b in bad] + [b"{nope"])
    broker.append("outcomes", [orjson.dumps({"id": 0, "y": 1}), orjson.dumps({"id": 0, "y": 0})])
    broker.append("outcomes", [orjson.dumps({"id": 77, "y": 1})])  # no such event
    broker.append("events", [orjson.dumps({"id": i, "a": 1.0}) for i in range(100, 125)])
    spec = make_spec(db, classes=[0, 1], labels={"ttl": 10}, learning={"block_events": 1})
    worker = build_worker(spec, broker=broker)
    run_all(worker, broker)
    worker.close()
    with Store(db, "late") as store:
        letters = {d.offset: d.reason for d in store.read_dead_letters()}
    assert letters[0] == "label event without a key: no 'id' or 'key' field"
    assert letters[1].startswith('label event\'s key {"nested":1} is an object')
    assert letters[2].startswith("label event's key 2.5 is a fraction")
    assert "target 'y' is an array" in letters[3]  # the decoder's own check
    assert letters[4] == "label 'maybe' is not one of the classes 0, 1 (spec: classes)"
    assert letters[5] == "label event without a label: no 'y' or 'label' field"
    assert letters[6] == "not a JSON object: got an array"
    assert letters[7].startswith("not JSON")
    assert 8 not in letters and 9 not in letters  # learned, and a duplicate: counted
    assert letters[10].startswith("label without an event: no event with key '77' came within")


def test_labels_before_their_events_wait_and_second_labels_are_ignored(db: str) -> None:
    broker = MemoryBroker()
    broker.append("outcomes", [orjson.dumps({"key": "b", "label": 1})])  # before its event
    broker.append("events", [orjson.dumps({"id": k, "a": 1.0}) for k in ("a", "b", "c")])
    broker.append("outcomes", [orjson.dumps({"id": "a", "y": 0})] * 2)  # twice
    spec = make_spec(db, learning={"block_events": 1}, labels={"ttl": {"events": 1000}})
    worker = build_worker(spec, broker=broker)
    run_all(worker, broker)
    try:
        join = worker.head.delayed
        assert join is not None
        counters = join.join.counters
        assert counters["labels_matched"] == 2 and counters["labels_duplicate"] == 1
        assert counters["events_waiting"] == 1  # c: its label never came
        labels = {r["event_key"]: r["label"] for r in worker.store.read_results("late_results")}
        assert labels == {"a": "0", "b": "1", "c": None}
    finally:
        worker.close()


def test_waiting_is_bounded_and_counted(db: str) -> None:
    events, labels = stream(400, 2, max_delay=300)
    broker = MemoryBroker()
    publish(broker, events, labels)
    spec = make_spec(db, labels={"max_waiting": 100, "ttl": {"events": 150}})
    worker = build_worker(spec, broker=broker)
    run_all(worker, broker)
    worker.close()
    with Store(db, "late") as store:
        last = store.read_label_join("late_labels")[-1]
        letters = store.read_dead_letters()
    assert last["events_evicted"] + last["events_expired"] > 0
    late = [d for d in letters if d.reason.startswith("label came after its event stopped")]
    assert last["labels_matched"] + len(late) == 400
    assert last["labels_unmatched"] == len(letters) == len(late)


def test_a_restart_from_any_checkpoint_learns_the_same_bytes(db: str, tmp_path: Path) -> None:
    """A worker abandoned mid-stream (as by kill -9) and a new one resuming from its last
    checkpoint end with the models, featurizer and join of a run that never stopped; no
    label is lost or learned twice."""
    events, labels = stream(3000, 3, max_delay=800)

    def final_state(database: str, stop_at: int | None) -> tuple[dict[str, bytes], int]:
        broker = MemoryBroker()
        publish(broker, events, labels)
        spec = make_spec(database, checkpoint={"interval_events": 700, "interval_seconds": 3600})
        if stop_at is not None:  # abandoned: no final checkpoint, nothing closed
            first = build_worker(spec, broker=broker)
            while first.stats.events_in < stop_at:
                first.step()
            assert first.stats.checkpoints > 0 and first.head.events_learned < 3000
        worker = build_worker(spec, broker=broker)
        run_all(worker, broker)
        worker.close()
        with Store(database, "late") as store:
            checkpoint = store.load_checkpoint()
            assert checkpoint is not None
            learned = store.read_label_join("late_labels")[-1]["labels_matched"]
            return {**checkpoint.model_states, **checkpoint.extra}, learned

    calm, calm_learned = final_state(db, None)
    crash, crash_learned = final_state(f"sqlite:///{tmp_path / 'crash.db'}", 2200)
    assert calm_learned == crash_learned == 3000
    for name in ("0/model/lr", "0/featurizer"):
        assert crash[name] == calm[name], name
    calm_join, crash_join = (LabelJoin.from_state(s["0/labels"]) for s in (calm, crash))
    assert calm_join.counters == crash_join.counters


def test_a_spec_with_labels_topics_needs_a_key_and_matrix_models(db: str) -> None:

    with pytest.raises(SpecError, match="key"):
        make_spec(db, key=None)
    with pytest.raises(SpecError, match="reads: matrix"):
        make_spec(db, models=[{"name": "t", "river": "tree.HoeffdingTreeClassifier"}])
    with pytest.raises(SpecError, match="labels only"):
        make_spec(db, topics={"score": "events", "labels": "events"})
    naive_bayes = {"name": "nb", "sklearn": "naive_bayes.MultinomialNB"}
    with pytest.raises(SpecError, match="reads events as records"):
        build_worker(make_spec(db, models=[naive_bayes]), broker=MemoryBroker())


def kept(n: int) -> KeptRows:
    empty = (np.zeros(0, np.intp), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.intp))
    return KeptRows(np.arange(n, dtype=np.float64).reshape(n, 1), np.zeros((n, 0)), empty)


def test_the_join_expires_by_event_time_and_keeps_its_state() -> None:
    join = LabelJoin(["m"], regression=True, ttl_ms=1000, max_waiting=10)
    events = Messages.from_values([b"{}"] * 3, topic="ev", timestamp_ms=5000)
    served = {"m": (np.array([[1.0], [2.0], [3.0]]), [])}
    join.deposit([b"a", b"b", b"c"], kept(3), served, events)
    restored = LabelJoin.from_state(join.state())
    assert restored.state() == join.state()
    later = Messages.from_values([b'{"k": "a"}'], topic="lb", timestamp_ms=5500)
    matches = restored.labels([b"a"], [1.5], later)
    assert matches.kept.numbers.tolist() == [[0.0]] and matches.delay_ms.tolist() == [500]
    much_later = Messages.from_values([b'{"k": "x"}'], topic="lb", timestamp_ms=6001)
    restored.labels([b"x"], [0.5], much_later)  # moves the clock past b and c's ttl
    assert restored.counters["events_expired"] == 2
    late = Messages.from_values([b'{"k": "b"}'], topic="lb", first_offset=9, timestamp_ms=6002)
    letters = restored.labels([b"b"], [0.5], late).unmatched
    assert [d.offset for d in letters] == [9] and "stopped waiting" in letters[0].reason
