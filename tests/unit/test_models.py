"""streamfit.models: one battery over every model kind, plus the speed-dating learning race.

Every kind in ``KINDS`` (built from its spec, as the worker does) goes through the same checks:
defaults before learning, empty batches, unseen feature columns, state round trip, learning a
simple separable problem, determinism. Add a kind, get the checks.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import scipy.sparse as sp
from sklearn.metrics import roc_auc_score

from streamfit.errors import ModelError, StateFormatError
from streamfit.models import (
    BinnedLogisticRegression,
    Classifier,
    LinearRegression,
    LogisticRegression,
    Mergeable,
    Model,
    Prequential,
    RiverModel,
    SklearnModel,
    Task,
    build_model,
    checks,
    model_from_state,
)
from streamfit.models import state as state_format
from streamfit.models.base import predict_learn_many
from streamfit.models.checks import (
    N_FEATURES,
    binary_problem,
    multiclass_problem,
    regression_problem,
)
from streamfit.spec.model import BuiltinModelSpec, RiverModelSpec, SklearnModelSpec

Problem = checks.Problem


@dataclass(frozen=True)
class Kind:
    spec: Any
    task: Task
    problem: Problem
    builtin: bool = False
    same_bytes: bool = True  # two identical runs pickle to the same bytes
    threshold: float = 0.85  # accuracy for classifiers, R^2 for regressors

    def build(self) -> Model:
        return build_model(self.spec, self.task, N_FEATURES)


def _builtin(name: str, builtin: str, task: Task, problem: Problem) -> Kind:
    return Kind(BuiltinModelSpec(name=name, builtin=builtin), task, problem, builtin=True)


KINDS: dict[str, Kind] = {
    "builtin_logistic_binary": _builtin(
        "lr", "logistic_regression", "classification", binary_problem
    ),
    "builtin_logistic_multiclass": _builtin(
        "lr", "logistic_regression", "classification", multiclass_problem
    ),
    "builtin_binned_binary": _builtin(
        "blr", "binned_logistic_regression", "classification", binary_problem
    ),
    "builtin_binned_multiclass": _builtin(
        "blr", "binned_logistic_regression", "classification", multiclass_problem
    ),
    "builtin_linear_regression": _builtin(
        "lin", "linear_regression", "regression", regression_problem
    ),
    "river_hoeffding_tree": Kind(
        RiverModelSpec(
            name="ht", river="tree.HoeffdingTreeClassifier", params={"grace_period": 50}
        ),
        "classification",
        multiclass_problem,
        same_bytes=False,  # river.proba.Gaussian holds an unseeded random.Random (unused here)
        threshold=0.75,
    ),
    "river_logistic": Kind(
        RiverModelSpec(name="rlr", river="linear_model.LogisticRegression"),
        "classification",
        binary_problem,
    ),
    "sklearn_sgd_classifier": Kind(
        SklearnModelSpec(
            name="sgd", sklearn="linear_model.SGDClassifier", params={"loss": "log_loss"}
        ),
        "classification",
        binary_problem,
    ),
    "sklearn_sgd_regressor": Kind(
        SklearnModelSpec(name="sgdr", sklearn="linear_model.SGDRegressor"),
        "regression",
        regression_problem,
    ),
}


@pytest.fixture(params=list(KINDS), ids=list(KINDS))
def kind(request: pytest.FixtureRequest) -> Kind:
    return KINDS[request.param]


def stream(kind: Kind, n: int = 3000, seed: int = 0, batch: int = 100) -> list[tuple[Any, Any]]:
    X, y = kind.problem(np.random.default_rng(seed), n)
    return [(X[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]


def trained(kind: Kind, n: int = 3000, seed: int = 0) -> Model:
    model = kind.build()
    for Xb, yb in stream(kind, n, seed):
        model.learn_many(Xb, yb)
    return model


def predictions(model: Model, X: sp.csr_matrix) -> tuple[list[object], npt.NDArray[np.float64]]:
    if model.task == "classification":
        assert isinstance(model, Classifier)
        return model.predict_many(X).tolist(), model.predict_proba_many(X)
    return [], np.asarray(model.predict_many(X), dtype=np.float64)


# -- the battery: streamfit.models.checks over every kind ------------------------------------


@pytest.mark.parametrize("check", checks.CHECKS, ids=[c.__name__ for c in checks.CHECKS])
def test_battery(kind: Kind, check: Callable[..., None]) -> None:
    options = checks.Options(
        threshold=kind.threshold, same_bytes=kind.same_bytes, exact_state=kind.builtin
    )
    check(kind.build, kind.problem, options)


def test_only_the_builtin_linear_learners_are_mergeable(kind: Kind) -> None:
    model = kind.build()
    assert isinstance(model, Mergeable) == isinstance(model, LogisticRegression | LinearRegression)


def test_the_battery_catches_a_model_that_forgets_its_classes() -> None:
    class Forgetful(LogisticRegression):
        @classmethod
        def from_state(cls, blob: bytes) -> Forgetful:
            return cls(n_features=N_FEATURES)

    with pytest.raises(AssertionError, match="check_state_round_trip"):
        checks.check_model(lambda: Forgetful(n_features=N_FEATURES), binary_problem)


# -- speed dating: learning as fast as River's per-event learner ----------------------------

_CSV = "speed_dating/speed_dating_kaggle.csv.gz"
_COPIES = [
    Path(__file__).resolve().parents[2] / "src/streamfit/data" / _CSV,  # the demo's copy
    Path(__file__).resolve().parents[3] / "shared/datasets" / _CSV,
]
SPEED_DATING_CSV = next((p for p in _COPIES if p.exists()), _COPIES[-1])
BITS = 18


def speed_dating_features(batch: int = 100) -> tuple[sp.csr_matrix, npt.NDArray[np.bool_]]:
    """Rows sorted by (wave, round, order); numerics standardized with running statistics
    (updated with each batch before it is transformed), NaN -> 0; strings one-hot hashed."""
    with gzip.open(SPEED_DATING_CSV, "rt", encoding="latin-1", newline="") as fh:
        header, *body = list(csv.reader(fh))
    col = {name: i for i, name in enumerate(header)}
    body.sort(key=lambda r: (float(r[col["wave"]]), float(r[col["round"]]), float(r[col["order"]])))
    table = np.array(body, dtype=object)
    y = table[:, col["match"]] == "1"
    names = [
        n for n in header if n not in {"match", "dec", "dec_o"} and not n.endswith(("_2", "_3"))
    ]
    numeric: list[npt.NDArray[np.float64]] = []
    numeric_names: list[str] = []
    strings: list[str] = []
    for name in names:
        raw = table[:, col[name]]
        try:
            numeric.append(np.where(raw == "", "nan", raw).astype(np.float64))
            numeric_names.append(name)
        except ValueError:
            strings.append(name)
    values = np.column_stack(numeric)
    n, d = values.shape
    scaled = np.zeros_like(values)
    count, mean, m2 = np.zeros(d), np.zeros(d), np.zeros(d)
    for s in range(0, n, batch):  # Chan et al.: combine running and batch moments
        block = values[s : s + batch]
        present = ~np.isnan(block)
        bn = present.sum(axis=0)
        bmean = np.where(bn > 0, np.nansum(block, axis=0) / np.maximum(bn, 1), 0.0)
        bm2 = np.nansum((block - bmean) ** 2, axis=0)
        total = count + bn
        delta = bmean - mean
        mean = mean + delta * np.where(total > 0, bn / np.maximum(total, 1), 0.0)
        m2 = m2 + bm2 + delta**2 * count * bn / np.maximum(total, 1)
        count = total
        sd = np.sqrt(np.where(count > 1, m2 / np.maximum(count - 1, 1), 0.0))
        scaled[s : s + batch] = np.nan_to_num((block - mean) / np.where(sd > 0, sd, 1.0))
    num_cols = np.array([zlib.crc32(name.encode()) % 2**BITS for name in numeric_names])
    rows = [np.repeat(np.arange(n), d)]
    cols = [np.tile(num_cols, n)]
    data = [scaled.ravel()]
    for name in strings:
        raw = table[:, col[name]]
        keep = np.flatnonzero(raw != "")
        rows.append(keep)
        cols.append(np.array([zlib.crc32(f"{name}={raw[i]}".encode()) % 2**BITS for i in keep]))
        data.append(np.ones(keep.size))
    coo = sp.coo_matrix(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(n, 2**BITS)
    )
    X = coo.tocsr()
    X.eliminate_zeros()
    return X, y


def prequential_auc(model: Any, X: sp.csr_matrix, y: npt.NDArray[np.bool_], batch: int) -> float:
    """Predict each batch, then learn it; ROC AUC of P(match) over the whole stream."""
    scores = []
    labels = y.astype(object)
    for s in range(0, X.shape[0], batch):
        Xb = X[s : s + batch]
        proba = model.predict_proba_many(Xb)
        classes = model.classes
        scores.append(
            proba[:, classes.index(True)] if True in classes else np.full(Xb.shape[0], 0.5)
        )
        model.learn_many(Xb, labels[s : s + batch])
    return float(roc_auc_score(y, np.concatenate(scores)))


def test_speed_dating_learns_as_fast_as_river() -> None:
    from river import linear_model

    X, y = speed_dating_features()
    assert X.shape[0] == 8378 and 80 < X.nnz / X.shape[0] < 130
    ours = prequential_auc(LogisticRegression(), X, y, batch=100)
    river = prequential_auc(RiverModel(linear_model.LogisticRegression()), X, y, batch=100)
    assert ours >= 0.84, (ours, river)
    assert ours >= river - 0.005, (ours, river)


# -- built-in learners ----------------------------------------------------------------------


def test_logistic_grows_from_sigmoid_to_softmax_keeping_probabilities() -> None:
    kind = KINDS["builtin_logistic_binary"]
    model = trained(kind, n=1000)
    assert isinstance(model, LogisticRegression) and not model.multiclass
    X, _ = kind.problem(np.random.default_rng(3), 200)
    before = model.predict_proba_many(X)
    model.merge(LogisticRegression())  # a fresh model changes nothing
    np.testing.assert_array_equal(model.predict_proba_many(X), before)
    model._add_class("maybe")  # what learn_many does on a third label
    after = model.predict_proba_many(X)
    assert model.multiclass and model.classes[2] == "maybe"
    np.testing.assert_allclose(after[:, :2] / after[:, :2].sum(axis=1, keepdims=True), before)
    model.learn_many(X[:3], np.array(["maybe"] * 3, dtype=object))
    assert model.predict_proba_many(X).shape == (200, 3)


def test_label_types_survive_the_state() -> None:
    X, _ = binary_problem(np.random.default_rng(0), 6)
    for labels in ([True, False, True], [1, 0, 2], ["1", "0", "x"], [1.5, 2.5, 1.5]):
        model = LogisticRegression()
        model.learn_many(X[:3], np.array(labels, dtype=object))
        back = LogisticRegression.from_state(model.state())
        assert back.classes == model.classes
        assert [type(c) for c in back.classes] == [type(c) for c in model.classes]


def test_numpy_label_arrays_are_plain_python_classes() -> None:
    X, _ = binary_problem(np.random.default_rng(0), 4)
    model = LogisticRegression()
    model.learn_many(X, np.array([True, False, False, True]))
    assert model.classes == [True, False] and all(type(c) is bool for c in model.classes)
    model.learn_many(X, np.array(["a", "b", "a", "b"]))
    assert model.classes[2:] == ["a", "b"] and all(type(c) is str for c in model.classes[2:])


@pytest.mark.parametrize("cls", [LogisticRegression, BinnedLogisticRegression])
def test_merge_of_two_halves_learns_the_whole(cls: type[LogisticRegression]) -> None:
    X, y = binary_problem(np.random.default_rng(0), 4000)
    a, b = cls(), cls()
    for s in range(0, 2000, 100):
        a.learn_many(X[s : s + 100], y[s : s + 100])
        b.learn_many(X[2000 + s : 2100 + s], y[2000 + s : 2100 + s])
    weights = (a.weights * a.n_seen + b.weights * b.n_seen) / 4000
    a.merge(b)
    assert a.n_seen == 4000
    np.testing.assert_allclose(a.weights, weights)
    Xt, yt = binary_problem(np.random.default_rng(1), 1000)
    assert np.mean(a.predict_many(Xt) == yt) > 0.9


def test_merge_aligns_classes_by_label() -> None:
    X, y = binary_problem(np.random.default_rng(0), 2000)
    first_yes, first_no = int(np.argmax(y == "yes")), int(np.argmax(y == "no"))
    a, b = LogisticRegression(), LogisticRegression()
    a.learn_many(X[first_no : first_no + 1], y[first_no : first_no + 1])
    a.learn_many(X[:1000], y[:1000])
    b.learn_many(X[first_yes : first_yes + 1], y[first_yes : first_yes + 1])
    b.learn_many(X[1000:], y[1000:])
    assert a.classes[0] != b.classes[0]
    merged = LogisticRegression.from_state(a.state())
    merged.merge(b)
    Xt, yt = binary_problem(np.random.default_rng(1), 1000)
    assert np.mean(merged.predict_many(Xt) == yt) > 0.9
    # a multiclass model merged into a binary one turns it into softmax
    m, my = multiclass_problem(np.random.default_rng(0), 1000)
    c = LogisticRegression()
    c.learn_many(m, my)
    merged.merge(c)
    assert merged.multiclass and len(merged.classes) == 5


def test_merge_refuses_other_kinds_and_widths() -> None:
    X, y = regression_problem(np.random.default_rng(0), 100)
    lin = LinearRegression()
    lin.learn_many(X, y)
    with pytest.raises(ModelError):
        lin.merge(LogisticRegression())  # type: ignore[arg-type]
    narrow = LinearRegression(n_features=8)
    narrow.learn_many(sp.csr_matrix(np.ones((2, 8))), np.ones(2))
    with pytest.raises(ModelError, match="features"):
        lin.merge(narrow)


def test_builtin_input_checks() -> None:
    model = LogisticRegression(n_features=N_FEATURES)
    X, y = binary_problem(np.random.default_rng(0), 10)
    with pytest.raises(ModelError, match="columns"):
        model.learn_many(sp.csr_matrix((10, 8)), y)
    with pytest.raises(ModelError, match="1-d"):
        model.learn_many(X, y[:5])
    bad = X.copy()
    bad.data[0] = np.nan
    with pytest.raises(ModelError, match="NaN"):
        model.learn_many(bad, y)
    with pytest.raises(ModelError, match="label"):
        model.learn_many(X[:1], np.array([None], dtype=object))
    with pytest.raises(ModelError, match="NaN"):
        LinearRegression().learn_many(X[:1], np.array([np.nan]))
    with pytest.raises(ModelError, match="learning_rate"):
        LogisticRegression(learning_rate=-1.0)
    with pytest.raises(ModelError, match="CSR"):
        model.predict_many(np.ones((2, N_FEATURES)))


@pytest.mark.parametrize("problem", ["binary", "multiclass", "regression"])
def test_builtins_learn_event_by_event_whatever_the_batches(problem: str) -> None:
    """``predict_learn_many`` predicts each row with the model as it was just before it, and
    the model after any cut of the rows into batches is the same, bit for bit."""
    make: Problem = {
        "binary": binary_problem,
        "multiclass": multiclass_problem,
        "regression": regression_problem,
    }[problem]
    X, y = make(np.random.default_rng(0), 600)
    cls: type[LogisticRegression] | type[LinearRegression] = (
        LinearRegression if problem == "regression" else LogisticRegression
    )
    whole = cls(n_features=N_FEATURES)
    got = whole.predict_learn_many(X, y)
    one = cls(n_features=N_FEATURES)
    expected = []
    for i in range(600):
        if isinstance(one, LogisticRegression):
            row = np.zeros(len(whole.classes))
            proba = one.predict_proba_many(X[i])[0]
            row[: len(proba)] = proba
            expected.append(row)
        else:
            expected.append(one.predict_many(X[i])[0])
        one.learn_many(X[i], y[i : i + 1])
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-12, atol=1e-12)
    assert one.state() == whole.state()
    stepped = cls(n_features=N_FEATURES)
    for s in range(0, 600, 77):
        stepped.learn_many(X[s : s + 77], y[s : s + 77])
    assert stepped.state() == whole.state()


def test_binned_learns_what_a_linear_model_cannot() -> None:
    """An XOR of two signs: no line separates it, a cross of the two features' bins does
    (crosses are off by default: ``cross_limit`` turns them on)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6000, 2))
    y = np.where((x[:, 0] > 0) == (x[:, 1] > 0), "same", "other")
    X = sp.csr_matrix(
        (x.ravel(), (np.repeat(np.arange(6000), 2), np.tile([3, 9], 6000))),
        shape=(6000, N_FEATURES),
    )
    accuracy = {}
    specs = {
        "logistic_regression": BuiltinModelSpec(name="m", builtin="logistic_regression"),
        "binned_logistic_regression": BuiltinModelSpec(
            name="m", builtin="binned_logistic_regression", params={"cross_limit": 8}
        ),
    }
    for name, spec in specs.items():
        model = build_model(spec, "classification", N_FEATURES)
        proba = predict_learn_many(model, X, y)
        labels = np.array(model.classes)  # type: ignore[attr-defined]
        accuracy[name] = float((labels[proba[3000:].argmax(axis=1)] == y[3000:]).mean())
    assert accuracy["logistic_regression"] < 0.6
    assert accuracy["binned_logistic_regression"] > 0.9


