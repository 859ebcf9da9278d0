"""A check battery for model implementations, as River's ``check_estimator``.

Anything that plugs into streamfit as a model (a built-in learner, an adapter, a model of
your own) should pass every check of ``CHECKS``: it keeps the ``Model`` contract, predicts the
documented defaults before it learns, treats an empty batch as a no-op, learns a simple
problem, tolerates feature columns it has never seen, reads back its own ``state()`` and goes
on learning as before, learns the same from the same data, and refuses a corrupt state with
``StateFormatError``. ``check_model`` runs them all; each check can also run on its own, so a
test suite can parametrize over ``CHECKS``.

``make`` builds a fresh model; ``problem`` draws a labeled problem (``binary_problem``,
``multiclass_problem`` and ``regression_problem`` are here, over ``N_FEATURES`` hashed
columns). Anomaly detectors have checks of their own (``check_detector``, ``DETECTOR_CHECKS``,
on ``anomaly_problem``): the contract, an empty batch, finding planted anomalies, the state
read back, a corrupt state refused.

>>> from streamfit.models import LogisticRegression
>>> check_model(lambda: LogisticRegression(n_features=N_FEATURES), binary_problem)
>>> [check.__name__ for check in CHECKS][:3]
['check_contract', 'check_defaults_before_learning', 'check_empty_batch_is_a_no_op']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from streamfit.errors import StateFormatError
from streamfit.models.base import Classifier, Model
from streamfit.models.factory import model_from_state

__all__ = [
    "CHECKS",
    "DETECTOR_CHECKS",
    "N_FEATURES",
    "Options",
    "anomaly_problem",
    "binary_problem",
    "check_detector",
    "check_model",
    "multiclass_problem",
    "regression_problem",
]

N_FEATURES = 2**12
Problem = Callable[[np.random.Generator, int], tuple[sp.csr_matrix, npt.NDArray[Any]]]
Make = Callable[[], Model]


@dataclass(frozen=True)
class Options:
    """What a model is held to.

    ``threshold``: accuracy (classifiers) or R^2 (regressors) after 3,000 events of the
    problem. ``same_bytes``: two identical runs give identical ``state()`` bytes (false for a
    library whose pickles hold unseeded random generators). ``exact_state``: the state read
    back writes the very same bytes (the built-in format does; pickles need not).
    """

    threshold: float = 0.85
    same_bytes: bool = True
    exact_state: bool = False


# -- problems ---------------------------------------------------------------------------------


def _rows(numeric: npt.NDArray[np.float64], cats: npt.NDArray[np.int64]) -> sp.csr_matrix:
    """Numeric columns at 7, 11, 13, ... and one categorical one-hot at 1000 + category."""
    n, d = numeric.shape
    cols = np.array([7, 11, 13, 17, 19][:d])
    rows = np.repeat(np.arange(n), d + 1)
    idx = np.column_stack([np.tile(cols, (n, 1)), 1000 + cats]).ravel()
    data = np.column_stack([numeric, np.ones(n)]).ravel()
    return sp.csr_matrix((data, (rows, idx)), shape=(n, N_FEATURES))


def binary_problem(rng: np.random.Generator, n: int) -> tuple[sp.csr_matrix, npt.NDArray[Any]]:
    """Two string classes, ``"yes"``/``"no"``, from a linear rule on 4 numbers."""
    x = rng.normal(size=(n, 4))
    cats = rng.integers(0, 20, size=n)
    score = 2 * x[:, 0] - 1.5 * x[:, 1] + 0.2 * (cats % 2)
    y = np.where(score > 0, "yes", "no").astype(object)
    return _rows(x, cats), y


def multiclass_problem(rng: np.random.Generator, n: int) -> tuple[sp.csr_matrix, npt.NDArray[Any]]:
    """Three integer classes 0, 1, 2: the first number cut at -0.5 and 0.5."""
    x = rng.normal(size=(n, 3))
    cats = rng.integers(0, 20, size=n)
    y = np.digitize(x[:, 0], [-0.5, 0.5]).astype(object)
    return _rows(x, cats), y


def regression_problem(rng: np.random.Generator, n: int) -> tuple[sp.csr_matrix, npt.NDArray[Any]]:
    """A linear target of 3 numbers and a category, with a little noise."""
    x = rng.normal(size=(n, 4))
    cats = rng.integers(0, 20, size=n)
    y = 1.5 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] + 0.1 * (cats % 3) + 0.05 * rng.normal(size=n)
    return _rows(x, cats), y


# -- helpers ----------------------------------------------------------------------------------


def _trained(make: Make, problem: Problem, n: int = 3000, seed: int = 0) -> Model:
    model = make()
    X, y = problem(np.random.default_rng(seed), n)
    for start in range(0, n, 100):
        model.learn_many(X[start : start + 100], y[start : start + 100])
    return model


def _is_classifier(model: Model) -> bool:
    return isinstance(model, Classifier) and model.task == "classification"


def _outputs(model: Model, X: sp.csr_matrix) -> tuple[list[object], npt.NDArray[np.float64]]:
    if _is_classifier(model):
        assert isinstance(model, Classifier)
        return model.predict_many(X).tolist(), model.predict_proba_many(X)
    return [], np.asarray(model.predict_many(X), dtype=np.float64)


def _same_outputs(one: Model, two: Model, X: sp.csr_matrix, what: str) -> None:
    got, want = _outputs(one, X), _outputs(two, X)
    assert got[0] == want[0], f"{what}: predicted labels differ"
    assert np.array_equal(got[1], want[1]), f"{what}: predicted values differ"


# -- the checks -------------------------------------------------------------------------------


def check_contract(make: Make, problem: Problem, options: Options) -> None:
    """A ``Model`` with a ``task``; a classifier is a ``Classifier``."""
    model = make()
    assert isinstance(model, Model), f"{type(model).__name__} does not keep the Model contract"
    assert model.task in ("classification", "regression"), f"unknown task {model.task!r}"
    if model.task == "classification":
        assert isinstance(model, Classifier), "a classifier must give classes and probabilities"


def check_defaults_before_learning(make: Make, problem: Problem, options: Options) -> None:
    """Before any label: no classes, ``None`` predictions, an empty probability matrix; a
    regressor predicts 0."""
    model = make()
    X, _ = problem(np.random.default_rng(1), 5)
    if _is_classifier(model):
        assert isinstance(model, Classifier)
        assert model.classes == [], f"classes before learning: {model.classes}"
        assert model.predict_many(X).tolist() == [None] * 5
        assert model.predict_proba_many(X).shape == (5, 0)
    else:
        assert np.asarray(model.predict_many(X)).tolist() == [0.0] * 5


def check_empty_batch_is_a_no_op(make: Make, problem: Problem, options: Options) -> None:
    """Learning no rows changes nothing; predicting no rows gives no rows."""
    model = make()
    _, y = problem(np.random.default_rng(2), 2)
    empty_X = sp.csr_matrix((0, N_FEATURES))
    empty_y = y[:0]
    for current in (model, _trained(make, problem, n=500)):
        before = current.state()
        current.learn_many(empty_X, empty_y)
        assert current.state() == before, "learning an empty batch changed the state"
        assert _outputs(current, empty_X)[1].shape[0] == 0


def check_learns_the_problem(make: Make, problem: Problem, options: Options) -> None:
    """After 3,000 events, accuracy (or R^2) at ``options.threshold`` on new ones; a
    classifier's probabilities sum to one over the classes it saw."""
    model = _trained(make, problem)
    X, y = problem(np.random.default_rng(99), 1000)
    if _is_classifier(model):
        assert isinstance(model, Classifier)
        accuracy = float(np.mean(model.predict_many(X) == y))
        assert accuracy >= options.threshold, f"accuracy {accuracy:.3f}"
        assert sorted(model.classes, key=str) == sorted(set(y.tolist()), key=str)
        proba = model.predict_proba_many(X)
        assert proba.shape == (1000, len(model.classes))
        assert np.allclose(proba.sum(axis=1), 1.0, rtol=1e-9), "probabilities do not sum to 1"
    else:
        predicted = np.asarray(model.predict_many(X), dtype=np.float64)
        r2 = 1.0 - np.mean((predicted - y) ** 2) / np.var(y)
        assert r2 >= options.threshold, f"R^2 {r2:.3f}"


