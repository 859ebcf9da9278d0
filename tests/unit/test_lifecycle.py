"""The model lifecycle in the worker, on the in-process stream and SQLite: the update gate,
champion and challenger, A/B serving, the operator's commands. No mocks: real models, the
real loop, the real store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from streamfit.cli.clickstream import click_events
from streamfit.errors import SpecError
from streamfit.lifecycle import ChampionPolicy
from streamfit.runtime.build import build_worker
from streamfit.runtime.component import Outcome
from streamfit.runtime.worker import Worker
from streamfit.spec import validate_spec
from streamfit.spec.model import PipelineSpec, PromotionSpec
from streamfit.store import Store
from streamfit.streams.memory import MemoryBroker

BLOCK = 500


def spec_of(db: str, **overrides: Any) -> PipelineSpec:
    data: dict[str, Any] = {
        "name": "clicks",
        "topics": {"train": "clicks"},
        "target": "click",
        "key": "user",
        "models": [
            {
                "name": "lr",
                "builtin": "logistic_regression",
                "gate": {"metric": "f1", "ratio": 0.95, "holdout": 0.2},
            },
        ],
        "evaluation": {"window": 500, "interval_events": 1000},
        "outputs": {"database": db},
        "batch": {"max_records": 250, "timeout": 0.01},
        "learning": {"block_events": BLOCK},
        "checkpoint": {"interval_events": 100_000, "interval_seconds": 3600},
    }
    data.update(overrides)
    return validate_spec(data)


def read_to(worker: Worker, offset: int) -> None:
    """Step the worker until it has read (and so learned every block below) ``offset``."""
    while worker.read.get(("clicks", 0), 0) < offset:
        worker.step(timeout=0.01)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lifecycle.db'}"


def test_a_block_of_flipped_labels_is_rejected_and_leaves_the_state_bytes_unchanged(
    db: str,
) -> None:
    clean_until, flipped_until = 6 * BLOCK, 7 * BLOCK
    stream = click_events(9 * BLOCK, mislabeled=(clean_until, flipped_until), seed=5)
    broker = MemoryBroker()
    broker.append("clicks", stream.values, stream.keys)
    worker = build_worker(spec_of(db), broker=broker)
    read_to(worker, clean_until)
    slot = worker.models.slot("lr")
    before, version = slot.model.state(), slot.version
    read_to(worker, flipped_until)
    assert slot.model.state() == before, "the rejected block changed the model"
    assert slot.version == version
    read_to(worker, 9 * BLOCK)
    assert slot.version == version + 2, "the clean blocks after it are kept"
    worker.finish(drain=False)

    events = worker.store.read_model_events("clicks_model_events")
    decisions = [(e["kind"], e["detail"]["first_offset"]) for e in events]
    assert decisions[:6] == [("gate_kept", BLOCK * i) for i in range(6)]
    assert decisions[6] == ("gate_rejected", clean_until)
    assert decisions[7:] == [("gate_kept", 7 * BLOCK), ("gate_kept", 8 * BLOCK)]
    rejected = events[6]
    assert rejected["score"] < rejected["threshold"] < rejected["baseline"]
    assert rejected["threshold"] == pytest.approx(0.95 * rejected["baseline"])
    assert rejected["detail"]["held_out"] + rejected["detail"]["learned"] == BLOCK
    worker.close()


def test_a_replay_from_a_checkpoint_takes_the_same_decisions(db: str, tmp_path: Path) -> None:
    stream = click_events(12 * BLOCK, shift_at=6 * BLOCK, mislabeled=(3 * BLOCK, 4 * BLOCK))
    broker = MemoryBroker()
    broker.append("clicks", stream.values, stream.keys)
    straight = build_worker(spec_of(db), broker=broker)
    read_to(straight, 12 * BLOCK)
    straight.finish(drain=False)
    straight.close()

    other = f"sqlite:///{tmp_path / 'replayed.db'}"
    broker = MemoryBroker()  # no offsets committed by the first run's group
    broker.append("clicks", stream.values, stream.keys)
    first = build_worker(spec_of(other), broker=broker)
    read_to(first, 5 * BLOCK + 100)  # a block and a bit past the bad one
    first.checkpoint()
    first.close()  # as if killed here: the next worker starts from this checkpoint
    second = build_worker(spec_of(other), broker=broker)
    read_to(second, 12 * BLOCK)
    second.finish(drain=False)

    def decisions(store: Store) -> list[tuple[Any, ...]]:
        rows = store.read_model_events("clicks_model_events")
        return [(r["seq"], r["kind"], r["score"], r["version"]) for r in rows]

    with Store(db, "clicks") as store:
        want = decisions(store)
    assert decisions(second.store) == want
    assert "gate_rejected" in [kind for _, kind, _, _ in want]
    assert second.models.slot("lr").model.state() == straight.models.slot("lr").model.state()
    second.close()


def test_a_challenger_that_wins_is_promoted_and_serves(db: str) -> None:
    models = [
        # a champion that learns next to nothing: the challenger beats it soon
        {"name": "slow", "builtin": "logistic_regression", "params": {"learning_rate": 1e-6}},
        {"name": "fast", "builtin": "logistic_regression"},
    ]
    promotion = {"metric": "roc_auc", "window": 500, "margin": 0.02, "patience": 2, "every": 500}
    spec = spec_of(
        db,
        models=models,
        promotion=promotion,
        topics={"train": "clicks", "score": "clicks"},
        outputs={"database": db, "score_training_events": True},
    )
    stream = click_events(6 * BLOCK, seed=2)
    broker = MemoryBroker()
    broker.append("clicks", stream.values, stream.keys)
    worker = build_worker(spec, broker=broker)
    read_to(worker, 6 * BLOCK)
    worker.finish(drain=False)

    assert worker.models.policy.champion == "fast"
    promoted = worker.store.read_model_events("clicks_model_events", kind="promoted")
    assert len(promoted) == 1
    assert promoted[0]["model"] == "fast" and promoted[0]["detail"]["from"] == "slow"
    assert promoted[0]["score"] > promoted[0]["baseline"] + 0.02
    rows = worker.store.read_results("clicks_results")
    served = [r["model"] for r in rows]
    assert served[0] == "slow" and served[-1] == "fast"
    switch = served.index("fast")
    assert set(served[switch:]) == {"fast"}
    roles = {
        r["model"]: r["role"]
        for r in worker.store.read_training("clicks_training")
        if r["events_seen"] == 6 * BLOCK
    }
    assert roles == {"fast": "champion", "slow": "challenger"}
    worker.close()


def test_a_promotion_is_rolled_back_when_the_new_champion_falls_behind() -> None:
    spec = PromotionSpec(metric="accuracy", window=100, margin=0.0, patience=1, every=50)
    policy = ChampionPolicy(["a", "b"], "classification", spec)
    y = np.array([0, 1] * 25)
    right, wrong = np.eye(2)[y], np.eye(2)[1 - y]
    kinds = []
    for block, (a, b) in enumerate([(wrong, right), (right, wrong), (right, wrong)]):
        outcomes = [Outcome("a", 1, 50, y, a, [0, 1]), Outcome("b", 1, 50, y, b, [0, 1])]
        kinds += [(e.kind, e.model) for e in policy.observe(outcomes, 50 * block, 50 * block + 50)]
    assert kinds == [("promoted", "b"), ("rolled_back", "a")]
    assert policy.champion == "a"
    restored = ChampionPolicy(["a", "b"], "classification", spec)
    restored.restore(policy.state())
    assert restored.state() == policy.state()


def test_the_operator_s_promotion_is_not_rolled_back_by_the_rule() -> None:
    spec = PromotionSpec(metric="accuracy", window=100, margin=0.0, patience=2, every=50)
    policy = ChampionPolicy(["a", "b"], "classification", spec)
    y = np.array([0, 1] * 25)
    right, wrong = np.eye(2)[y], np.eye(2)[1 - y]
    assert policy.promote("b").kind == "operator_promoted"  # b is the worse model
    kinds = []
    for block in range(3):
        outcomes = [Outcome("a", 1, 50, y, right, [0, 1]), Outcome("b", 1, 50, y, wrong, [0, 1])]
        kinds += [(e.kind, e.model) for e in policy.observe(outcomes, 50 * block, 50 * block + 50)]
    assert kinds == [("promoted", "a")], "a wins by the rule, at its patience, not at once"
    policy.promote("b")
    rolled_back = policy.rollback()
    assert rolled_back is not None and rolled_back.model == "a" and policy.champion == "a"


def test_ab_serving_is_sticky_per_key_and_reports_each_arm(db: str) -> None:
    spec = spec_of(
        db,
        models=[
            {"name": "lr", "builtin": "logistic_regression"},
            {"name": "binned", "builtin": "binned_logistic_regression"},
        ],
        serving={"split": {"lr": 0.5, "binned": 0.5}},
        topics={"train": "clicks", "score": "clicks"},
        outputs={"database": db, "score_training_events": True},
    )
    stream = click_events(4 * BLOCK, seed=4, users=300)
    broker = MemoryBroker()
    broker.append("clicks", stream.values, stream.keys)
    worker = build_worker(spec, broker=broker)
    read_to(worker, 4 * BLOCK)
    worker.finish(drain=False)

    rows = worker.store.read_results("clicks_results")
    arm_of: dict[str, str] = {}
    for row in rows:
        assert arm_of.setdefault(row["event_key"], row["model"]) == row["model"], "not sticky"
        assert row["prediction"] == row[f"prediction__{row['model']}"]
    share = sum(1 for r in rows if r["model"] == "lr") / len(rows)
    assert 0.4 < share < 0.6
    arms = {
        r["arm"]: r["events_seen"]
        for r in worker.store.read_training("clicks_training")
        if r["role"] == "arm"
    }
    # each arm's latest row covers the labeled events it served
    with worker.store.engine.connect() as conn:
        served = dict(
            conn.execute(
                sa.text(
                    "SELECT arm, MAX(events_seen) FROM clicks_training WHERE role = 'arm' "
                    "GROUP BY arm"
                )
            ).all()
        )
    assert set(arms) == {"lr", "binned"}
    assert served["lr"] + served["binned"] == 4 * BLOCK
    assert served["lr"] == sum(1 for r in rows if r["model"] == "lr")
    worker.close()


def test_the_operator_promotes_and_rolls_back_through_the_store(db: str) -> None:
    spec = spec_of(
        db,
        models=[
            {"name": "lr", "builtin": "logistic_regression"},
            {"name": "binned", "builtin": "binned_logistic_regression"},
        ],
    )
    stream = click_events(6 * BLOCK, seed=6)
    broker = MemoryBroker()
    broker.append("clicks", stream.values, stream.keys)
    worker = build_worker(spec, broker=broker)
    read_to(worker, 2 * BLOCK)
    worker.checkpoint()  # versions 2 of both models are in the models table
    with Store(db, "clicks") as operator:
        operator.add_model_command("promote", "binned")
    assert worker.models.policy.champion == "lr", "nothing happens before a checkpoint"
    worker.checkpoint()
    assert worker.models.policy.champion == "binned"
    read_to(worker, 4 * BLOCK)
    lr = worker.models.slot("lr")
    with Store(db, "clicks") as operator:
        saved = operator.load_model("lr", 2)
        operator.add_model_command("rollback", "lr", 2)
        operator.add_model_command("rollback")
        operator.add_model_command("rollback", "lr", 99)
    worker.checkpoint()
    assert saved is not None and lr.model.state() == saved[2]
    assert lr.version == 5 and worker.models.policy.champion == "lr"
    with Store(db, "clicks") as operator:
        results = [c["result"] for c in operator.model_commands()]
    assert results[0] == "binned is the champion"
    assert results[1] == "lr is back to the state of v2, as v5"
    assert results[2].startswith("lr is the champion again")
    assert results[3] == "refused: lr has no saved version 99"
    kinds = [e["kind"] for e in worker.store.read_model_events("clicks_model_events")]
    assert kinds == [
        "operator_promoted",
        "operator_rolled_back",
        "operator_rolled_back",
        "operator_refused",
    ]
    versions = {(v["name"], v["version"]) for v in worker.store.model_versions()}
    assert {("lr", 2), ("lr", 4), ("lr", 5), ("binned", 4)} <= versions
    worker.close()

    # a stopped worker takes the commands queued meanwhile when it starts again
    with Store(db, "clicks") as operator:
        operator.add_model_command("promote", "binned")
    again = build_worker(spec, broker=broker)
    assert again.models.policy.champion == "binned"
    again.close()


def test_lifecycle_keys_are_checked_with_their_path(db: str) -> None:
    with pytest.raises(SpecError, match=r"serving\.split\.nope"):
        spec_of(db, serving={"split": {"lr": 0.5, "nope": 0.5}})
    with pytest.raises(SpecError, match=r"add up to 1\.2"):
        spec_of(db, serving={"split": {"lr": 1.0, "x": 0.2}})
    gated = {"name": "m", "builtin": "logistic_regression", "gate": {"metric": "rmse"}}
    with pytest.raises(SpecError, match=r"models\.0\.gate\.metric"):
        spec_of(db, models=[gated])