def test_prequential_fallback_predicts_the_block_then_learns_it() -> None:
    model = build_model(
        SklearnModelSpec(
            name="sgd", sklearn="linear_model.SGDClassifier", params={"loss": "log_loss"}
        ),
        "classification",
        N_FEATURES,
    )
    assert not isinstance(model, Prequential)
    X, y = binary_problem(np.random.default_rng(1), 200)
    model.learn_many(X[:100], y[:100])
    before = model.predict_proba_many(X[100:])  # type: ignore[attr-defined]
    got = predict_learn_many(model, X[100:], y[100:])
    np.testing.assert_array_equal(got, before)
    assert model.n_seen == 200  # type: ignore[attr-defined]


# -- state format ---------------------------------------------------------------------------


def test_state_header_is_documented_json() -> None:
    model = trained(KINDS["builtin_logistic_multiclass"], n=500)
    decoded = state_format.decode_state(model.state())
    assert decoded.model == "builtin.LogisticRegression" and decoded.kind == "arrays"
    assert decoded.classes == model.classes  # type: ignore[attr-defined]
    assert decoded.counters["n_seen"] == 500
    assert set(decoded.arrays) == {"index", "W", "G", "b", "Gb"}
    assert decoded.arrays["W"].shape[1] == 3
    assert decoded.params["learning_rate"] == 0.5 and decoded.params["n_features"] == N_FEATURES
    with pytest.raises(StateFormatError, match=r"not a 'builtin\.LinearRegression'"):
        LinearRegression.from_state(model.state())


