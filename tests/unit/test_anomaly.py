"""Anomaly detection: the detectors, score quantiles, evaluation, and task: anomaly pipelines."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from streamfit.batch import Messages
from streamfit.codecs import decode_json
from streamfit.errors import SpecError
from streamfit.evaluation.anomaly import AnomalyEvaluator
from streamfit.explore.detector import HistogramDetector
from streamfit.explore.scores import ScoreQuantiles
from streamfit.models.checks import DETECTOR_CHECKS, anomaly_problem
from streamfit.models.river_adapter import RiverDetector
from streamfit.runtime.build import build_worker
from streamfit.runtime.preflight import preflight
from streamfit.spec import validate_spec
from streamfit.streams.memory import MemoryBroker


def half_space_trees() -> RiverDetector:
    from river import anomaly, compose, preprocessing

    return RiverDetector(
        compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=0))
    )


@pytest.mark.parametrize("check", DETECTOR_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    ("make", "threshold"),
    [(HistogramDetector, 0.95), (half_space_trees, 0.7)],
    ids=["histogram", "river-hst"],
)
def test_detectors_pass_the_check_battery(check: Any, make: Any, threshold: float) -> None:
    check(make, threshold)


def test_scores_do_not_depend_on_where_batches_are_cut() -> None:
    batch, _ = anomaly_problem(np.random.default_rng(4), 2000)
    one, many = HistogramDetector(), HistogramDetector()
    whole = one.score_learn_many(batch)
    cuts = [0, 1, 7, 64, 65, 300, 1999, 2000]
    pieces = np.concatenate([many.score_learn_many(batch.rows(a, b)) for a, b in pairwise(cuts)])
    assert np.array_equal(whole, pieces)
    assert one.state() == many.state()


def test_merged_detectors_score_like_one_over_both_halves() -> None:
    batch, _ = anomaly_problem(np.random.default_rng(5), 4000)
    left, right, both = HistogramDetector(), HistogramDetector(), HistogramDetector()
    left.learn_many(batch.rows(0, 2000))
    right.learn_many(batch.rows(2000, 4000))
    both.learn_many(batch)
    left.merge(right)
    probe, _ = anomaly_problem(np.random.default_rng(6), 500)
    merged, single = left.score_many(probe), both.score_many(probe)
    assert np.corrcoef(merged, single)[0, 1] > 0.99
    assert left.n_seen == both.n_seen == 4000


def test_missing_values_and_bad_values_never_poison_a_score() -> None:
    rows: list[dict[str, Any]] = [{"t": float(i % 17), "c": "ab"[i % 2]} for i in range(500)]
    rows += [{"t": None}, {"t": "NaN", "c": "a"}, {"t": "Infinity"}, {"t": 1e300}, {}]
    rows += [{"t": "broken", "c": 5}]
    batch = decode_json(
        Messages.from_values([orjson.dumps(r) for r in rows]), None, "classification"
    ).batch
    scores = HistogramDetector().score_learn_many(batch)
    assert np.isfinite(scores).all()
    assert scores[500:].min() > np.quantile(scores[100:500], 0.9)  # missing is unusual here


def test_score_quantiles_rank_alarm_and_merge() -> None:
    quantiles = ScoreQuantiles(window=4000, alarm_quantile=0.99)
    rng = np.random.default_rng(7)
    for _ in range(8):
        quantiles.rank_then_add(rng.exponential(size=500))
    probe = np.array([0.01, np.log(2.0), 4.6, 20.0])
    ranks, alarms = quantiles.rank_then_add(probe)
    assert ranks == pytest.approx([0.01, 0.5, 0.99, 1.0], abs=0.02)
    assert alarms.tolist() == [False, False, ranks[2] > 0.99, True]
    assert quantiles.scores <= 4000
    p50, _, p99, _ = quantiles.quantiles() or []
    assert p50 == pytest.approx(np.log(2.0), rel=0.1) and p99 == pytest.approx(4.6, rel=0.1)
    fixed = ScoreQuantiles(window=100, alarm_score=3.0)
    assert fixed.rank_then_add(np.array([2.0, 4.0]))[1].tolist() == [False, True]
    again = ScoreQuantiles.from_state(quantiles.state())
    assert again.ranks(probe) == pytest.approx(quantiles.ranks(probe))


def test_anomaly_evaluator_matches_scikit_learn_and_merges() -> None:
    rng = np.random.default_rng(8)
    y = (rng.random(6000) < 0.05).astype(float)
    s = np.round(rng.normal(size=6000) + 2.5 * y, 2)
    alarms = s > 2.0
    one, left, right = AnomalyEvaluator(1000), AnomalyEvaluator(1000), AnomalyEvaluator(1000)
    for a in range(0, 6000, 500):
        one.update(y[a : a + 500], s[a : a + 500], alarms[a : a + 500])
        (left if a < 3000 else right).update(y[a : a + 500], s[a : a + 500], alarms[a : a + 500])
    figures = one.snapshot()
    assert figures["roc_auc"] == pytest.approx(roc_auc_score(y, s))
    assert figures["average_precision"] == pytest.approx(average_precision_score(y, s))
    assert figures["window_roc_auc"] == pytest.approx(roc_auc_score(y[-1000:], s[-1000:]))
    tp = float((alarms & (y == 1)).sum())
    assert figures["precision"] == pytest.approx(tp / alarms.sum())
    assert figures["recall"] == pytest.approx(tp / y.sum())
    left.merge(right)
    assert left.snapshot()["roc_auc"] == pytest.approx(figures["roc_auc"])
    assert AnomalyEvaluator.from_state(one.state()).snapshot() == figures


def sensor_events(n: int, seed: int) -> list[bytes]:
    batch, outlier = anomaly_problem(np.random.default_rng(seed), n)
    columns = batch.columns
    return [
        orjson.dumps(
            {
                "temp": float(columns["temp"][i]),
                "flow": float(columns["flow"][i]),
                "valve": columns["valve"][i],
                "outlier": int(outlier[i]),
                "id": f"e{i}",
            }
        )
        for i in range(n)
    ]


def anomaly_spec(db: str, **overrides: Any) -> Any:
    data: dict[str, Any] = {
        "name": "plant",
        "topics": {"score": "sensors"},
        "task": "anomaly",
        "label": "outlier",
        "key": "id",
        "outputs": {"database": db, "predictions_topic": "alarms"},
        "batch": {"max_records": 500, "timeout": 0.01},
        "evaluation": {"interval_events": 1000},
        "anomaly": {"window": 1000},
        "models": [
            {"name": "histogram", "builtin": "histogram_detector"},
            {
                "name": "hst",
                "river": "compose.Pipeline",
                "params": {
                    "steps": [
                        {"river": "preprocessing.MinMaxScaler"},
                        {"river": "anomaly.HalfSpaceTrees"},
                    ]
                },
            },
        ],
        "features": {"include": ["temp", "flow"]},
    }
    data.update(overrides)
    return validate_spec(data)


def test_an_anomaly_pipeline_scores_every_event_and_evaluates_against_its_label(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    broker = MemoryBroker()
    broker.append("sensors", sensor_events(4000, 9))
    worker = build_worker(anomaly_spec(db), broker=broker)
    try:
        worker.run(until=lambda w: w.read.get(("sensors", 0), 0) >= 4000)
        store = worker.store
        assert store.count("plant_results") == 4000
        rows = store.read_results("plant_results")
        columns = set(rows[0])
        assert {"anomaly_score", "score_quantile", "is_anomaly", "label"} <= columns
        assert {"anomaly_score__hst", "score_quantile__hst", "is_anomaly__hst"} <= columns
        assert "prediction" not in columns
        assert [r["label"] for r in rows[:3]] == [
            str(orjson.loads(e)["outlier"]) for e in sensor_events(3, 9)
        ]
        alarms = sum(bool(r["is_anomaly"]) for r in rows)
        assert 0 < alarms < 400
        training = {r["model"]: r for r in store.read_training("plant_training")}
        assert training["histogram"]["events_seen"] == 4000
        assert training["histogram"]["roc_auc"] > 0.9
        assert training["hst"]["roc_auc"] > 0.6
        for name in ("score_p50", "score_p90", "score_p99", "score_p99_9"):
            assert training["histogram"][name] is not None
        assert training["histogram"]["score_p99"] >= training["histogram"]["score_p50"]
        records = [orjson.loads(v or b"") for _, v in broker.read("alarms")]
        assert len(records) == 4000
        assert set(records[0]) >= {"key", "anomaly_score", "score_quantile", "is_anomaly"}
        assert records[0]["key"] == "e0"
        stats = {r["field"] for r in store.read_field_stats("plant_field_stats")}
        assert stats == {"temp", "flow", "valve", "outlier", "id"}
    finally:
        worker.close()


def test_an_anomaly_pipeline_resumes_where_it_stopped(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    events = sensor_events(3000, 10)
    whole_broker, broker = MemoryBroker(), MemoryBroker()
    whole_broker.append("sensors", events)
    broker.append("sensors", events[:1700])
    spec = anomaly_spec(db, models=[{"name": "histogram", "builtin": "histogram_detector"}])
    whole = build_worker(
        anomaly_spec(
            f"sqlite:///{tmp_path / 'w.db'}",
            models=[{"name": "histogram", "builtin": "histogram_detector"}],
        ),
        broker=whole_broker,
    )
    whole.run(until=lambda w: w.read.get(("sensors", 0), 0) >= 3000)
    first = build_worker(spec, broker=broker)
    first.run(until=lambda w: w.read.get(("sensors", 0), 0) >= 1700)
    first.close()
    broker.append("sensors", events[1700:])
    second = build_worker(spec, broker=broker)
    second.run(until=lambda w: w.read.get(("sensors", 0), 0) >= 3000)
    try:
        assert second.store.count("plant_results") == 3000
        assert second.slots[0].model.state() == whole.slots[0].model.state()
        got = [r["anomaly_score"] for r in second.store.read_results("plant_results")]
        want = [r["anomaly_score"] for r in whole.store.read_results("plant_results")]
        assert got == want
    finally:
        second.close()
        whole.close()


def test_bad_anomaly_specs_are_refused_with_the_path_of_the_key(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    for overrides, path in (
        ({"target": "outlier"}, "target"),
        ({"anomaly": {"alarm_quantile": 1.5}}, "anomaly.alarm_quantile"),
        ({"anomaly": {"windw": 10}}, "anomaly.windw"),
        ({"topics": {"train": "sensors"}}, "topics.train"),
    ):
        with pytest.raises(SpecError) as caught:
            anomaly_spec(db, **overrides)
        assert caught.value.path == path, overrides
    with pytest.raises(SpecError) as caught:
        validate_spec({"name": "x", "topics": {"score": "s"}, "label": "outlier"})
    assert caught.value.path == "label"
    for models, path in (
        ([{"name": "m", "builtin": "logistic_regression"}], "models.0"),
        ([{"name": "d", "builtin": "histogram_detector", "params": {"bins": 3}}], "models.0"),
        (
            [
                {"name": "d", "builtin": "histogram_detector"},
                {"name": "t", "river": "tree.HoeffdingTreeClassifier"},
            ],
            "models.1",
        ),
    ):
        with pytest.raises(SpecError) as caught:
            preflight(anomaly_spec(db, models=models, source={"kind": "memory"}))
        assert caught.value.path == path
