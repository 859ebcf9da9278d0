"""Pretrained models: an ONNX graph through onnxruntime, a scikit-learn estimator from a
skops file; in the worker, in preflight, and against scikit-learn's own predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from streamfit.batch import Messages
from streamfit.cli.flights_model import (
    CATEGORIES,
    NUMBERS,
    fit_pipeline,
    flights,
    model_inputs,
    to_onnx_bytes,
)
from streamfit.codecs import decode_json
from streamfit.errors import ModelError, SpecError
from streamfit.models import OnnxModel, SklearnFileModel, model_from_state
from streamfit.models.checks import (
    N_FEATURES,
    Options,
    binary_problem,
    check_contract,
    check_state_rejects_garbage,
)
from streamfit.runtime.build import build_worker
from streamfit.runtime.preflight import preflight
from streamfit.spec import validate_spec
from streamfit.streams.memory import MemoryBroker
from streamfit.streams.replay import frame_to_events


@pytest.fixture(scope="module")
def trained() -> tuple[Any, pd.DataFrame, bytes]:
    frame = flights()
    pipeline = fit_pipeline(frame.iloc[:3000], max_iter=30)
    return pipeline, frame.iloc[3000:5000].reset_index(drop=True), to_onnx_bytes(pipeline)


def columns_of(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The batch columns the worker decodes from these rows sent as JSON events."""
    events = frame_to_events(frame)
    return decode_json(Messages.from_values(events), "Delay", "classification").batch.columns


def test_onnx_predictions_equal_scikit_learn_within_1e5(trained: Any) -> None:
    pipeline, rest, graph = trained
    model = OnnxModel(graph)
    assert model.classes == [0, 1] and model.input_fields == CATEGORIES + NUMBERS
    onnx_proba = model.predict_proba_many(columns_of(rest))
    sklearn_proba = pipeline.predict_proba(model_inputs(rest))
    assert onnx_proba.shape == (2000, 2)
    assert np.abs(onnx_proba - sklearn_proba).max() < 1e-5
    restored = model_from_state(model.state())
    assert np.array_equal(restored.predict_proba_many(columns_of(rest)), onnx_proba)  # type: ignore[attr-defined]


def test_onnx_model_serves_in_the_worker_and_never_changes(trained: Any, tmp_path: Path) -> None:
    pipeline, rest, graph = trained
    path = tmp_path / "gbm.onnx"
    path.write_bytes(graph)
    db = f"sqlite:///{tmp_path / 'f.db'}"
    spec = validate_spec(
        {
            "name": "flights",
            "topics": {"train": "flights", "score": "flights"},
            "target": "Delay",
            "models": [
                {"name": "gbm", "onnx": str(path)},
                {"name": "lr", "builtin": "logistic_regression"},
            ],
            "outputs": {"database": db, "score_training_events": True},
            "learning": {"block_events": 500},
        }
    )
    broker = MemoryBroker()
    without_length = rest.copy()
    without_length.loc[:99, "Length"] = np.nan  # left out of those events: scored all the same
    broker.append("flights", frame_to_events(without_length))
    worker = build_worker(spec, broker=broker)
    before = worker.models.slot("gbm").model.state()
    worker.run(until=lambda w: w.read.get(("flights", 0), 0) >= 2000)
    gbm = worker.models.slot("gbm")
    assert gbm.model.state() == before and gbm.version == 0
    assert worker.models.slot("lr").version == 4
    rows = worker.store.read_results("flights_results")
    assert len(rows) == 2000 and {r["model"] for r in rows} == {"gbm"}
    inputs = model_inputs(rest)
    inputs.loc[:99, "Length"] = np.nan  # HistGradientBoosting's own missing-value branch
    expected = pipeline.predict_proba(inputs).max(axis=1)
    got = np.array([r["probability"] for r in rows])
    assert np.abs(got - expected).max() < 1e-5
    versions = worker.store.model_versions("gbm")
    assert [v["version"] for v in versions] == [0]
    worker.close()


