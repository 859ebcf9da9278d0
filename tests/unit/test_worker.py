"""The worker on the in-process stream and SQLite: the whole loop, no mocks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from streamfit.batch import Batch
from streamfit.runtime.build import build_worker
from streamfit.runtime.component import Component, Outcome
from streamfit.runtime.worker import Worker
from streamfit.spec import validate_spec
from streamfit.spec.model import PipelineSpec
from streamfit.store import ModelPredictions, Store
from streamfit.streams.memory import MemoryBroker


def make_spec(db: str, **overrides: Any) -> PipelineSpec:
    data: dict[str, Any] = {
        "name": "t",
        "topics": {"train": "train", "score": "score"},
        "target": "y",
        "models": [
            {"name": "lr", "builtin": "logistic_regression"},
            {"name": "tree", "river": "tree.HoeffdingTreeClassifier"},
        ],
        "evaluation": {"window": 100, "interval_events": 200},
        "outputs": {
            "database": db,
            "predictions_topic": "predictions",
            "dead_letter_topic": "dead",
        },
        "batch": {"max_records": 64, "timeout": 0.01},
        "learning": {"block_events": 64},
    }
    data.update(overrides)
    return validate_spec(data)


def events(n: int, seed: int, labeled: bool) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.normal(size=3).tolist()
        color = ["red", "green", "blue"][int(rng.integers(3))]
        event: dict[str, Any] = {"a": x[0], "b": x[1], "c": x[2], "color": color}
        if labeled:
            event["y"] = int(x[0] + 0.5 * x[1] + (color == "red") > 0)
        out.append(orjson.dumps(event))
    return out


def run_all(worker: Worker, broker: MemoryBroker) -> None:
    """Run until the worker has read to the end of every topic."""
    ends = {tp: o for t in worker.spec.topics.all for tp, o in broker.end_offsets(t).items()}
    worker.run(until=lambda w: all(w.read.get(tp, 0) >= o for tp, o in ends.items()))


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'streamfit.db'}"


def test_trains_and_scores_from_two_topics(db: str) -> None:
    broker = MemoryBroker()
    broker.append("train", events(2000, 1, labeled=True))
    broker.append("score", events(300, 2, labeled=False))
    worker = build_worker(make_spec(db), broker=broker)
    run_all(worker, broker)

    assert worker.stats.events_trained == 2000
    assert worker.stats.events_scored == 300
    assert worker.store.count("t_results") == 300
    training = worker.store.read_training("t_training", model="lr")
    seen = [row["events_seen"] for row in training]
    assert seen == sorted(seen) and seen[-1] == 2000 and len(seen) >= 5
    final = worker.evaluation.evaluators[worker.slots[0].name].snapshot()
    assert final["window_accuracy"] > 0.85 and final["window_roc_auc"] > 0.97
    assert final["roc_auc"] > 0.9
    predictions = broker.read("predictions")
    assert len(predictions) == 300
    first = orjson.loads(predictions[0][1])
    assert first["model"] == "lr" and "tree" in first["challengers"]


def test_malformed_events_become_dead_letters_and_change_nothing_else(
    db: str, tmp_path: Path
) -> None:
    good_train, good_score = events(500, 3, True), events(100, 4, False)

    def run(train: list[bytes], database: str) -> Worker:
        broker = MemoryBroker()
        broker.append("train", train)
        broker.append("score", good_score)
        worker = build_worker(make_spec(database), broker=broker)
        run_all(worker, broker)
        return worker

    clean = run(good_train, db)
    bad = [b"not json", b"[1, 2]", b'{"a": 1, "y": [1]}', b""]
    dirty_train = good_train[:100] + bad + good_train[100:]
    dirty = run(dirty_train, f"sqlite:///{tmp_path / 'dirty.db'}")

    letters = dirty.store.read_dead_letters()
    assert len(letters) == 4
    reasons = " | ".join(sorted(letter.reason for letter in letters))
    assert "JSON" in reasons and "target" in reasons
    assert {letter.value for letter in letters} == set(bad)
    assert dirty.stats.events_trained == clean.stats.events_trained
    assert dirty.store.count("t_results") == clean.store.count("t_results") == 100
    assert dirty.stats.dead_letters == 4 and clean.stats.dead_letters == 0


def test_one_topic_carries_both_roles(db: str) -> None:
    broker = MemoryBroker()
    mixed = [
        e for pair in zip(events(300, 5, True), events(300, 6, False), strict=True) for e in pair
    ]
    broker.append("clicks", mixed)
    spec = make_spec(db, topics={"train": "clicks", "score": "clicks"})
    worker = build_worker(spec, broker=broker)
    run_all(worker, broker)
    assert worker.stats.events_trained == 300
    assert worker.stats.events_scored == 300


def test_replaying_the_same_offsets_upserts(db: str) -> None:
    """A worker that dies before its checkpoint leaves results its successor writes again."""
    broker = MemoryBroker()
    broker.append("train", events(300, 7, True))
    broker.append("score", events(50, 8, False))
    crashed = build_worker(make_spec(db), broker=broker)
    while crashed.step(timeout=0):  # everything handled, nothing checkpointed: then it dies
        pass
    assert crashed.store.count("t_results") == 50
    successor = build_worker(make_spec(db), broker=broker)
    run_all(successor, broker)
    assert successor.stats.events_scored == 50
    assert successor.store.count("t_results") == 50


def test_a_restarted_worker_resumes_from_its_checkpoint(db: str) -> None:
    broker = MemoryBroker()
    broker.append("train", events(1000, 10, True))
    first = build_worker(make_spec(db), broker=broker)
    first.run(until=lambda w: w.stats.events_in >= 600, drain=False)
    broker.append("score", events(40, 11, False))
    second = build_worker(make_spec(db), broker=broker)
    assert second.slots[0].events_learned == first.slots[0].events_learned > 0
    run_all(second, broker)
    assert first.stats.events_in + second.stats.events_in >= 1040
    assert second.slots[0].events_learned == 1000
    assert second.store.count("t_results") == 40


def test_learning_is_deterministic(db: str, tmp_path: Path) -> None:
    states = []
    for i in range(2):
        broker = MemoryBroker()
        broker.append("train", events(1000, 9, True))
        spec = make_spec(f"sqlite:///{tmp_path / f'd{i}.db'}")
        worker = build_worker(spec, broker=broker)
        run_all(worker, broker)
        states.append(worker.slots[0].model.state())
    assert states[0] == states[1]


def test_score_training_events_emits_a_prediction_per_labeled_event(
    db: str, tmp_path: Path
) -> None:
    """Every labeled event is predicted before it is learned, and learning is unchanged."""
    states = []
    for score_training in (False, True):
        broker = MemoryBroker()
        broker.append("train", events(500, 12, True))
        outputs = {
            "database": f"sqlite:///{tmp_path / f'{score_training}.db'}",
            "predictions_topic": "predictions",
            "score_training_events": score_training,
        }
        worker = build_worker(make_spec(db, outputs=outputs), broker=broker)
        run_all(worker, broker)
        states.append(worker.slots[0].model.state())
        emitted = broker.read("predictions")
        if not score_training:
            assert emitted == [] and worker.store.count("t_results") == 0
            continue
        assert worker.stats.events_trained == 500 and worker.stats.events_scored == 500
        records = [orjson.loads(value) for _, value in emitted]
        assert [r["offset"] for r in records] == list(range(500))
        # null until the model has learned its first block, then a class
        assert {r["prediction"] for r in records[:64]} <= {None, 0, 1}
        assert {r["prediction"] for r in records[128:]} == {0, 1}
        rows = worker.store.read_results("t_results")
        assert len(rows) == 500
        labels = [str(orjson.loads(e)["y"]) for e in events(500, 12, True)]  # a text column
        assert sorted((r["source_offset"], r["label"]) for r in rows) == list(enumerate(labels))
    assert states[0] == states[1]


class Tally(Component):
    """A component that counts what each hook saw, keeps it across checkpoints, writes a
    row per metrics interval, and fails on events whose ``color`` is ``"poison"``."""

    def __init__(self) -> None:
        self.observed = self.scored_rows = self.learned_rows = 0
        self.metrics_written = 0

    def observe(self, batch: Batch) -> None:
        self.observed += len(batch)

    def scored(self, batch: Batch, predictions: Sequence[ModelPredictions]) -> None:
        assert [p.name for p in predictions] == ["lr", "tree"]
        if "poison" in batch.columns.get("color", np.array([], dtype=object)).tolist():
            raise ValueError("poison pill")
        self.scored_rows += len(batch)

    def learned(self, outcome: Outcome) -> None:
        if outcome.model == "lr":
            self.learned_rows += len(outcome.labels)

    def state(self) -> dict[str, bytes]:
        return {"tally": orjson.dumps([self.observed, self.scored_rows, self.learned_rows])}

    def restore(self, states: Mapping[str, bytes]) -> None:
        if "tally" in states:
            self.observed, self.scored_rows, self.learned_rows = orjson.loads(states["tally"])

    def write_metrics(self, store: Store, now: float) -> None:
        self.metrics_written += 1


def test_a_component_sees_every_step_and_keeps_its_state(db: str) -> None:
    broker = MemoryBroker()
    broker.append("train", events(1000, 20, True))
    broker.append("score", events(200, 21, False))
    tally = Tally()
    spec = make_spec(db)
    with Worker(spec, *_parts(spec, broker), components=[tally]) as worker:
        run_all(worker, broker)
    assert (tally.observed, tally.scored_rows, tally.learned_rows) == (1200, 200, 1000)
    assert tally.metrics_written >= 5
    again = Tally()
    Worker(spec, *_parts(spec, broker), components=[again]).close()
    assert (again.observed, again.scored_rows, again.learned_rows) == (1200, 200, 1000)


class Shared(Tally):
    """A tally that asks for the other workers' tallies at each checkpoint."""

    merged_keys = ("tally",)

    def __init__(self) -> None:
        super().__init__()
        self.others: dict[str, dict[str, bytes]] = {}

    def merge(self, others: Mapping[str, Mapping[str, bytes]]) -> None:
        self.others = {worker: dict(blobs) for worker, blobs in others.items()}


