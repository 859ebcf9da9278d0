"""Drift detection: the spec keys, the detectors' state, alarms on a change of concept, and
the challenger a drift starts. Real River detectors, the real worker loop on the in-process
stream, real SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from streamfit.cli.clickstream import click_events
from streamfit.drift import Watch
from streamfit.errors import SpecError, StateFormatError
from streamfit.runtime.build import build_worker
from streamfit.runtime.worker import Worker
from streamfit.spec import validate_spec
from streamfit.spec.model import PipelineSpec
from streamfit.store import Store
from streamfit.streams.memory import MemoryBroker

CHANGE = 20_000  # the event at which the concept changes
EVENTS = 26_000


def spec_of(db: str, **overrides: Any) -> PipelineSpec:
    data: dict[str, Any] = {
        "name": "clicks",
        "topics": {"train": "clicks"},
        "target": "click",
        "models": [{"name": "lr", "builtin": "logistic_regression"}],
        "outputs": {"database": db},
        "stats": False,
        "drift": True,
        "batch": {"max_records": 1000, "timeout": 0.01},
        "checkpoint": {"interval_events": 1_000_000, "interval_seconds": 3600},
    }
    data.update(overrides)
    return validate_spec(data)


def run(worker: Worker, to: int, topic: str = "clicks") -> None:
    """Step ``worker`` until it has read the stream up to offset ``to``."""
    while worker.read.get((topic, 0), 0) < to:
        worker.step(timeout=0.01)


def broker_with(n: int, seed: int, change: int | None = CHANGE) -> MemoryBroker:
    stream = click_events(n, shift_at=change, seed=seed)
    broker = MemoryBroker()
    broker.append("clicks", stream.values, stream.keys)
    return broker


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'drift.db'}"


# -- the spec


@pytest.mark.parametrize(
    ("drift", "path"),
    [
        ({"detector": "adwn"}, "drift.detector"),
        ({"params": {"delt": 0.1}}, "drift.params.delt"),
        ({"params": {"delta": 2}}, "drift.params.delta"),
        ({"detector": "page_hinkley", "params": {"mode": "sideways"}}, "drift.params.mode"),
        ({"detector": "kswin", "params": {"window_size": 50, "stat_size": 60}}, "drift.params"),
        ({"models": ["lr", "gbm"]}, "drift.models.1"),
        ({"table": "clicks_results"}, "drift.table"),
        ({"table": "bad name"}, "drift.table"),
        ({"fields": "f0"}, "drift.fields"),
    ],
)
def test_a_bad_drift_key_is_rejected_with_its_path(db: str, drift: Any, path: str) -> None:
    with pytest.raises(SpecError) as caught:
        spec_of(db, drift=drift)
    assert caught.value.path == path


def test_drift_short_forms_and_defaults(db: str) -> None:
    assert spec_of(db, drift=True).drift is not None
    assert spec_of(db, drift=False).drift is None
    assert spec_of(db, drift="kswin").drift.detector == "kswin"  # type: ignore[union-attr]
    drift = spec_of(db, drift={"params": {"delta": 0.01}}).drift
    assert drift is not None and drift.table_name("clicks") == "clicks_drift"
    assert drift.detector_params() == {
        "delta": 0.01,
        "clock": 32,
        "max_buckets": 5,
        "min_window_length": 5,
        "grace_period": 10,
    }


def test_on_drift_challenger_adds_a_standby_copy_and_needs_a_promotion_rule(db: str) -> None:
    spec = spec_of(db, drift=None, on_drift="challenger", promotion={})
    assert [(m.name, m.standby) for m in spec.models] == [("lr", False), ("lr_drift", True)]
    assert spec.drift is not None and spec.drift.detector == "adwin"
    for overrides, path in [
        ({"on_drift": "challenger"}, "on_drift"),  # no promotion rule
        ({"on_drift": "retrain"}, "on_drift"),
        ({"models": [{"name": "a", "builtin": "logistic_regression", "standby": True}]}, None),
    ]:
        with pytest.raises(SpecError) as caught:
            spec_of(db, **overrides)
        assert caught.value.path == (path or "models.0.standby")


# -- the detectors' state


@pytest.mark.parametrize(
    ("detector", "params"),
    [("adwin", {}), ("page_hinkley", {"threshold": 5.0}), ("kswin", {"seed": 3})],
)
def test_a_restored_detector_raises_the_alarms_the_uninterrupted_one_does(
    detector: str, params: dict[str, Any]
) -> None:
    rng = np.random.default_rng(1)
    stream = np.r_[rng.random(3000) < 0.1, rng.random(3000) < 0.5].astype(np.float64)
    whole = Watch(detector, params)
    expected = whole.update_many(stream)
    assert expected, "the level's jump raised no alarm"
    first = Watch(detector, params)
    early = first.update_many(stream[:2500])
    second = Watch.from_state(first.state())
    late = second.update_many(stream[2500:])
    assert [(a.index, a.seen, a.statistic, a.mean_before, a.direction) for a in early] + [
        (a.index + 2500, a.seen, a.statistic, a.mean_before, a.direction) for a in late
    ] == [(a.index, a.seen, a.statistic, a.mean_before, a.direction) for a in expected]
    assert second.state() == whole.state()


def test_a_broken_detector_state_is_refused() -> None:
    blob = Watch("adwin", {}).state()
    for bad in (blob[:-1], b"XXXX" + blob[4:], b"", blob[:10]):
        with pytest.raises(StateFormatError):
            Watch.from_state(bad)


# -- alarms in the worker


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_abrupt_change_of_concept_is_caught_soon_and_the_stable_part_raises_nothing(
    db: str, seed: int
) -> None:
    worker = build_worker(spec_of(db), broker=broker_with(EVENTS, seed))
    run(worker, EVENTS)
    worker.finish(drain=True)
    alarms = worker.store.read_drift("clicks_drift")
    worker.close()
    offsets = [row["source_offset"] for row in alarms]
    assert all(offset >= CHANGE for offset in offsets), f"alarms before the change: {offsets}"
    first = alarms[0]
    assert first["source_offset"] < CHANGE + 2000, f"first alarm at {first['source_offset']}"
    assert first["watched"] == "model" and first["name"] == "lr" and first["head"] == ""
    assert first["detector"] == "adwin" and first["direction"] == "up"
    assert first["statistic"] > first["mean_before"]  # the error rate went up
    # every event is a value but those before the model knew a class
    assert first["source_offset"] - 10 < first["values_seen"] <= first["source_offset"] + 1
    assert first["source_topic"] == "clicks" and first["source_partition"] == 0


def test_a_replay_from_a_checkpoint_finds_the_same_alarms_once(db: str, tmp_path: Path) -> None:
    fields = {"fields": ["f0", "f3"], "detector": "page_hinkley"}

    def alarms(store: Store) -> list[tuple[Any, ...]]:
        return [
            (r["seq"], r["watched"], r["name"], r["source_offset"], r["statistic"])
            for r in store.read_drift("clicks_drift")
        ]

    straight = build_worker(spec_of(db, drift=fields), broker=broker_with(EVENTS, 0))
    run(straight, EVENTS)
    straight.finish(drain=True)
    want = alarms(straight.store)
    straight.close()
    assert {name for _, _, name, _, _ in want} >= {"lr", "f0"}

    other = f"sqlite:///{tmp_path / 'replayed.db'}"
    broker = broker_with(EVENTS, 0)
    first = build_worker(spec_of(other, drift=fields), broker=broker)
    run(first, CHANGE + 700)  # past the first alarms
    first.checkpoint()
    run(first, CHANGE + 3000)  # alarms written after the checkpoint, then a crash
    first._maybe_write_metrics(force=True)
    first.close()
    second = build_worker(spec_of(other, drift=fields), broker=broker)
    run(second, EVENTS)
    second.finish(drain=True)
    assert alarms(second.store) == want
    second.close()


def test_a_drift_of_the_champion_starts_a_fresh_challenger_that_competes(db: str) -> None:
    promotion = {"metric": "accuracy", "window": 1000, "every": 500, "patience": 2}
    spec = spec_of(db, drift=None, on_drift="challenger", promotion=promotion)
    worker = build_worker(spec, broker=broker_with(EVENTS, 0))
    run(worker, CHANGE)
    standby = worker.models.slot("lr_drift")
    assert standby.standby and standby.events_learned == 0
    untrained = standby.model.state()
    run(worker, EVENTS)
    worker.finish(drain=True)
    alarm = worker.store.read_drift("clicks_drift")[0]
    assert alarm["action"] == "challenger lr_drift started"
    events = worker.store.read_model_events("clicks_model_events")
    started = [e for e in events if e["kind"] == "drift_challenger"]
    assert len(started) == 1 and started[0]["model"] == "lr_drift"
    assert started[0]["detail"]["source_offset"] == alarm["source_offset"]
    challenger = worker.models.slot("lr_drift")
    assert not challenger.standby and challenger.model.state() != untrained
    # it learned every block from the one after the alarm's
    block = spec.learning.block_events
    assert challenger.events_learned == EVENTS - (alarm["source_offset"] // block + 1) * block
    promoted = [e for e in events if e["kind"] == "promoted"]
    assert promoted and promoted[0]["model"] == "lr_drift", "the fresh model never won"
    training = worker.store.read_training("clicks_training")
    assert min(r["events_seen"] for r in training if r["model"] == "lr_drift") > 0
    worker.close()


def test_anomaly_scores_are_watched(db: str) -> None:
    rng = np.random.default_rng(0)
    values = [
        orjson.dumps({"x": float(v)}) for v in np.r_[rng.normal(0, 1, 6000), rng.normal(6, 1, 2000)]
    ]
    broker = MemoryBroker()
    broker.append("sensors", values)
    spec = validate_spec(
        {
            "name": "sensors",
            "task": "anomaly",
            "topics": {"score": "sensors"},
            "outputs": {"database": db},
            "stats": False,
            "drift": True,
            "batch": {"max_records": 500, "timeout": 0.01},
        }
    )
    worker = build_worker(spec, broker=broker)
    run(worker, 8000, topic="sensors")
    worker.finish(drain=True)
    alarms = worker.store.read_drift("sensors_drift")
    worker.close()
    assert {row["name"] for row in alarms} == {"default"}
    # the detector's own warm-up may move its scores; the jump of x is caught soon
    assert any(6000 <= row["source_offset"] < 6500 for row in alarms)
    assert not any(1000 <= row["source_offset"] < 6000 for row in alarms)