@pytest.mark.parametrize(
    ("kind_name", "library"),
    [("river_logistic", "river"), ("sklearn_sgd_classifier", "scikit-learn")],
)
def test_pickled_states_refuse_another_library_version(kind_name: str, library: str) -> None:
    model = trained(KINDS[kind_name], n=300)
    decoded = state_format.decode_state(model.state())
    assert decoded.kind == "pickle" and decoded.library["name"] == library
    major, minor, *_ = decoded.library["version"].split(".")

    def written_by(version: str) -> bytes:
        return state_format.encode_state(
            decoded.model,
            params=decoded.params,
            classes=decoded.classes,
            counters=decoded.counters,
            payload=decoded.payload,
            library={"name": library, "version": version},
            extra=decoded.extra,
        )

    with pytest.raises(StateFormatError, match=r"same major\.minor"):
        model_from_state(written_by(f"{major}.{int(minor) + 1}.0"))
    assert type(model_from_state(written_by(f"{major}.{minor}.999"))) is type(model)


def test_unknown_model_kind_in_state() -> None:
    blob = state_format.encode_state("tensorflow", params={}, arrays={})
    with pytest.raises(StateFormatError, match="unknown model kind"):
        model_from_state(blob)


# -- adapters -------------------------------------------------------------------------------