def test_a_component_gets_the_other_workers_blobs_of_the_keys_it_asks_for(db: str) -> None:
    broker = MemoryBroker()
    broker.append("train", events(300, 30, True))
    spec = make_spec(db)
    first, second, alone = Shared(), Shared(), Tally()
    source, store, predictions, dead = _parts(spec, broker)
    with Worker(spec, source, store, predictions, dead, worker_id="w1", components=[first]) as w:
        run_all(w, broker)
    assert first.others == {}  # no other worker had checkpointed yet
    source, store, predictions, dead = _parts(spec, broker)
    with Worker(
        spec, source, store, predictions, dead, worker_id="w2", components=[second, alone]
    ) as w:
        w.checkpoint()
    assert list(second.others) == ["w1"]
    assert orjson.loads(second.others["w1"]["tally"]) == [300, 0, 300]


def test_an_event_a_step_fails_on_is_a_dead_letter_and_the_rest_go_on(db: str) -> None:
    broker = MemoryBroker()
    broker.append("train", events(500, 22, True))
    score = events(100, 23, False)
    poisoned = [orjson.dumps({**orjson.loads(e), "color": "poison"}) for e in score[40:42]]
    broker.append("score", score[:40] + poisoned + score[42:])
    tally = Tally()
    spec = make_spec(db)
    with Worker(spec, *_parts(spec, broker), components=[tally]) as worker:
        run_all(worker, broker)
        letters = worker.store.read_dead_letters()
        assert sorted(letter.offset for letter in letters) == [40, 41]
        assert {letter.reason for letter in letters} == {"scoring failed: ValueError: poison pill"}
        assert {letter.value for letter in letters} == set(poisoned)
        offsets = [row["source_offset"] for row in worker.store.read_results("t_results")]
        assert sorted(offsets) == [o for o in range(100) if o not in (40, 41)]
        records = [orjson.loads(v)["offset"] for _, v in broker.read("predictions")]
        assert sorted(records) == sorted(offsets)  # each once, none for the poisoned ones
    assert tally.scored_rows == 98


