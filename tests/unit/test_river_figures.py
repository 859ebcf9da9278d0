"""Through the adapter, River estimators lose nothing: a pipeline with ``learning.block_events:
1`` gives each River model's own prequential figures on the same rows.

The stream has numeric fields with exact zeros (the first event's values among them), a
categorical field and missing values. River's own figures come from River's loop on the same
events as dicts (``predict_proba_one``, then ``learn_one``), scored as the evaluator scores
(log loss clipped as it clips); streamfit's from the training table its evaluators wrote.

The comparison starts at the third event. The first two carry one class each, and until a
class has been seen the adapter cannot give it a probability (it does not know the label yet),
where River's binary LogisticRegression already scores ``True``, which River's own metrics
then count as the label 1. The evaluator's window (``window_*`` figures, exact) is set to
cover every event from the third on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
from river import forest, linear_model, preprocessing, tree
from sklearn.metrics import roc_auc_score

from streamfit.batch import Messages
from streamfit.codecs import decode_json
from streamfit.features import Featurizer
from streamfit.models import RiverModel
from streamfit.pipeline import Pipeline

N_EVENTS = 2000
_EPS = float(np.finfo(np.float64).eps)


def events() -> list[dict[str, Any]]:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(N_EVENTS, 3)).round(3)
    x[rng.random(size=(N_EVENTS, 3)) < 0.2] = 0.0  # exact zeros, as sparse rows would drop
    x[0] = 0.0
    city = rng.choice(["paris", "oslo", "lima", "pune"], size=N_EVENTS)
    effect = {"paris": 1.0, "oslo": -1.0, "lima": 0.0, "pune": 0.5}
    logit = 1.5 * x[:, 0] - x[:, 1] * x[:, 2] + np.array([effect[c] for c in city])
    y = (rng.random(N_EVENTS) < 1 / (1 + np.exp(-logit))).astype(int)
    y[:2] = [0, 1]  # both classes seen by the third event
    out = []
    for i in range(N_EVENTS):
        event: dict[str, Any] = {"a": float(x[i, 0]), "b": float(x[i, 1]), "c": float(x[i, 2])}
        event["city"] = str(city[i])
        if i % 17 == 5:
            del event["b"]  # missing: sent as null, left out of River's dict
        event["y"] = int(y[i])
        out.append(event)
    return out


def river_figures(model: Any, stream: list[dict[str, Any]]) -> dict[str, float]:
    """River's own loop over the events; figures from the third event on."""
    correct, losses, scores, truth = 0, [], [], []
    for i, event in enumerate(stream):
        x = {k: v for k, v in event.items() if k != "y"}
        y = event["y"]
        proba = model.predict_proba_one(x)
        model.learn_one(x, y)
        if i < 2:
            continue
        p1 = float(proba.get(1, proba.get(True, 0.0)))
        p0 = float(proba.get(0, proba.get(False, 0.0)))
        if max(p0, p1) > 0:
            correct += int((1 if p1 > p0 else 0) == y)
        losses.append(-np.log(np.clip(p1 if y == 1 else p0, _EPS, 1 - _EPS)))
        scores.append(p1)
        truth.append(y)
    return {
        "accuracy": correct / len(truth),
        "log_loss": float(np.mean(losses)),
        "roc_auc": float(roc_auc_score(truth, scores)),
    }


Case = tuple[dict[str, Any], Callable[[], Any], list[str]]


def _specs() -> dict[str, Case]:
    """Each case: the model's spec, a factory of River's own estimator (the same one), and the
    fields left out of the features (River's StandardScaler takes numbers only)."""
    return {
        "logistic_regression": (
            {
                "river": "compose.Pipeline",
                "params": {
                    "steps": [
                        {"river": "preprocessing.StandardScaler"},
                        {"river": "linear_model.LogisticRegression"},
                    ]
                },
            },
            lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(),
            ["city"],
        ),
        "hoeffding_tree": (
            {"river": "tree.HoeffdingTreeClassifier", "params": {"grace_period": 100}},
            lambda: tree.HoeffdingTreeClassifier(grace_period=100),
            [],
        ),
        "arf": (
            {"river": "forest.ARFClassifier", "params": {"n_models": 10}},
            lambda: forest.ARFClassifier(n_models=10, seed=0),
            [],
        ),
    }