def test_river_binary_only_estimator_maps_labels_and_skips_a_third_class() -> None:
    from river import linear_model

    X, y = binary_problem(np.random.default_rng(0), 1000)
    model = RiverModel(linear_model.LogisticRegression())
    model.learn_many(X, y)
    model.learn_many(X[:2], np.array(["maybe", "maybe"], dtype=object))
    assert model.classes == [y[0], "yes" if y[0] == "no" else "no"]
    assert model.skipped_rows == 2 and model.n_seen == 1000
    Xt, yt = binary_problem(np.random.default_rng(1), 500)
    assert np.mean(model.predict_many(Xt) == yt) > 0.9
    bools = RiverModel(linear_model.LogisticRegression())
    bools.learn_many(X, y == "yes")
    assert bools.classes[0] is (y[0] == "yes")
    p = bools.predict_proba_many(Xt)[:, bools.classes.index(True)]
    assert np.mean((p > 0.5) == (yt == "yes")) > 0.9


def test_river_regressor() -> None:
    from river import linear_model

    model = RiverModel(linear_model.LinearRegression())
    assert model.task == "regression"
    X, y = regression_problem(np.random.default_rng(0), 2000)
    model.learn_many(X, y)
    assert np.mean((model.predict_many(X) - y) ** 2) < np.var(y) / 2
    with pytest.raises(ModelError, match="regressor"):
        model.predict_proba_many(X)
    with pytest.raises(ModelError, match="River classifier or regressor"):
        from river import anomaly

        RiverModel(anomaly.HalfSpaceTrees())