def test_metrics_not_written_before_a_crash_are_written_after_it(db: str) -> None:
    """Killed after a checkpoint but before the metrics caught up: the restarted worker still
    writes the row for what was learned, even when nothing new arrives."""
    broker = MemoryBroker()
    broker.append("train", events(640, 24, True))
    spec = make_spec(db, evaluation={"window": 100, "interval_events": 10_000})
    first = build_worker(spec, broker=broker)
    while first.step(timeout=0):
        pass
    first.checkpoint()  # then it dies: learned 640, metrics never written
    assert first.store.read_training("t_training") == []
    second = build_worker(spec, broker=broker)
    second.run(until=lambda w: True)  # stopped at once: nothing new learned
    rows = second.store.read_training("t_training", model="lr")
    assert [row["events_seen"] for row in rows] == [640]


def _parts(spec: PipelineSpec, broker: MemoryBroker) -> tuple[Any, ...]:
    from streamfit.streams.memory import MemorySink, MemorySource

    return (
        MemorySource(broker, spec.topics.all, "g"),
        Store(spec.outputs.database or "", spec.name),
        MemorySink(broker, "predictions"),
        MemorySink(broker, "dead"),
    )


def test_a_replay_does_not_set_aside_the_same_event_twice(db: str) -> None:
    """Learning resumes at the start of the last incomplete block, before events that were
    already dead-lettered: they are decoded again, not written again."""
    broker = MemoryBroker()
    train = events(100, 25, True)
    train[70] = b"not json"
    broker.append("train", train)
    first = build_worker(make_spec(db), broker=broker)
    while first.step(timeout=0):
        pass
    first.checkpoint()  # learned up to 64 (the block 64-127 is incomplete), emitted 100
    second = build_worker(make_spec(db), broker=broker)
    second.run(until=lambda w: w.read.get(("train", 0), 0) >= 100)
    assert len(broker.read("dead")) == 1
    assert [letter.offset for letter in second.store.read_dead_letters()] == [70]