def check_unseen_columns_are_tolerated(make: Make, problem: Problem, options: Options) -> None:
    """Feature columns never seen in learning give finite predictions among known classes."""
    model = _trained(make, problem, n=1000)
    X, _ = problem(np.random.default_rng(5), 50)
    never_seen = sp.csr_matrix(
        (np.full(50, 3.0), (np.arange(50), np.full(50, N_FEATURES - 1))), shape=X.shape
    )
    labels, out = _outputs(model, X + never_seen)
    assert np.isfinite(out).all() and out.shape[0] == 50
    if labels:
        assert isinstance(model, Classifier)
        assert set(labels) <= set(model.classes)
    only_new = sp.csr_matrix(([1.0], ([0], [N_FEATURES - 2])), shape=(1, N_FEATURES))
    assert np.isfinite(_outputs(model, only_new)[1]).all()


def check_state_round_trip(make: Make, problem: Problem, options: Options) -> None:
    """``model_from_state(model.state())`` predicts, and goes on learning, as the model."""
    model = _trained(make, problem, n=1500)
    blob = model.state()
    restored = model_from_state(blob)
    assert type(restored) is type(model)
    X, y = problem(np.random.default_rng(7), 300)
    _same_outputs(restored, model, X, "read back from its state")
    if isinstance(model, Classifier):
        assert isinstance(restored, Classifier) and restored.classes == model.classes
    if options.exact_state:
        assert restored.state() == blob, "the state read back writes other bytes"
    model.learn_many(X, y)
    restored.learn_many(X, y)
    _same_outputs(restored, model, X, "learning on after the round trip")
    if options.exact_state:
        assert restored.state() == model.state()