def test_sklearn_discovers_classes_then_fixes_them() -> None:
    from sklearn.linear_model import SGDClassifier

    X, y = binary_problem(np.random.default_rng(0), 1000)
    model = SklearnModel(SGDClassifier(loss="hinge", random_state=0))
    first = np.array([y[0]] * 3, dtype=object)
    model.learn_many(X[:3], first)  # one class: held back
    assert model.n_seen == 0 and model.classes == [y[0]]
    assert model.predict_proba_many(X[:2]).tolist() == [[1.0], [1.0]]
    model.learn_many(X, y)
    assert model.n_seen == 1003
    model.learn_many(X[:4], np.array(["maybe"] * 4, dtype=object))
    assert model.skipped_rows == 4 and len(model.classes) == 2
    Xt, yt = binary_problem(np.random.default_rng(1), 500)
    proba = model.predict_proba_many(Xt)  # hinge: decision_function through a sigmoid
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.mean(model.predict_many(Xt) == yt) > 0.9


def test_sklearn_declared_classes_and_multiclass_decision_function() -> None:
    from sklearn.linear_model import SGDClassifier

    X, y = multiclass_problem(np.random.default_rng(0), 3000)
    model = SklearnModel(SGDClassifier(loss="hinge", random_state=0), classes=[2, 1, 0])
    assert model.classes == [2, 1, 0]
    assert model.predict_many(X[:1]).tolist() == [2]
    np.testing.assert_allclose(model.predict_proba_many(X[:1]), [[1 / 3] * 3])
    for s in range(0, 3000, 100):
        model.learn_many(X[s : s + 100], y[s : s + 100])
    Xt, yt = multiclass_problem(np.random.default_rng(1), 500)
    assert np.mean(model.predict_many(Xt) == yt) > 0.75
    with pytest.raises(ModelError, match="two distinct"):
        SklearnModel(SGDClassifier(), classes=["only"])