@pytest.mark.parametrize("case", list(_specs()))
def test_river_through_the_adapter_gives_rivers_own_figures(case: str) -> None:
    spec, own, exclude = _specs()[case]
    stream = events()
    with Pipeline(
        {
            "name": "river_figures",
            "topics": {"train": "train"},
            "target": "y",
            "features": {"exclude": exclude},
            "models": [{"name": "m", **spec}],
            "learning": {"block_events": 1},
            "evaluation": {"interval_events": N_EVENTS, "window": N_EVENTS - 2},
            "outputs": {"database": "sqlite://", "write_results": False},
        }
    ) as pipeline:
        pipeline.send("train", stream)
        pipeline.run()
        metrics = pipeline.metrics("m")
    last = metrics.iloc[-1]
    assert int(last["events_seen"]) == N_EVENTS
    expected = river_figures(
        own(), [{k: v for k, v in e.items() if k not in exclude} for e in stream]
    )
    assert float(last["window_accuracy"]) == pytest.approx(expected["accuracy"], abs=1e-12)
    assert float(last["window_log_loss"]) == pytest.approx(expected["log_loss"], rel=1e-6)
    assert float(last["window_roc_auc"]) == pytest.approx(expected["roc_auc"], abs=1e-9)


def test_the_adapter_keeps_zeros_and_names() -> None:
    """What River sees: every field under its own name, zeros included, missing left out."""
    seen: list[dict[str, Any]] = []

    class Recorder(tree.HoeffdingTreeClassifier):  # type: ignore[misc]
        def learn_one(self, x: dict[str, Any], y: Any, **kwargs: Any) -> None:
            seen.append(dict(x))
            super().learn_one(x, y, **kwargs)

    stream = events()[:30]
    model = RiverModel(Recorder())
    batch = decode_json(
        Messages.from_values([orjson.dumps(e) for e in stream]), "y", "classification"
    ).batch
    featurizer = Featurizer(exclude=["y"])
    featurizer.learn_transform(batch)
    model.predict_learn_many(featurizer.records(batch), batch.columns["y"])
    assert seen[0] == {"a": 0.0, "b": 0.0, "c": 0.0, "city": stream[0]["city"]}
    for x, event in zip(seen, stream, strict=True):
        assert x == {k: v for k, v in event.items() if k != "y"}
        assert list(x) == [k for k in ("a", "b", "c", "city") if k in event]


def test_nested_estimators_and_pipelines_are_written_in_the_spec() -> None:
    from streamfit.models import build_model
    from streamfit.spec.model import RiverModelSpec

    spec = RiverModelSpec(
        name="ovr",
        river="multiclass.OneVsRestClassifier",
        params={"classifier": {"river": "linear_model.LogisticRegression", "params": {"l2": 0.1}}},
    )
    model = build_model(spec, "classification", 16)
    assert isinstance(model, RiverModel)
    inner = model.estimator.classifier
    assert type(inner).__name__ == "LogisticRegression" and inner.l2 == 0.1
    rows = [{"x": float(i % 3), "z": 1.0} for i in range(90)]
    labels = np.array(["a", "b", "c"] * 30, dtype=object)
    proba = model.predict_learn_many(rows, labels)
    assert proba.shape == (90, 3) and model.classes == ["a", "b", "c"]


def test_naive_bayes_gets_token_counts() -> None:
    from river import naive_bayes

    model = RiverModel(naive_bayes.MultinomialNB())
    rows = [{"text": "win cash now win"}, {"text": "see you at lunch"}] * 20
    labels = np.array(["spam", "ham"] * 20, dtype=object)
    model.learn_many(rows, labels)
    counts = model.estimator.feature_counts
    assert counts["win"]["spam"] == 40 and counts["lunch"]["ham"] == 20
    assert model.predict_many([{"text": "cash now"}]).tolist() == ["spam"]