def test_a_missing_file_or_input_fails_at_start_with_the_file_and_names(
    trained: Any, tmp_path: Path
) -> None:
    _, rest, graph = trained
    path = tmp_path / "gbm.onnx"
    path.write_bytes(graph)
    data = tmp_path / "flights.csv"
    rest.drop(columns=["Time", "Length"]).to_csv(data, index=False)

    def spec(model: dict[str, Any], source: dict[str, Any] | None = None) -> Any:
        return validate_spec(
            {
                "name": "flights",
                "source": source or {"kind": "memory"},
                "topics": {"train": "flights"},
                "target": "Delay",
                "models": [model],
                "outputs": {"database": f"sqlite:///{tmp_path / 'p.db'}"},
            }
        )

    with pytest.raises(SpecError, match=r"models\.0\.onnx: no such file: .*nope\.onnx"):
        preflight(spec({"name": "gbm", "onnx": str(tmp_path / "nope.onnx")}))
    with pytest.raises(SpecError, match=r"models\.0\.inputs: the model reads Time, Length, which"):
        preflight(spec({"name": "gbm", "onnx": str(path)}, {"kind": "file", "path": str(data)}))
    with pytest.raises(SpecError, match=r"models\.0: .*'inputs' names 2 fields"):
        preflight(spec({"name": "gbm", "onnx": str(path), "inputs": ["a", "b"]}))
    with pytest.raises(SpecError, match=r"reads 'Delay', the target"):
        preflight(
            spec(
                {
                    "name": "gbm",
                    "onnx": str(path),
                    "inputs": [*CATEGORIES, "Delay", "Time", "Length"],
                }
            )
        )
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a graph")
    with pytest.raises(SpecError, match=r"models\.0: .*garbage\.onnx: onnxruntime cannot load"):
        preflight(spec({"name": "gbm", "onnx": str(garbage)}))
    plan = preflight(spec({"name": "gbm", "onnx": str(path)}), connect=False).render()
    assert "reads Airline, AirportFrom, AirportTo, DayOfWeek, Time, Length, frozen" in plan


def test_onnx_model_passes_the_checks_that_apply(trained: Any) -> None:
    graph = trained[2]
    for check in (check_contract, check_state_rejects_garbage):
        check(lambda: OnnxModel(graph), binary_problem, Options())
    assert N_FEATURES  # the battery's problems are matrices: the others read a matrix


def test_skops_files_load_what_they_trust(tmp_path: Path) -> None:
    from sklearn.linear_model import SGDClassifier

    frame = pd.DataFrame({"x": np.linspace(-1, 1, 200), "z": np.linspace(1, -1, 200)})
    y = (frame["x"] > 0).astype(int)
    fitted = SGDClassifier(loss="log_loss", random_state=0).fit(frame, y)
    skops_file = tmp_path / "sgd.skops"
    sio.dump(fitted, skops_file)
    pickled = tmp_path / "sgd.joblib"
    joblib.dump(fitted, pickled)

    def spec(model: dict[str, Any]) -> Any:
        return validate_spec(
            {
                "name": "p",
                "source": {"kind": "memory"},
                "topics": {"train": "t"},
                "target": "y",
                "models": [{"name": "m", **model}],
                "outputs": {"database": f"sqlite:///{tmp_path / 'p.db'}"},
            }
        )

    with pytest.raises(SpecError, match=r"sgd\.joblib is a joblib file: loading it runs any code"):
        preflight(spec({"sklearn_file": str(pickled)}), connect=False)
    preflight(spec({"sklearn_file": str(pickled), "trusted": True}), connect=False)
    preflight(spec({"sklearn_file": str(skops_file)}), connect=False)

    frozen = SklearnFileModel(sio.loads(sio.dumps(fitted)))
    learning = SklearnFileModel(fitted, learn=True)
    columns = {"x": np.array([0.5, -0.5]), "z": np.array([-0.5, 0.5])}
    assert frozen.predict_many(columns).tolist() == [1, 0]
    before = frozen.state()
    frozen.learn_many(columns, np.array([0, 1], dtype=object))
    assert frozen.state() == before, "a frozen model learned"
    learning.learn_many(columns, np.array([0, 1], dtype=object))
    assert learning.state() != before
    again = model_from_state(learning.state())
    assert isinstance(again, SklearnFileModel) and again.learns
    with pytest.raises(ModelError, match="no partial_fit"):
        from sklearn.ensemble import RandomForestClassifier

        SklearnFileModel(RandomForestClassifier(n_estimators=2).fit(frame, y), learn=True)


def test_an_estimator_fitted_on_an_array_gets_arrays_and_no_warnings() -> None:
    import warnings

    from sklearn.linear_model import SGDClassifier

    X = np.column_stack([np.linspace(-1, 1, 200), np.linspace(1, -1, 200)])
    y = (X[:, 0] > 0).astype(int)
    fitted = SGDClassifier(loss="log_loss", random_state=0).partial_fit(X, y, classes=[0, 1])
    model = SklearnFileModel(fitted, inputs=["x", "z"], learn=True)
    columns = {"x": np.array([0.5, -0.5]), "z": np.array([-0.5, 0.5])}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "X has feature names, but ... fitted without" is one
        expected = fitted.predict_proba(np.array([[0.5, -0.5], [-0.5, 0.5]]))
        assert np.array_equal(model.predict_proba_many(columns), expected)
        model.learn_many(columns, np.array([1, 0], dtype=object))