def test_sklearn_buffer_is_bounded() -> None:
    from sklearn.linear_model import SGDClassifier

    X, _ = binary_problem(np.random.default_rng(0), 30)
    model = SklearnModel(SGDClassifier(random_state=0), buffer_rows=10)
    model.learn_many(X[:25], np.array(["a"] * 25, dtype=object))
    assert model.skipped_rows == 15
    restored = SklearnModel.from_state(model.state())
    restored.learn_many(X[25:], np.array(["b"] * 5, dtype=object))
    assert restored.n_seen == 15 and restored.classes == ["a", "b"]


# -- factory --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "task", "message"),
    [
        (BuiltinModelSpec(name="m", builtin="linear_regression"), "classification", "task"),
        (
            BuiltinModelSpec(name="m", builtin="logistic_regression", params={"lr": 1}),
            "classification",
            "unknown parameter",
        ),
        (
            BuiltinModelSpec(name="m", builtin="logistic_regression", params={"l2": -1}),
            "classification",
            "l2",
        ),
        (
            BuiltinModelSpec(name="m", builtin="logistic_regression", params={"n_features": 8}),
            "classification",
            "n_features",
        ),
        (
            RiverModelSpec(name="m", river="nosuchmodule.Thing"),
            "classification",
            "cannot import river.nosuchmodule",
        ),
        (RiverModelSpec(name="m", river="tree.NoTree"), "classification", "has no 'NoTree'"),
        (
            RiverModelSpec(name="m", river="HoeffdingTreeClassifier"),
            "classification",
            "<module>.<Class>",
        ),
        (RiverModelSpec(name="m", river="stats.Mean"), "classification", "not a River classifier"),
        (RiverModelSpec(name="m", river="tree.HoeffdingTreeClassifier"), "regression", "task"),
        (
            RiverModelSpec(name="m", river="tree.HoeffdingTreeClassifier", params={"grace": 1}),
            "classification",
            "unknown parameter(s) grace",
        ),
        (
            SklearnModelSpec(name="m", sklearn="linear_model.LogisticRegression"),
            "classification",
            "partial_fit",
        ),
        (
            SklearnModelSpec(
                name="m", sklearn="linear_model.SGDClassifier", params={"loss": "bogus"}
            ),
            "classification",
            "loss",
        ),
        (SklearnModelSpec(name="m", sklearn="linear_model.SGDRegressor"), "classification", "task"),
        (
            SklearnModelSpec(
                name="m", sklearn="linear_model.SGDRegressor", params={"classes": [1, 2]}
            ),
            "regression",
            "classes",
        ),
    ],
)
def test_factory_errors_name_the_model_and_the_problem(spec: Any, task: Task, message: str) -> None:
    with pytest.raises(ModelError, match="model 'm'") as info:
        build_model(spec, task, N_FEATURES)
    assert message in str(info.value)