def check_learning_is_deterministic(make: Make, problem: Problem, options: Options) -> None:
    """The same data in the same order give the same model."""
    one, two = _trained(make, problem, n=1500), _trained(make, problem, n=1500)
    if options.same_bytes:
        assert one.state() == two.state(), "two identical runs give different states"
    X, _ = problem(np.random.default_rng(8), 300)
    _same_outputs(one, two, X, "two identical runs")


def check_state_rejects_garbage(make: Make, problem: Problem, options: Options) -> None:
    """A truncated, corrupt or foreign blob raises ``StateFormatError``, nothing else."""
    blob = _trained(make, problem, n=300).state()
    cls: Any = type(make())
    bad_magic = b"XXXX" + blob[4:]
    bad_version = blob[:4] + (99).to_bytes(2, "little") + blob[6:]
    flipped = blob[:20] + bytes([blob[20] ^ 0xFF]) + blob[21:]
    for bad in (b"", b"SFST", bad_magic, bad_version, flipped, blob[:-1], blob[: len(blob) // 2]):
        for read in (cls.from_state, model_from_state):
            try:
                read(bad)
            except StateFormatError:
                continue
            raise AssertionError(f"{read.__qualname__} accepted a corrupt state ({len(bad)} B)")


CHECKS: list[Callable[[Make, Problem, Options], None]] = [
    check_contract,
    check_defaults_before_learning,
    check_empty_batch_is_a_no_op,
    check_learns_the_problem,
    check_unseen_columns_are_tolerated,
    check_state_round_trip,
    check_learning_is_deterministic,
    check_state_rejects_garbage,
]


def check_model(make: Make, problem: Problem, options: Options | None = None) -> None:
    """Run every check of ``CHECKS``; the first to fail raises ``AssertionError`` naming it."""
    for check in CHECKS:
        try:
            check(make, problem, options or Options())
        except AssertionError as exc:
            raise AssertionError(f"{check.__name__}: {exc}") from exc


# -- anomaly detectors --------------------------------------------------------------------------

MakeDetector = Callable[[], Any]


def anomaly_problem(rng: np.random.Generator, n: int) -> tuple[Any, npt.NDArray[np.int64]]:
    """A decoded batch of ``n`` sensor events, 2% of them anomalies (a reading far off, or a
    valve state never seen otherwise), and which ones they are."""
    import orjson

    from streamfit.batch import Messages
    from streamfit.codecs import decode_json

    outlier = (rng.random(n) < 0.02).astype(np.int64)
    temp = rng.normal(20.0, 1.0, size=n) + outlier * rng.choice([-8.0, 8.0], size=n)
    flow = rng.gamma(4.0, 2.0, size=n)
    valve = np.where(outlier & (rng.random(n) < 0.5), "stuck", rng.choice(["open", "shut"], n))
    rows = [
        orjson.dumps({"temp": float(t), "flow": float(f), "valve": str(v)})
        for t, f, v in zip(temp, flow, valve, strict=True)
    ]
    return decode_json(Messages.from_values(rows), None, "classification").batch, outlier


def _detector_input(detector: Any, batch: Any) -> Any:
    """What ``detector`` reads of ``batch``: the batch, or its numeric fields as records
    (River's detectors take numbers)."""
    if getattr(detector, "reads", "columns") == "columns":
        return batch
    names = [name for name, column in batch.columns.items() if column.dtype.kind == "f"]
    columns = [batch.columns[name].tolist() for name in names]
    return [
        {k: v for k, v in zip(names, row, strict=True) if v is not None and v == v}
        for row in zip(*columns, strict=True)
    ]


def _scored(make: MakeDetector, n: int = 3000, seed: int = 0) -> tuple[Any, Any, Any]:
    detector = make()
    batch, outlier = anomaly_problem(np.random.default_rng(seed), n)
    scores = np.concatenate(
        [
            detector.score_learn_many(_detector_input(detector, batch.rows(a, a + 250)))
            for a in range(0, n, 250)
        ]
    )
    return detector, scores, outlier


def check_detector_contract(make: MakeDetector, threshold: float) -> None:
    """A ``Detector``: task ``anomaly``, ``reads``, and one finite score per event."""
    from streamfit.models.base import Detector

    detector = make()
    assert isinstance(detector, Detector), f"{type(detector).__name__} is not a Detector"
    assert detector.task == "anomaly"
    batch, _ = anomaly_problem(np.random.default_rng(1), 10)
    scores = np.asarray(detector.score_learn_many(_detector_input(detector, batch)))
    assert scores.shape == (10,) and np.isfinite(scores).all()


def check_detector_empty_batch(make: MakeDetector, threshold: float) -> None:
    """Scoring no events gives no scores and changes nothing."""
    detector, _, _ = _scored(make, n=500)
    batch, _ = anomaly_problem(np.random.default_rng(2), 10)
    before = detector.state()
    assert len(detector.score_learn_many(_detector_input(detector, batch.rows(0, 0)))) == 0
    assert detector.state() == before or type(detector).__name__.startswith("River")


def check_detector_finds_anomalies(make: MakeDetector, threshold: float) -> None:
    """Prequential ROC AUC of ``threshold`` at least on ``anomaly_problem``."""
    from sklearn.metrics import roc_auc_score

    _, scores, outlier = _scored(make)
    auc = float(roc_auc_score(outlier[500:], scores[500:]))
    assert auc >= threshold, f"ROC AUC {auc:.3f}"


def check_detector_state_round_trip(make: MakeDetector, threshold: float) -> None:
    """Read back from its state, it scores and goes on learning as the original."""
    from streamfit.models.factory import model_from_state

    detector, _, _ = _scored(make, n=1500)
    restored: Any = model_from_state(detector.state())
    assert type(restored) is type(detector)
    batch, _ = anomaly_problem(np.random.default_rng(3), 300)
    got = restored.score_learn_many(_detector_input(restored, batch))
    want = detector.score_learn_many(_detector_input(detector, batch))
    assert np.array_equal(got, want), "the restored detector scores otherwise"


def check_detector_state_rejects_garbage(make: MakeDetector, threshold: float) -> None:
    """A truncated or corrupt blob raises ``StateFormatError``."""
    from streamfit.models.factory import model_from_state

    blob = _scored(make, n=300)[0].state()
    flipped = blob[:20] + bytes([blob[20] ^ 0xFF]) + blob[21:]
    for bad in (b"", blob[:-1], flipped, blob[: len(blob) // 2]):
        try:
            model_from_state(bad)
        except StateFormatError:
            continue
        raise AssertionError(f"a corrupt state ({len(bad)} B) was accepted")


DETECTOR_CHECKS: list[Callable[[MakeDetector, float], None]] = [
    check_detector_contract,
    check_detector_empty_batch,
    check_detector_finds_anomalies,
    check_detector_state_round_trip,
    check_detector_state_rejects_garbage,
]


def check_detector(make: MakeDetector, threshold: float = 0.9) -> None:
    """Run every check of ``DETECTOR_CHECKS`` on the detectors ``make`` builds.

    >>> from streamfit.explore.detector import HistogramDetector
    >>> check_detector(HistogramDetector)
    """
    for check in DETECTOR_CHECKS:
        try:
            check(make, threshold)
        except AssertionError as exc:
            raise AssertionError(f"{check.__name__}: {exc}") from exc
