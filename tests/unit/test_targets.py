"""Any field as the target: several heads over one decoded stream, each with its tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from streamfit.errors import SpecError
from streamfit.runtime.build import build_worker
from streamfit.runtime.statistics import StatisticsComponent
from streamfit.runtime.targets import TargetHead
from streamfit.spec import validate_spec
from streamfit.streams.memory import MemoryBroker


def plant_events(n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        load = float(rng.uniform(0, 10))
        event: dict[str, Any] = {
            "load": load,
            "rpm": float(1000 + 50 * load + rng.normal(0, 5)),
            "temp": float(20 + 3 * load + rng.normal(0, 1)),
            "state": "hot" if load > 6 else "ok",
        }
        if i % 10 == 0:
            del event["temp"]  # scored by the temp head, not learned
        if i == 5:
            event["temp"] = "sensor error"  # no label: scored, counted
        out.append(orjson.dumps(event))
    return out


def test_several_targets_over_one_stream(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 't.db'}"
    broker = MemoryBroker()
    broker.append("plant", plant_events(3000, 1))
    spec = validate_spec(
        {
            "name": "plant",
            "topics": {"score": "plant"},
            "task": "anomaly",
            "outputs": {"database": db},
            "evaluation": {"interval_events": 1000},
            "targets": [
                {"target": "temp", "task": "regression"},
                {
                    "target": "state",
                    "name": "state_model",
                    "models": [{"name": "lr", "builtin": "logistic_regression"}],
                },
            ],
        }
    )
    worker = build_worker(spec, broker=broker)
    try:
        worker.run(until=lambda w: w.read.get(("plant", 0), 0) >= 3000)
        assert [h.name for h in worker.heads] == ["", "temp", "state_model"]
        store = worker.store
        assert store.count("plant_results") == 3000  # the anomaly head scores every event
        temp = store.read_training("plant_temp_training")
        assert temp and temp[-1]["events_seen"] == 3000 - 300 - 1
        assert temp[-1]["window_r2"] > 0.8
        assert store.count("plant_temp_results") == 301  # no temp, or a bad one: scored
        state = store.read_training("plant_state_model_training")
        assert state[-1]["events_seen"] == 3000 and state[-1]["accuracy"] > 0.9
        temp_head = worker.heads[1]
        assert isinstance(temp_head, TargetHead) and temp_head.invalid_labels == 1
        assert "temp" not in temp_head.featurizer.schema  # its own target is no feature
        assert "temp" in worker.heads[2].featurizer.schema  # another head's is
        statistics = next(c for c in worker.components if isinstance(c, StatisticsComponent))
        assert statistics.statistics.events == 3000  # described once, whatever the heads
    finally:
        worker.close()
    again = build_worker(spec, broker=broker)  # each head's state comes back
    try:
        assert [h.events_learned for h in again.heads] == [3000, 2699, 3000]
    finally:
        again.close()


def test_bad_targets_are_refused_with_the_path_of_the_key() -> None:
    base: dict[str, Any] = {"name": "p", "topics": {"score": "s"}, "target": None}
    for targets, path in (
        ([{"target": "a"}, {"target": "a"}], "targets.1.name"),
        ([{"target": "a", "task": "anomaly"}], "targets.0.task"),
        ([{"target": "a", "results_table": "p_results"}], "targets.0.results_table"),
        ([{"target": "a", "colour": 1}], "targets.0.colour"),
        ([{"name": "x"}], "targets.0.target"),
    ):
        with pytest.raises(SpecError) as caught:
            validate_spec({**base, "targets": targets})
        assert caught.value.path == path, targets
    with pytest.raises(SpecError) as caught:
        validate_spec({**base, "key": "id", "targets": [{"target": "id"}]})
    assert caught.value.path == "targets.0.target"