def test_factory_passes_params_seeds_and_classes() -> None:
    model = build_model(
        SklearnModelSpec(
            name="m",
            sklearn="linear_model.SGDClassifier",
            params={"alpha": 0.01, "classes": ["a", "b"]},
        ),
        "classification",
        N_FEATURES,
    )
    assert isinstance(model, SklearnModel)
    assert model.estimator.alpha == 0.01 and model.estimator.random_state == 0
    assert model.classes == ["a", "b"]
    forest = build_model(
        RiverModelSpec(name="f", river="forest.ARFClassifier", params={"n_models": 2}),
        "classification",
        N_FEATURES,
    )
    assert isinstance(forest, RiverModel) and forest.estimator.seed == 0
    lr = build_model(
        BuiltinModelSpec(name="lr", builtin="logistic_regression", params={"l2": 0.1}),
        "classification",
        64,
    )
    assert isinstance(lr, LogisticRegression) and lr.params["l2"] == 0.1 and lr.n_features == 64


def test_a_bad_label_leaves_the_model_untouched() -> None:
    X, y = binary_problem(np.random.default_rng(0), 4)
    model = LogisticRegression()
    model.learn_many(X, y)
    before = model.state()
    for bad in (np.array(["new", None, "yes", "x"], dtype=object), np.array([1.0, np.nan, 2, 3])):
        with pytest.raises(ModelError, match="label"):
            model.learn_many(X, bad)
        assert model.state() == before


