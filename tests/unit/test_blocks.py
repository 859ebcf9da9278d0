"""Offset-aligned learning blocks: a model learned through any poll sizes and restarts is the
same model, byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson

from streamfit.batch import Batch, Messages
from streamfit.runtime.blocks import BlockBuffer
from streamfit.runtime.build import build_worker
from streamfit.spec import validate_spec
from streamfit.spec.model import PipelineSpec
from streamfit.streams.memory import MemoryBroker


def rows(offsets: list[int], partition: int = 0, **columns: list[Any]) -> Batch:
    meta = Messages.from_values([b""] * len(offsets), topic="t", partition=partition)
    meta = Messages(
        meta.values,
        meta.keys,
        meta.topics,
        meta.partitions,
        np.array(offsets, dtype=np.int64),
        meta.timestamps,
    )
    cols = {
        k: np.array(v, dtype=float if all(isinstance(x, float) for x in v) else object)
        for k, v in columns.items()
    }
    return Batch(cols or {"x": np.zeros(len(offsets))}, meta)


def test_a_block_is_learned_only_once_read_past_its_end() -> None:
    buf = BlockBuffer(size=10)
    buf.add(rows([0, 3, 7]))
    assert buf.take_complete({("t", 0): 8}) == []
    buf.add(rows([9, 12]))
    blocks = buf.take_complete({("t", 0): 13})
    assert [b.meta.offsets.tolist() for b in blocks] == [[0, 3, 7, 9]]
    assert buf.learned_frontier({("t", 0): 13}) == {("t", 0): 10}


def test_small_polls_are_joined_once_when_their_block_completes(monkeypatch: Any) -> None:
    """Many small polls before a block completes: the queued pieces are not joined on each
    poll (that made every poll's cost grow with the block's number of pieces)."""
    import streamfit.runtime.blocks as blocks

    joins: list[int] = []
    concat = blocks.concat_batches
    monkeypatch.setattr(
        blocks, "concat_batches", lambda parts: joins.append(len(parts)) or concat(parts)
    )
    buf = BlockBuffer(size=100)
    for start in range(0, 130, 10):
        buf.add(rows(list(range(start, start + 10))))
        done = buf.take_complete({("t", 0): start + 10})
        assert [b.meta.offsets.tolist() for b in done] == (
            [list(range(100))] if start == 90 else []
        )
    assert [b.meta.offsets.tolist() for b in buf.take_all()] == [list(range(100, 130))]
    assert joins == [10, 3]


def test_several_complete_blocks_come_out_separately_in_order() -> None:
    buf = BlockBuffer(size=4)
    buf.add(rows(list(range(11))))
    blocks = buf.take_complete({("t", 0): 11})
    assert [b.meta.offsets.tolist() for b in blocks] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [b.meta.offsets.tolist() for b in buf.take_all()] == [[8, 9, 10]]
    assert len(buf) == 0


def test_partitions_are_blocked_independently_and_can_be_dropped() -> None:
    buf = BlockBuffer(size=5)
    buf.add(rows([0, 1, 2, 3, 4, 5], partition=0))
    buf.add(rows([0, 1], partition=1))
    read = {("t", 0): 6, ("t", 1): 2}
    assert [b.meta.partitions[0] for b in buf.take_complete(read)] == [0]
    assert buf.learned_frontier(read) == {("t", 0): 5, ("t", 1): 0}
    buf.drop([("t", 1)])
    assert len(buf) == 1


def test_pieces_with_different_fields_join_with_missing_values() -> None:
    buf = BlockBuffer(size=4)
    buf.add(rows([0, 1], a=[1.0, 2.0]))
    buf.add(rows([2, 3], b=["x", "y"]))
    (block,) = buf.take_complete({("t", 0): 4})
    assert np.isnan(block.columns["a"][2:]).all()
    assert block.columns["b"].tolist() == [None, None, "x", "y"]


def spec(db: str, max_records: int) -> PipelineSpec:
    return validate_spec(
        {
            "name": "blocks",
            "topics": {"train": "train", "score": "score"},
            "target": "y",
            "models": [{"name": "lr", "builtin": "logistic_regression"}],
            "outputs": {"database": db},
            "batch": {"max_records": max_records, "timeout": 0.01},
            "learning": {"block_events": 300},
        }
    )


def stream() -> MemoryBroker:
    rng = np.random.default_rng(3)
    broker = MemoryBroker()
    for _ in range(5):
        X = rng.normal(size=(900, 3)).tolist()
        broker.append(
            "train", [orjson.dumps({"a": a, "b": b, "c": c, "y": int(a > b)}) for a, b, c in X]
        )
        broker.append("score", [orjson.dumps({"a": a, "b": b, "c": c}) for a, b, c in X[:50]])
    return broker


def test_poll_sizes_and_restarts_do_not_change_the_model(tmp_path: Path) -> None:
    def done(w: Any) -> bool:
        return bool(w.read.get(("train", 0), 0) >= 4500 and w.read.get(("score", 0), 0) >= 250)

    calm = build_worker(spec(f"sqlite:///{tmp_path / 'calm.db'}", 1000), broker=stream())
    calm.run(until=done)

    broker = stream()
    db = f"sqlite:///{tmp_path / 'restarts.db'}"
    for max_records, stop_at in ((77, 1234), (501, 2900)):
        worker = build_worker(spec(db, max_records), broker=broker)
        while worker.stats.events_in < stop_at:
            worker.step(timeout=0)
        worker.checkpoint()  # then the process "dies": nothing else is saved
    last = build_worker(spec(db, 333), broker=broker)
    last.run(until=done)

    assert last.slots[0].model.state() == calm.slots[0].model.state()
    assert last.featurizer.state() == calm.featurizer.state()
    assert (
        last.evaluation.evaluators[last.slots[0].name].state()
        == calm.evaluation.evaluators[calm.slots[0].name].state()
    )


def test_workers_serve_with_models_merged_through_the_store(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'merge.db'}"
    broker = MemoryBroker()
    rng = np.random.default_rng(5)
    for topic in ("left", "right"):
        X = rng.normal(size=(1000, 2)).tolist()
        broker.append(topic, [orjson.dumps({"a": a, "b": b, "y": int(a > b)}) for a, b in X])
    workers = []
    for worker_id, topic in (("a", "left"), ("b", "right")):
        data = spec(db, 500).model_dump()
        data["topics"] = {"train": topic}
        worker = build_worker(validate_spec(data), broker=broker, worker_id=worker_id)
        worker.run(until=lambda w, t=topic: w.read.get((t, 0), 0) >= 1000)
        workers.append(worker)
    a, b = workers
    a.checkpoint()  # a now sees b's state in the store
    serving: Any = a.models.serving["lr"]
    assert serving.n_seen == a.slots[0].events_learned + b.slots[0].events_learned
    assert a.slots[0].model.state() != serving.state()  # a keeps learning alone


def test_the_demo_stream_learns_the_same_whatever_the_poll_size(tmp_path: Path) -> None:
    """Speed dating has fields missing from whole polls: still the same model and features."""
    from streamfit.cli import demo
    from streamfit.cli.demos_common import publish

    states = set()
    for max_records in (37, 500):
        spec = demo.demo_spec(database=f"sqlite:///{tmp_path / f'{max_records}.db'}")
        data = spec.model_dump(exclude_none=True)
        data["models"] = data["models"][:1]
        data["batch"]["max_records"] = max_records
        data["outputs"]["write_results"] = False
        spec = validate_spec(data)
        events = demo.prepare_events(spec)
        broker = publish(None, [], events.events)
        worker = build_worker(spec, broker=broker)
        total = len(events.events)
        worker.run(until=lambda w, total=total: w.stats.events_in >= total)
        states.add((worker.slots[0].model.state(), worker.featurizer.state()))
    assert len(states) == 1


def test_next_offsets_per_topic_and_partition() -> None:
    one = Messages.from_values([b""] * 3, topic="t", partition=2, first_offset=7)
    assert one.next_offsets() == {("t", 2): 10}
    other = Messages.from_values([b""] * 2, topic="t", partition=0, first_offset=4)
    third = Messages.from_values([b""], topic="u", partition=2, first_offset=1)
    mixed = Messages.concat([one, other, third])
    assert mixed.next_offsets() == {("t", 2): 10, ("t", 0): 6, ("u", 2): 2}
    assert Messages.from_values([]).next_offsets() == {}


def test_scored_training_rows_reuse_their_hashed_features_and_learn_the_same(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """``score_training_events`` with categories and text, over three partitions: hashed
    entries kept from scoring serve learning, and the model is the one a worker that hashes
    everything again learns, byte for byte."""
    from streamfit.features.reuse import ScoredEntries

    rng = np.random.default_rng(8)
    words = ["good", "bad", "film", "plot", "slow", "fun"]
    broker = MemoryBroker(partitions=3)
    events = [
        {
            "a": float(rng.normal()),
            "city": str(rng.choice(["Oslo", "Lima", "Pune"])) if rng.random() > 0.1 else None,
            "note": " ".join(rng.choice(words, size=int(rng.integers(3, 9)))),
            "y": int(rng.random() > 0.5),
        }
        for _ in range(3000)
    ]
    broker.append("train", [orjson.dumps(e) for e in events])

    def learn(max_records: int, name: str) -> Any:
        data = spec(f"sqlite:///{tmp_path / name}.db", max_records).model_dump()
        data["name"] = name  # a consumer group of its own: each reads the topic from the start
        data["topics"] = {"train": "train"}
        data["outputs"]["score_training_events"] = True
        worker = build_worker(validate_spec(data), broker=broker)
        worker.run(until=lambda w: w.stats.events_in >= len(events))
        worker.learn_pending()
        return worker

    found: list[bool] = []
    recall = ScoredEntries.recall
    monkeypatch.setattr(
        ScoredEntries,
        "recall",
        lambda self, *a, **k: found.append((r := recall(self, *a, **k)) is not None) or r,
    )
    reusing = learn(77, "reusing")
    monkeypatch.setattr(ScoredEntries, "recall", lambda self, *a, **k: None)
    fresh = learn(500, "fresh")
    # the first blocks (and the poll that completed them) were scored before the schema had
    # its fields, so nothing was kept for them; every later run finds all its rows kept
    assert found == [False] * 5 + [True] * 6
    assert reusing.slots[0].model.state() == fresh.slots[0].model.state()
    assert reusing.featurizer.state() == fresh.featurizer.state()
    assert (
        reusing.evaluation.evaluators[reusing.slots[0].name].state()
        == fresh.evaluation.evaluators[fresh.slots[0].name].state()
    )


def partitioned(order: str) -> MemoryBroker:
    """Three partitions of uneven sizes, the same events in each, appended either partition
    after partition or interleaved in small chunks, last partition first."""
    rng = np.random.default_rng(11)
    parts = []
    for size in (1500, 1200, 900):
        X = rng.normal(size=(size, 3)).tolist()
        parts.append([orjson.dumps({"a": a, "b": b, "c": c, "y": int(a > b + c)}) for a, b, c in X])
    broker = MemoryBroker()
    broker.create_topic("train", partitions=3)
    if order == "one after the other":
        for p, values in enumerate(parts):
            broker.append("train", values, partition=p)
    else:
        for start in range(0, 1500, 77):
            for p in (2, 1, 0):
                if parts[p][start : start + 77]:
                    broker.append("train", parts[p][start : start + 77], partition=p)
    return broker


def test_several_partitions_learn_in_one_order_whatever_their_arrival(tmp_path: Path) -> None:
    """On topics that hold their events already, the partitions' blocks are learned in one
    order: the same model however the partitions arrive, however polls cut them, and across
    restarts."""
    ends = {("train", 0): 1500, ("train", 1): 1200, ("train", 2): 900}

    def done(w: Any) -> bool:
        return all(w.read.get(tp, 0) >= end for tp, end in ends.items())

    def train_only(db: str, max_records: int) -> PipelineSpec:
        data = spec(db, max_records).model_dump()
        data["topics"] = {"train": "train"}
        return validate_spec(data)

    calm = build_worker(
        train_only(f"sqlite:///{tmp_path / 'calm.db'}", 1000),
        broker=partitioned("one after the other"),
    )
    calm.run(until=done)

    broker = partitioned("interleaved")
    db = f"sqlite:///{tmp_path / 'restarts.db'}"
    for max_records, stop_at in ((53, 700), (389, 2300)):
        worker = build_worker(train_only(db, max_records), broker=broker)
        while worker.stats.events_in < stop_at:
            worker.step(timeout=0)
        worker.checkpoint()  # then the process "dies"
    last = build_worker(train_only(db, 211), broker=broker)
    last.run(until=done)

    assert last.slots[0].events_learned == calm.slots[0].events_learned == 3600
    assert last.slots[0].model.state() == calm.slots[0].model.state()
    assert last.featurizer.state() == calm.featurizer.state()
    name = calm.slots[0].name
    assert last.evaluation.evaluators[name].state() == calm.evaluation.evaluators[name].state()