def test_sklearn_naive_bayes_learns_token_counts_through_a_pipeline() -> None:
    from streamfit.pipeline import Pipeline

    spam = ["win cash now", "free prize win", "cash prize claim now"]
    ham = ["see you at lunch", "call me later", "lunch at noon then"]
    events = [
        {"text": (spam if i % 2 else ham)[i % 3], "label": "spam" if i % 2 else "ham"}
        for i in range(300)
    ]
    spec = {
        "name": "nb",
        "topics": {"train": "train"},
        "target": "label",
        "features": {"types": {"text": "text"}},
        "models": [
            {
                "name": "nb",
                "sklearn": "naive_bayes.MultinomialNB",
                "params": {"classes": ["ham", "spam"]},
            }
        ],
        "outputs": {"database": "sqlite://", "write_results": False},
        "learning": {"block_events": 20},  # partial_fit: a block is predicted, then learned
    }
    with Pipeline(spec) as pipeline:
        pipeline.send("train", events)
        pipeline.run()
        predicted = pipeline.predict([{"text": "claim your cash"}, {"text": "lunch later"}])
        metrics = pipeline.metrics("nb")
    assert predicted["prediction"].tolist() == ["spam", "ham"]
    assert float(metrics.iloc[-1]["window_accuracy"]) > 0.95
    assert (
        build_model(
            SklearnModelSpec(name="nb", sklearn="naive_bayes.MultinomialNB"), "classification", 16
        ).reads
        == "records"
    )  # type: ignore[attr-defined]


def test_linear_regression_learns_a_target_far_from_zero_from_the_first_events() -> None:
    """A temperature near 300: learned as it comes, standardized, the regression is close
    from the first hundreds of events; without ``scale_target`` AdaGrad's bounded steps were
    still far from it after 20,000 (prequential R² -39 on such a stream)."""
    rng = np.random.default_rng(3)
    X = sp.csr_matrix(rng.normal(size=(3000, 3)))
    y = 300.0 + X @ np.array([8.0, 20.0, -3.0]) + rng.normal(0, 2, 3000)
    scaled, plain = LinearRegression(), LinearRegression(scale_target=False)
    for model, r2_after_500 in ((scaled, 0.9), (plain, None)):
        predicted = model.predict_learn_many(X, y)
        residual = ((predicted[500:] - y[500:]) ** 2).sum()
        r2 = 1 - residual / ((y[500:] - y[500:].mean()) ** 2).sum()
        if r2_after_500 is not None:
            assert r2 > r2_after_500
        else:
            assert r2 < 0
    again = LinearRegression.from_state(scaled.state())
    assert again.scale_target and np.array_equal(again.predict_many(X), scaled.predict_many(X))
    assert LinearRegression.from_state(plain.state()).scale_target is False


def test_merged_regressions_add_their_targets_moments() -> None:
    rng = np.random.default_rng(4)
    X = sp.csr_matrix(rng.normal(size=(400, 2)))
    y = 50.0 + 5 * rng.normal(size=400)
    a, b = LinearRegression(), LinearRegression()
    a.learn_many(X[:100], y[:100])
    b.learn_many(X[100:], y[100:])
    a.merge(b)
    count, mean, m2 = a._y_moments
    assert count == 400 and mean == pytest.approx(y.mean()) and m2 == pytest.approx(y.var() * 400)
